"""The table of connection fields: what the form, the settings and the identity take from it agrees with it,
and each field is read and checked by its row alone.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from airflow_provider_bankapi.client.fields import (
    CHOICE,
    EXTRA_FIELDS,
    FIELDS,
    IDENTITY_FIELDS,
    NUMBER,
    NUMBERS,
    ConnectionField,
)
from airflow_provider_bankapi.client.identity.material import IdentityMaterial
from airflow_provider_bankapi.client.settings import ClientSettings, TransportSettings
from airflow_provider_bankapi.errors import ClientIdentityError, ConfigurationError
from airflow_provider_bankapi.get_provider_info import form_fields


def test_the_identity_fields_are_the_identity_materials_in_the_same_order():
    # IdentityMaterial.from_extra passes them by position.
    assert IDENTITY_FIELDS == tuple(field.name for field in dataclasses.fields(IdentityMaterial))


@pytest.mark.parametrize("field", [pytest.param(f, id=f.key) for f in EXTRA_FIELDS if f.kind == NUMBER])
def test_a_number_field_fills_a_setting_and_takes_its_default(field):
    assert field.default == NUMBERS[field.setting].default
    assert form_fields()[field.key]["schema"]["minimum"] == NUMBERS[field.setting].least


@pytest.mark.parametrize(
    "name",
    [pytest.param(f.name, id=f.name) for f in dataclasses.fields(TransportSettings) if f.name in NUMBERS],
)
def test_every_number_of_the_transport_defaults_to_the_tables(name):
    assert getattr(TransportSettings(), name) == NUMBERS[name].default


@pytest.mark.parametrize("name", ["refresh_margin", "expiry_warning_days"])
def test_every_number_of_the_client_defaults_to_the_tables(name):
    settings = ClientSettings(base_url="https://bank.example/v1", client_id="c", client_secret="s")
    assert getattr(settings, name) == NUMBERS[name].default


@pytest.mark.parametrize("field", [pytest.param(f, id=f.key) for f in FIELDS])
def test_a_value_at_its_fields_limit_is_read_and_one_byte_more_is_refused_naming_the_field(field):
    # Digits: text to every kind of field, a number too large for a number field's range.
    at_limit, over = "7" * field.limit, "7" * (field.limit + 1)

    if field.kind in (NUMBER, CHOICE):  # refused for what it is, never for its size
        with pytest.raises(ConfigurationError, match="must be (a|one of)"):
            field.read(at_limit)
    else:
        assert field.read(at_limit) == at_limit
    with pytest.raises(ConfigurationError) as refused:
        field.read(over)

    assert refused.value.field == field.key
    assert refused.value.message.startswith(f"{field.key} is ")
    assert "the limit is" in refused.value.message
    assert "7" * 20 not in str(refused.value)
    assert type(refused.value) is field.error


@pytest.mark.parametrize(
    "value",
    [pytest.param(None, id="none"), pytest.param("", id="empty"), pytest.param(" \n ", id="blank")],
)
@pytest.mark.parametrize("field", [pytest.param(f, id=f.key) for f in FIELDS])
def test_an_unset_field_reads_as_its_default(field, value):
    assert field.read(value) == field.default


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("client_cert", 123, id="number-as-certificate"),
        pytest.param("client_private_key", ["-----BEGIN"], id="list-as-key"),
        pytest.param("client_pfx_secret", {"a": 1}, id="object-as-bundle"),
    ],
)
def test_identity_material_of_the_wrong_type_is_refused_when_it_is_made(name, value):
    with pytest.raises(ClientIdentityError) as refused:
        IdentityMaterial(**{name: value})

    assert refused.value.field == name
    assert "must be text" in refused.value.message


def test_identity_material_is_normalised_when_it_is_made(tmp_path: Path):
    material = IdentityMaterial(
        client_cert="  ", client_private_key=b"", client_pfx_password=1234, ca_cert=tmp_path / "ca.pem"
    )

    assert material.client_cert is None
    assert material.client_private_key is None
    assert material.client_pfx_password == "1234"  # a numeric password typed into JSON without quotes
    with pytest.raises(ClientIdentityError, match="must be text"):
        IdentityMaterial(client_pfx_password=True)  # JSON true is no password
    assert material.ca_cert == tmp_path / "ca.pem"  # a path stays a path


def test_the_ca_is_configuration_and_the_rest_the_client_identity():
    errors = {field.key: field.error for field in FIELDS}

    assert errors["ca_cert"] is ConfigurationError
    assert {errors[key] for key in IDENTITY_FIELDS if key != "ca_cert"} == {ClientIdentityError}
    assert {errors[field.key] for field in FIELDS if not field.identity} == {ConfigurationError}


def test_a_number_field_takes_numeric_text_and_whole_numbers_as_int():
    retries = ConnectionField("max_retries", "Maximum retries", kind=NUMBER, setting="max_retries")

    assert retries.read("3") == 3
    assert isinstance(retries.read(3.0), int)


def test_the_settings_know_their_secrets_from_the_table():
    identity = IdentityMaterial(
        **{key: f"{key}-value" for key in IDENTITY_FIELDS} | {"client_cert": "public", "ca_cert": "public"}
    )
    proxy = TransportSettings(proxy="http://user:proxy-password@proxy.internal:3128")
    settings = ClientSettings(
        "https://bank.example/v1", "client-id", "client-secret", identity, transport=proxy
    )

    # What a server might echo: the redactor's (the client_secret is added apart: it reaches the masker).
    assert settings.secrets() == [
        "client_private_key_password-value",
        "client_pfx_password-value",
        "proxy-password",
    ]
    # What the host's masker hides from logs as well.
    assert settings.secrets(key_material=True) == [
        "client_private_key-value",
        "client_private_key_password-value",
        "client_pfx_secret-value",
        "client_pfx_password-value",
        "proxy-password",
    ]


def test_paths_and_unset_secrets_are_not_secrets(tmp_path: Path):
    identity = IdentityMaterial(client_private_key=tmp_path / "client.key", client_pfx_password="")
    settings = ClientSettings(
        base_url="https://bank.example/v1", client_id="c", client_secret="s", identity=identity
    )

    assert settings.secrets(key_material=True) == []
