"""Every connection field fuzzed (hypothesis): a connection either maps to a client identity and settings,
or is refused with a ConfigurationError that names one of the connection's own fields, never shows a
secret, and comes at once. No network: the mapping and the identity are checked before any call.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_connection_mapping import LOGIN, PASSWORD, PFX_PASSWORD, material  # noqa: F401 - the fixture

from airflow_provider_bankapi.client.fields import EXTRA_KEYS
from airflow_provider_bankapi.client.identity.identity import load_identity
from airflow_provider_bankapi.errors import ConfigurationError
from airflow_provider_bankapi.hooks.bankapi import settings_from_connection

# No deadline: the machine is shared; the bound asserted below is a generous one.
PROPERTY = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
#: The connection's own field names: what an error may name (the UI form and the extra keys).
CONNECTION_FIELDS = {"host", "login", "password", *EXTRA_KEYS}
KEY_PASSWORD = "key-passphrase-never-shown-41"
PROXY_PASSWORD = "proxy-password-never-shown-77"

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["", "  ", "\\n", "/", "/dev/zero", "/proc/self/mem", "/nonexistent/client.crt", "-1"]),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
)


def _valid(files) -> dict:
    """A good value for each extra key (the PEM pair and the PFX both: the mapping must pick or refuse)."""
    return {
        "client_cert": files["cert_pem"],
        "client_private_key": files["key_pem"],
        "client_private_key_password": KEY_PASSWORD,
        "client_pfx_secret": files["pfx_base64"],
        "client_pfx_password": PFX_PASSWORD,
        "ca_cert": files["ca_path"],
        "auth_endpoint": "/auth/token-v2",
        "cache_scope": "process",
        "refresh_margin": "120",
        "timeout": 5,
        "max_retries": 2,
        "max_response_bytes": "65536",
        "proxy": f"http://user:{PROXY_PASSWORD}@proxy.internal:3128",
        "interaction_id_header": "x-fapi-interaction-id",
    }


@st.composite
def connections(draw, files):
    """Each field: absent, its good value, or junk; an unknown key now and then."""
    valid = _valid(files)
    extra = {}
    for key in EXTRA_KEYS:
        choice = draw(st.sampled_from(["absent", "valid", "junk"]))
        if choice != "absent":
            extra[key] = valid[key] if choice == "valid" else draw(JUNK)
    if draw(st.booleans()) and draw(st.booleans()):
        extra[draw(st.text(min_size=1, max_size=12).filter(lambda key: key not in EXTRA_KEYS))] = "x"
    host = draw(st.sampled_from(["https://bank.example/public/gw_banking/v1", None]) | st.text(max_size=30))
    login = draw(st.sampled_from([LOGIN, None, ""]) | st.text(max_size=10))
    password = draw(st.sampled_from([PASSWORD, None, ""]))
    return host, login, password, extra


@pytest.fixture(scope="module")
def connection_strategy(material):  # noqa: F811 - the imported fixture
    """The strategy, and the secrets no refusal may show (the passwords, the private key's lines)."""
    key_lines = [line for line in material["key_pem"].splitlines() if not line.startswith("-----")]
    return connections(material), [PASSWORD, KEY_PASSWORD, PFX_PASSWORD, PROXY_PASSWORD, *key_lines]


def refusal(host, login, password, extra) -> ConfigurationError | None:
    """None when the connection maps and its identity loads; else the ConfigurationError (any other
    exception fails the test).
    """
    try:
        client_settings, _ = settings_from_connection(host, login, password, extra)
        load_identity(client_settings.identity)
    except ConfigurationError as exc:  # ClientIdentityError is one
        return exc
    return None


@PROPERTY
@given(data=st.data())
def test_any_connection_maps_or_is_refused_naming_its_field(connection_strategy, data):
    strategy, secrets = connection_strategy
    host, login, password, extra = data.draw(strategy)
    started = time.monotonic()
    refused = refusal(host, login, password, extra)
    # Refused or accepted at once: nothing here waits on a file, a lock or the network.
    assert time.monotonic() - started < 10
    if refused is None:
        return
    unknown_keys = set(extra) - set(EXTRA_KEYS)  # refused by their own name
    assert refused.field in CONNECTION_FIELDS | unknown_keys, f"{refused.field!r} is no connection field"
    assert refused.message
    shown = f"{refused} {refused!r} {refused.hint}"
    for secret in secrets:
        assert secret not in shown


@pytest.mark.parametrize(
    "value",
    [pytest.param(True, id="true"), pytest.param(3128, id="number"), pytest.param(["http://p:1"], id="list")],
)
def test_a_proxy_that_is_not_text_is_refused_by_name(value):
    # Found by the property above: a JSON true used to reach urlsplit() and fail with AttributeError.
    with pytest.raises(ConfigurationError) as caught:
        settings_from_connection("https://bank.example/v1", LOGIN, PASSWORD, {"proxy": value})
    assert caught.value.field == "proxy"
