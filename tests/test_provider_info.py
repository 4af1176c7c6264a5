"""get_provider_info(): what Airflow learns about the provider without importing it. Pure: no Airflow DB."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from airflow_provider_bankapi.client.fields import EXTRA_KEYS
from airflow_provider_bankapi.get_provider_info import get_provider_info

# The schema files ship with Airflow; found without importing it (its import costs seconds).
AIRFLOW_DIR = Path(importlib.metadata.distribution("apache-airflow-core").locate_file("airflow"))

# The key-name fragments Airflow 3.3 masks by default ([core] sensitive_var_conn_names adds to them):
# airflow/_shared/secrets_masker/secrets_masker.py DEFAULT_SENSITIVE_FIELDS. Copied, not imported,
# so this test stays pure; test_airflow_registration.py checks the real masking end to end.
AIRFLOW_MASKED_WORDS = (
    "access_key", "access_token", "api_key", "apikey", "auth_header", "authorization", "bearer",
    "connection_string", "dsn", "passphrase", "passwd", "password", "private_key", "proxy",
    "proxy_password", "proxies", "secret", "service_account", "service_key", "token", "keyfile_dict",
    "webhook_url",
)

SECRET_EXTRAS = frozenset(
    {"client_private_key", "client_private_key_password", "client_pfx_secret", "client_pfx_password", "proxy"}
)
ISSUE_EXTRAS = (
    "client_cert", "client_private_key", "client_private_key_password", "client_pfx_secret",
    "client_pfx_password", "ca_cert", "auth_endpoint", "cache_scope", "refresh_margin", "timeout",
    "max_retries", "max_response_bytes", "proxy", "interaction_id_header",
)


def airflow_masks(key: str) -> bool:
    # Airflow's own test: lower-case, non-word runs to "_", then a substring match.
    normalized = re.sub(r"\W+", "_", key.strip().lower())
    return any(word in normalized for word in AIRFLOW_MASKED_WORDS)


def connection_type() -> dict:
    (conn_type,) = get_provider_info()["connection-types"]
    return conn_type


def test_package_name_is_the_distribution_name():
    # Airflow compares it with the canonical distribution name and stops discovering ALL providers
    # when they differ.
    distribution = importlib.metadata.distribution("airflow-provider-bankapi")
    canonical = re.sub(r"[-_.]+", "-", distribution.metadata["Name"]).lower()
    assert get_provider_info()["package-name"] == canonical


def test_entry_point_is_get_provider_info():
    (entry_point,) = [
        ep
        for ep in importlib.metadata.entry_points(group="apache_airflow_provider")
        if ep.dist is not None and ep.dist.name == "airflow-provider-bankapi"
    ]
    assert entry_point.load() is get_provider_info


def test_valid_against_airflows_runtime_schema():
    schema = json.loads((AIRFLOW_DIR / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


@pytest.mark.parametrize(
    "section", ["connection-types", "hooks", "operators", "sensors", "triggers"]
)
def test_valid_against_the_stricter_provider_yaml_schema(section):
    # The runtime schema does not look inside conn-fields; the provider.yaml schema does.
    schema = json.loads((AIRFLOW_DIR / "provider.yaml.schema.json").read_text())
    jsonschema.validate(get_provider_info()[section], schema["properties"][section])


def test_each_call_returns_a_new_dict():
    # Airflow writes "documentation-url" into the dict it receives.
    first = get_provider_info()
    first["connection-types"][0]["conn-fields"]["cache_scope"]["schema"]["enum"].append("mutated")
    first["documentation-url"] = "x"
    assert get_provider_info() != first


def test_connection_type():
    conn_type = connection_type()
    assert conn_type["connection-type"] == "bankapi"
    assert conn_type["hook-name"] == "Banking API"
    assert conn_type["hook-class-name"] == "airflow_provider_bankapi.hooks.bankapi.BankingApiHook"


@pytest.mark.parametrize(
    ("section", "module"),
    [
        pytest.param("hooks", "airflow_provider_bankapi.hooks.bankapi", id="hooks"),
        pytest.param("operators", "airflow_provider_bankapi.operators.bankapi", id="operators"),
        pytest.param("sensors", "airflow_provider_bankapi.sensors.bankapi", id="sensors"),
        pytest.param("triggers", "airflow_provider_bankapi.triggers.bankapi", id="triggers"),
    ],
)
def test_module_lists(section, module):
    assert get_provider_info()[section] == [{"integration-name": "Banking API", "python-modules": [module]}]


def test_hook_class_name_points_at_the_hook_module():
    module, _, class_name = connection_type()["hook-class-name"].rpartition(".")
    assert module in get_provider_info()["hooks"][0]["python-modules"]
    path = Path(__file__).parents[1] / (module.replace(".", "/") + ".py")
    # Parsed, not imported: importing the hook imports Airflow.
    classes = {node.name for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.ClassDef)}
    assert class_name in classes


def test_extra_keys_are_exactly_the_documented_ones():
    assert EXTRA_KEYS == ISSUE_EXTRAS


def test_every_form_field_is_an_extra_key_and_back():
    assert tuple(connection_type()["conn-fields"]) == EXTRA_KEYS


@pytest.mark.parametrize("key", ISSUE_EXTRAS)
def test_airflow_masks_exactly_the_secret_extras(key):
    # Airflow masks extras by key name only: a secret must carry a masked word in its key, and a
    # harmless value must not, or Airflow would hide the CA path or the cache scope.
    assert airflow_masks(key) is (key in SECRET_EXTRAS)


def test_masking_rule_copy_still_matches_airflow():
    # Guards AIRFLOW_MASKED_WORDS against an Airflow upgrade, without importing Airflow.
    source = (AIRFLOW_DIR / "_shared" / "secrets_masker" / "secrets_masker.py").read_text()
    block = source.split("DEFAULT_SENSITIVE_FIELDS = frozenset(", 1)[1].split(")", 1)[0]
    assert set(re.findall(r'"([a-z_]+)"', block)) == set(AIRFLOW_MASKED_WORDS)


@pytest.mark.parametrize(
    ("key", "expected_format"),
    [
        # PEM needs line breaks: a textarea. The "password" format is an <input type=password>,
        # which drops line breaks; the private key is masked by its key name instead.
        pytest.param("client_cert", "multiline", id="client_cert"),
        pytest.param("client_private_key", "multiline", id="client_private_key"),
        pytest.param("ca_cert", "multiline", id="ca_cert"),
        pytest.param("client_private_key_password", "password", id="client_private_key_password"),
        pytest.param("client_pfx_secret", "password", id="client_pfx_secret"),
        pytest.param("client_pfx_password", "password", id="client_pfx_password"),
        pytest.param("proxy", "password", id="proxy"),
        pytest.param("auth_endpoint", None, id="auth_endpoint"),
        pytest.param("cache_scope", None, id="cache_scope"),
        pytest.param("refresh_margin", None, id="refresh_margin"),
        pytest.param("timeout", None, id="timeout"),
        pytest.param("max_retries", None, id="max_retries"),
    ],
)
def test_field_formats(key, expected_format):
    assert connection_type()["conn-fields"][key]["schema"].get("format") == expected_format


@pytest.mark.parametrize(
    ("key", "default"),
    [
        pytest.param("cache_scope", "host", id="cache_scope"),
        pytest.param("refresh_margin", 300, id="refresh_margin"),
        pytest.param("auth_endpoint", "/auth/token-v2", id="auth_endpoint"),
    ],
)
def test_defaults(key, default):
    assert connection_type()["conn-fields"][key]["schema"]["default"] == default


def test_cache_scope_choices_are_the_clients():
    from airflow_provider_bankapi.client.fields import CACHE_SCOPES

    schema = connection_type()["conn-fields"]["cache_scope"]["schema"]
    assert schema["enum"] == ["host", "cluster", "process", "off"]
    assert tuple(schema["enum"]) == tuple(CACHE_SCOPES)


@pytest.mark.parametrize("key", ISSUE_EXTRAS)
def test_every_field_is_explained(key):
    field = connection_type()["conn-fields"][key]
    assert field["label"].strip()
    assert len(field["description"]) > 20


@pytest.mark.parametrize("key", ["client_cert", "client_private_key", "ca_cert"])
def test_pem_fields_say_pem_text_or_a_path(key):
    description = connection_type()["conn-fields"][key]["description"]
    assert "PEM text" in description
    assert "file path" in description


def test_standard_fields():
    behaviour = connection_type()["ui-field-behaviour"]
    # The port stays visible: a saved port is what lets Airflow 3.3.2's Test button reuse the secrets.
    assert behaviour["hidden-fields"] == ["schema"]
    assert behaviour["placeholders"]["port"].startswith("443 ")
    assert behaviour["relabeling"] == {"host": "Base URL", "login": "Client ID", "password": "Client secret"}
    assert behaviour["placeholders"]["host"] == "https://api.bancodigital.com/public/gw_banking/v1"


@pytest.mark.slow  # a fresh interpreter, so that what the import pulls in is all that is loaded
def test_module_imports_no_airflow():
    # Loaded by provider discovery in every Airflow component: the standard library and the provider's
    # own standard-library-only table of connection fields, nothing else (no Airflow, requests or
    # cryptography).
    code = (
        "import json, sys; before = set(sys.modules); import airflow_provider_bankapi.get_provider_info; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    added = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout)
    packages = {name.split(".")[0] for name in added}
    assert packages - set(sys.stdlib_module_names) == {"airflow_provider_bankapi"}
    assert "airflow_provider_bankapi.client.fields" in added  # where the form and its defaults come from


def test_the_readme_names_the_form_fields_as_the_ui_labels_them():
    # The README's "In the Airflow UI" tables: one row per field of the form, by the label it shows.
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme[readme.index("### In the Airflow UI") : readme.index("### As `AIRFLOW_CONN_*` JSON")]
    rows = re.findall(r"^\| ([^|`]+?) \|", section, flags=re.MULTILINE)
    labels = [field["label"] for field in connection_type()["conn-fields"].values()]
    shown = ["Base URL", "Client ID", "Client secret", "Port", *labels]
    assert [row for row in rows if not row.startswith(("Form field", "---"))] == shown
