"""Every number of the settings has a range, and bad URLs are refused at parse time naming their field."""

from __future__ import annotations

import math

import pytest

from airflow_provider_bankapi.client.fields import NUMBERS
from airflow_provider_bankapi.client.settings import ClientSettings, TransportSettings
from airflow_provider_bankapi.errors import ConfigurationError
from airflow_provider_bankapi.hooks.bankapi import settings_from_connection

BASE_URL = "https://bank.example/public/gw_banking/v1"
TRANSPORT_NUMBERS = [
    "connect_timeout",
    "read_timeout",
    "max_retries",
    "backoff_base",
    "backoff_max",
    "max_total_wait",
    "pool_maxsize",
    "max_response_bytes",
]
CLIENT_NUMBERS = ["refresh_margin", "expiry_warning_days"]


def client(**fields):
    return ClientSettings(**{"base_url": BASE_URL, "client_id": "client-1", "client_secret": "s-1", **fields})


def out_of_range(name):
    least, largest = NUMBERS[name].least, NUMBERS[name].largest
    return [
        pytest.param(name, 1e10, id=f"{name}-1e10"),
        pytest.param(name, int(largest) + 1, id=f"{name}-above"),
        pytest.param(name, least - 1, id=f"{name}-below"),
        pytest.param(name, math.inf, id=f"{name}-inf"),
        pytest.param(name, math.nan, id=f"{name}-nan"),
        pytest.param(name, True, id=f"{name}-bool"),
        pytest.param(name, "30", id=f"{name}-text"),
    ]


@pytest.mark.parametrize(
    ("name", "value"), [case for name in TRANSPORT_NUMBERS for case in out_of_range(name)]
)
def test_a_transport_number_out_of_its_range_is_refused_naming_the_field_and_the_range(name, value):
    with pytest.raises(ConfigurationError) as refused:
        TransportSettings(**{name: value})

    assert refused.value.field == name
    assert refused.value.message.startswith(f"{name} must be a ")
    assert (
        f"{NUMBERS[name].largest:g}" in refused.value.message
        or str(int(NUMBERS[name].largest)) in refused.value.message
    )


@pytest.mark.parametrize(("name", "value"), [case for name in CLIENT_NUMBERS for case in out_of_range(name)])
def test_a_client_number_out_of_its_range_is_refused_naming_the_field(name, value):
    with pytest.raises(ConfigurationError) as refused:
        client(**{name: value})

    assert refused.value.field == name


@pytest.mark.parametrize("name", [pytest.param(name, id=name) for name in TRANSPORT_NUMBERS])
def test_the_ends_of_each_transport_range_are_taken(name):
    least, largest = NUMBERS[name].least, NUMBERS[name].largest
    TransportSettings(**{name: int(largest)})
    if least > 0:
        TransportSettings(**{name: int(least)})


def test_zero_timeouts_are_refused():
    with pytest.raises(ConfigurationError, match="above 0 and at most 3600"):
        TransportSettings(read_timeout=0)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        pytest.param("timeout", 1e10, id="timeout-1e10"),
        pytest.param("timeout", "1e10", id="timeout-1e10-text"),
        pytest.param("max_retries", 10**6, id="max_retries"),
        pytest.param("refresh_margin", 1e300, id="refresh_margin"),
        pytest.param("max_response_bytes", 2**40, id="max_response_bytes"),
        pytest.param("max_response_bytes", 12.5, id="max_response_bytes-fraction"),
    ],
)
def test_a_connection_extra_out_of_range_is_refused_naming_the_extra(key, value):
    with pytest.raises(ConfigurationError) as refused:
        settings_from_connection(BASE_URL, "client-1", "secret-1", {key: value})

    assert refused.value.field == key
    assert refused.value.message.startswith(f"The extra field {key!r} must be a ")
    assert " to " in refused.value.message or " at most " in refused.value.message  # the range, both ends


@pytest.mark.parametrize(
    "character",
    [
        pytest.param("\x00", id="nul"),
        pytest.param("\r\n", id="crlf"),
        pytest.param("\t", id="tab"),
        pytest.param(" ", id="space"),
        pytest.param("\x7f", id="del"),
        pytest.param("\x85", id="c1-next-line"),
    ],
)
def test_a_control_character_in_the_base_url_is_refused_naming_the_field(character):
    for url in (f"https://bank.example{character}/public/gw_banking/v1", BASE_URL + character + "x"):
        with pytest.raises(ConfigurationError) as refused:
            client(base_url=url)

        assert refused.value.field == "host"
        assert "control character" in refused.value.message


def test_a_base_url_with_a_port_past_65535_is_refused_naming_the_field():
    with pytest.raises(ConfigurationError) as refused:
        client(base_url="https://bank.example:99999/public/gw_banking/v1")

    assert refused.value.field == "host"


@pytest.mark.parametrize(
    "proxy",
    [
        pytest.param("http://user:pw-1234@proxy:99999", id="port-past-65535"),
        pytest.param("http://user:pw-1234@proxy:abc", id="port-not-a-number"),
        pytest.param("http://user:pw-1234@pro xy:3128", id="space-in-host"),
        pytest.param("http://user:pw-1234@proxy\x00:3128", id="nul"),
        pytest.param("http://user:pw-1234@[::1:3128", id="unclosed-ipv6"),
        pytest.param("http://user:pw-1234@proxy:3128/\r\n", id="crlf"),
        pytest.param("socks5://user:pw-1234@proxy:1080", id="other-scheme"),
    ],
)
def test_a_bad_proxy_url_is_refused_at_parse_time_naming_the_proxy_field(proxy):
    with pytest.raises(ConfigurationError) as refused:
        settings_from_connection(BASE_URL, "client-1", "secret-1", {"proxy": proxy})

    assert refused.value.field == "proxy"
    assert "pw-1234" not in str(refused.value)
