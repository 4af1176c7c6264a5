"""Connection -> ClientSettings, no network: every field lands where it should, or is refused by name.

All PKI is made at test time (bankapi_sandbox.pki); nothing private is committed.
"""

from __future__ import annotations

import base64
import dataclasses

import pytest
import requests

from airflow_provider_bankapi.client.api import BankingApiClient
from airflow_provider_bankapi.client.fields import EXTRA_KEYS, limit_of
from airflow_provider_bankapi.client.identity.identity import load_identity
from airflow_provider_bankapi.client.settings import TransportSettings
from airflow_provider_bankapi.client.transport.adapter import USER_AGENT
from airflow_provider_bankapi.errors import ConfigurationError
from airflow_provider_bankapi.hooks.bankapi import connection_extras, settings_from_connection
from bankapi_sandbox import pki

HOST = "https://bank.example/public/gw_banking/v1"
LOGIN = "client-id-42"
PASSWORD = "client-secret-never-shown-9d81"
PFX_PASSWORD = "pfx-password-Zq81-never-shown"


@pytest.fixture(scope="module")
def material(tmp_path_factory):
    """A CA and a client identity as files, PEM text and a PKCS#12 bundle (base64 and file)."""
    directory = tmp_path_factory.mktemp("pki")
    ca = pki.make_ca("Mapping test CA")
    client = pki.issue_client_certificate(ca)
    bundle = client.pkcs12(PFX_PASSWORD.encode(), ca=ca)
    return {
        "fingerprint": client.fingerprint_sha256,
        "cert_pem": client.certificate_pem().decode(),
        "key_pem": client.private_key_pem().decode(),
        "ca_pem": ca.certificate_pem().decode(),
        "cert_path": str(pki.write_public(directory / "client.crt", client.certificate_pem())),
        "key_path": str(pki.write_private(directory / "client.key", client.private_key_pem())),
        "ca_path": str(pki.write_public(directory / "ca.crt", ca.certificate_pem())),
        "pfx_path": str(pki.write_private(directory / "client.pfx", bundle)),
        "pfx_base64": base64.b64encode(bundle).decode(),
    }


def mapped(extra, *, host=HOST, login=LOGIN, password=PASSWORD, port=None):
    return settings_from_connection(host, login, password, extra, port)


# -- identity material in its three forms ------------------------------------------------------------


def test_pem_paths_map_to_the_identity_and_the_defaults(material):
    extra = {
        "client_cert": material["cert_path"],
        "client_private_key": material["key_path"],
        "ca_cert": material["ca_path"],
    }
    settings, scope = mapped(extra)

    assert scope == "host"
    assert (settings.base_url, settings.client_id, settings.client_secret) == (HOST, LOGIN, PASSWORD)
    assert settings.identity.client_cert == material["cert_path"]
    assert settings.identity.client_private_key == material["key_path"]
    assert settings.identity.ca_cert == material["ca_path"]
    assert settings.auth_endpoint == "/auth/token-v2"
    assert settings.refresh_margin == 300
    assert settings.transport == TransportSettings()
    assert load_identity(settings.identity).fingerprint_sha256 == material["fingerprint"]


def test_pem_text_maps_to_the_same_identity(material):
    extra = {
        "client_cert": material["cert_pem"],
        "client_private_key": material["key_pem"],
        "ca_cert": material["ca_pem"],
    }
    settings, _ = mapped(extra)

    assert settings.identity.client_private_key == material["key_pem"]
    assert load_identity(settings.identity).fingerprint_sha256 == material["fingerprint"]
    assert material["key_pem"] not in repr(settings)


@pytest.mark.parametrize(
    "form", [pytest.param("pfx_path", id="pfx-path"), pytest.param("pfx_base64", id="pfx-b64")]
)
def test_pfx_maps_to_the_same_identity(material, form):
    extra = {
        "client_pfx_secret": material[form],
        "client_pfx_password": PFX_PASSWORD,
        "ca_cert": material["ca_path"],
    }
    settings, _ = mapped(extra)

    assert settings.identity.client_pfx_password == PFX_PASSWORD
    assert load_identity(settings.identity).fingerprint_sha256 == material["fingerprint"]
    assert PFX_PASSWORD not in repr(settings)


def test_legacy_prefixed_keys_mean_the_same_as_plain_ones(material):
    plain = {
        "client_cert": material["cert_path"],
        "client_private_key": material["key_path"],
        "ca_cert": material["ca_path"],
        "cache_scope": "process",
        "timeout": 12,
        "max_retries": 1,
        "refresh_margin": 60,
    }
    legacy = {f"extra__bankapi__{key}": value for key, value in plain.items()}

    assert mapped(legacy) == mapped(plain)
    assert mapped(legacy)[1] == "process"


def test_empty_strings_from_the_form_count_as_unset(material):
    untouched = {key: "" for key in EXTRA_KEYS} | {"refresh_margin": None, "client_pfx_password": "  "}
    untouched |= {"client_cert": material["cert_path"], "client_private_key": material["key_path"]}

    settings, scope = mapped(untouched)

    assert scope == "host"
    assert settings.identity.client_pfx_secret is None
    assert settings.identity.client_pfx_password is None
    assert settings.identity.ca_cert is None
    assert settings.auth_endpoint == "/auth/token-v2"
    assert settings.refresh_margin == 300
    assert settings.transport == TransportSettings()


# -- every valid key goes to one setting; anything else is refused ----------------------------------

#: A non-default value for each extra and where it must land in ClientSettings.
ROUTES = {
    "client_cert": ("PEM", lambda s: s.identity.client_cert),
    "client_private_key": ("PEM", lambda s: s.identity.client_private_key),
    "client_private_key_password": ("passphrase-1234", lambda s: s.identity.client_private_key_password),
    "client_pfx_secret": ("QUJD", lambda s: s.identity.client_pfx_secret),
    "client_pfx_password": ("pfx-pass-1234", lambda s: s.identity.client_pfx_password),
    "ca_cert": ("PEM", lambda s: s.identity.ca_cert),
    "auth_endpoint": ("/oauth/token", lambda s: s.auth_endpoint),
    "cache_scope": ("off", None),
    "refresh_margin": (42, lambda s: s.refresh_margin),
    "timeout": (7, lambda s: s.transport.read_timeout),
    "max_retries": (0, lambda s: s.transport.max_retries),
    "max_response_bytes": (64 * 1024 * 1024, lambda s: s.transport.max_response_bytes),
    "proxy": ("http://user:pw-1234@proxy.internal:3128", lambda s: s.transport.proxy),
    "interaction_id_header": ("x-request-id", lambda s: s.transport.interaction_id_header),
}


def test_the_routes_cover_every_extra_key():
    assert set(ROUTES) == set(EXTRA_KEYS)


@pytest.mark.parametrize("key", [pytest.param(key, id=key) for key in EXTRA_KEYS])
def test_every_extra_key_lands_in_its_setting(key):
    value, where = ROUTES[key]
    settings, scope = mapped({key: value})
    if where is None:
        assert scope == value
    else:
        assert where(settings) == value


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("X-Api-Key", id="header-like"),
        pytest.param("headers", id="headers"),
        pytest.param("client_certificate", id="typo"),
        pytest.param("extra__bankapi__client_key", id="legacy-typo"),
        pytest.param("extra__http__client_cert", id="other-conn-type-prefix"),
    ],
)
def test_unknown_extra_is_refused_listing_the_valid_keys(key):
    secret_value = "s3cr3t-value-that-must-not-leak"
    with pytest.raises(ConfigurationError) as caught:
        connection_extras({"client_cert": "/x.crt", key: secret_value})

    message = str(caught.value)
    assert caught.value.field == key.removeprefix("extra__bankapi__")
    assert all(valid in message for valid in EXTRA_KEYS)
    assert "header" in caught.value.hint
    assert secret_value not in message


def test_no_extra_reaches_the_request_headers(material):
    """With every extra set, the session the client builds carries requests' default headers only (its own
    User-Agent aside).
    """
    extra = {key: value for key, (value, _) in ROUTES.items() if key not in ("client_pfx_secret",)}
    extra |= {
        "client_cert": material["cert_path"],
        "client_private_key": material["key_path"],
        "ca_cert": material["ca_path"],
        "client_private_key_password": "",
        "client_pfx_password": "",
    }
    settings, _ = mapped(extra)

    with BankingApiClient(settings, token_stores=[]) as client:
        session = client.session()  # local only: identity loaded, no request made
        headers = dict(session.headers)
    assert headers == dict(requests.Session().headers) | {"User-Agent": USER_AGENT}
    assert not {str(value) for value, _ in ROUTES.values()} & set(headers.values())


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(None, "x-fapi-interaction-id", id="unset"),
        pytest.param("", "x-fapi-interaction-id", id="untouched-form-field"),
        pytest.param("X-Correlation-Id", "X-Correlation-Id", id="another-name"),
        pytest.param("none", "", id="none-sends-none"),
        pytest.param("NONE", "", id="none-any-case"),
    ],
)
def test_the_interaction_id_header_extra(value, expected):
    extra = {} if value is None else {"interaction_id_header": value}
    settings, _ = mapped(extra)
    assert settings.transport.interaction_id_header == expected


@pytest.mark.parametrize(
    "value",
    [pytest.param("x fapi", id="space"), pytest.param("x:id", id="colon"), pytest.param(["x"], id="list")],
)
def test_a_malformed_interaction_id_header_names_its_field(value):
    with pytest.raises(ConfigurationError) as caught:
        mapped({"interaction_id_header": value})
    assert caught.value.field == "interaction_id_header"


# -- malformed values name their field ------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        pytest.param("timeout", "soon", id="timeout-text"),
        pytest.param("timeout", 0, id="timeout-zero"),
        pytest.param("timeout", "-1", id="timeout-negative"),
        pytest.param("timeout", "nan", id="timeout-nan"),
        pytest.param("timeout", "inf", id="timeout-inf"),
        pytest.param("timeout", True, id="timeout-bool"),
        pytest.param("timeout", [30], id="timeout-list"),
        pytest.param("max_retries", "three", id="retries-text"),
        pytest.param("max_retries", 2.5, id="retries-fraction"),
        pytest.param("max_retries", -1, id="retries-negative"),
        pytest.param("max_retries", False, id="retries-bool"),
        pytest.param("refresh_margin", "5 minutes", id="margin-text"),
        pytest.param("refresh_margin", -300, id="margin-negative"),
        pytest.param("refresh_margin", "NaN", id="margin-nan"),
    ],
)
def test_bad_numbers_name_their_field(key, value):
    with pytest.raises(ConfigurationError) as caught:
        mapped({key: value})
    assert caught.value.field == key
    assert repr(key) in caught.value.message


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param({"timeout": "2.5"}, (2.5, 2.5, 3, 300), id="text-timeout-also-caps-connect"),
        pytest.param({"timeout": 60}, (10, 60, 3, 300), id="long-timeout-keeps-connect"),
        pytest.param({"max_retries": "0", "refresh_margin": "0"}, (10, 30, 0, 0), id="zeros-allowed"),
        pytest.param({"max_retries": 5.0, "refresh_margin": 30.5}, (10, 30, 5, 30.5), id="json-floats"),
    ],
)
def test_good_numbers_in_either_json_type(extra, expected):
    settings, _ = mapped(extra)
    got = (
        settings.transport.connect_timeout,
        settings.transport.read_timeout,
        settings.transport.max_retries,
        settings.refresh_margin,
    )
    assert got == expected
    assert isinstance(settings.transport.max_retries, int)


@pytest.mark.parametrize(
    ("value", "scope"),
    [
        pytest.param("HOST ", "host", id="case-and-space"),
        pytest.param("cluster", "cluster", id="cluster"),
        pytest.param("process", "process", id="process"),
        pytest.param("off", "off", id="off"),
    ],
)
def test_cache_scope_values(value, scope):
    assert mapped({"cache_scope": value})[1] == scope


@pytest.mark.parametrize(
    "value",
    [pytest.param("everywhere", id="unknown"), pytest.param(1, id="number"), pytest.param("none", id="none")],
)
def test_bad_cache_scope_is_refused_listing_the_scopes(value):
    with pytest.raises(ConfigurationError) as caught:
        mapped({"cache_scope": value})
    assert caught.value.field == "cache_scope"
    assert all(scope in caught.value.message for scope in ("host", "cluster", "process", "off"))


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        pytest.param({"host": None}, "host", id="no-host"),
        pytest.param({"host": ""}, "host", id="empty-host"),
        pytest.param({"host": "bank.example/public/gw_banking/v1"}, "host", id="host-without-scheme"),
        pytest.param({"host": "http://bank.example/v1"}, "host", id="plain-http"),
        pytest.param({"login": None}, "login", id="no-login"),
        pytest.param({"login": "  "}, "login", id="blank-login"),
        pytest.param({"password": None}, "password", id="no-password"),
        pytest.param({"password": ""}, "password", id="empty-password"),
    ],
)
def test_missing_connection_fields_are_named(fields, named):
    with pytest.raises(ConfigurationError) as caught:
        mapped({}, **fields)
    assert caught.value.field == named


ON_8443 = "https://bank.example:8443/v1"


@pytest.mark.parametrize(
    ("host", "port", "base_url"),
    [
        pytest.param(HOST, None, HOST, id="no-port"),
        pytest.param(HOST, 0, HOST, id="port-0-is-no-port"),
        pytest.param(HOST, 443, HOST, id="https-port-stays-implicit"),
        pytest.param(HOST, "443", HOST, id="port-as-text"),
        pytest.param(HOST, 8443, HOST.replace(".example/", ".example:8443/"), id="port-fills-in-the-url"),
        pytest.param("https://[::1]/v1", 8443, "https://[::1]:8443/v1", id="ipv6"),
        pytest.param(ON_8443, 8443, ON_8443, id="same-port"),
        pytest.param(ON_8443, None, ON_8443, id="port-in-url-only"),
    ],
)
def test_the_port_completes_the_base_url(host, port, base_url):
    settings, _ = mapped({}, host=host, port=port)
    assert settings.base_url == base_url


@pytest.mark.parametrize(
    ("host", "port", "message"),
    [
        pytest.param(ON_8443, 9443, r"Port \(9443\) differs .* Base URL \(8443\)", id="differs"),
        pytest.param(ON_8443, 443, r"Port \(443\) differs", id="differs-from-https"),
        pytest.param(HOST, 70000, "from 1 to 65535", id="too-big"),
        pytest.param(HOST, -1, "from 1 to 65535", id="negative"),
        pytest.param(HOST, "https", "from 1 to 65535", id="not-a-number"),
    ],
)
def test_a_bad_port_is_named(host, port, message):
    with pytest.raises(ConfigurationError, match=message) as caught:
        mapped({}, host=host, port=port)
    assert caught.value.field == "port"


def test_settings_repr_hides_the_secrets():
    extra = {
        "proxy": "http://user:proxy-pw-1234@proxy.internal:3128",
        "client_private_key_password": "kp-1234x",
    }
    settings, _ = mapped(extra)
    shown = repr(settings) + repr(dataclasses.replace(settings))
    for secret in (PASSWORD, "proxy-pw-1234", "kp-1234x"):
        assert secret not in shown


# -- size limits ---------------------------------------------------------------------------------------


LIMITED_CONNECTION_FIELDS = [
    pytest.param("host", lambda size: HOST + "/" + "a" * (size - len(HOST) - 1), id="host"),
    pytest.param("login", lambda size: "c" * size, id="login"),
    pytest.param("password", lambda size: "s" * size, id="password"),
]


@pytest.mark.parametrize(("name", "value_of"), LIMITED_CONNECTION_FIELDS)
def test_a_connection_field_over_its_limit_is_refused_naming_it(name, value_of):
    at_limit, over = value_of(limit_of(name)), value_of(limit_of(name) + 1)

    settings, _ = mapped({}, **{name: at_limit})
    with pytest.raises(ConfigurationError) as caught:
        mapped({}, **{name: over})

    assert caught.value.field == name
    assert f"{name} is " in caught.value.message
    assert "the limit is" in caught.value.message
    assert over[-30:] not in str(caught.value)
    assert getattr(settings, {"host": "base_url", "login": "client_id", "password": "client_secret"}[name])


@pytest.mark.parametrize("key", sorted(EXTRA_KEYS))
def test_every_extra_over_its_limit_is_refused_before_it_is_read(key):
    with pytest.raises(ConfigurationError) as caught:
        mapped({key: " " + "9" * limit_of(key)})

    assert caught.value.field == key
    assert "the limit is" in caught.value.message
    assert "9" * 30 not in str(caught.value)


def test_extras_that_are_not_text_are_measured_too():
    with pytest.raises(ConfigurationError, match="the limit is") as caught:
        mapped({"proxy": ["x" * 100] * 100})
    assert caught.value.field == "proxy"
