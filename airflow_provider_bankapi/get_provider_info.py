"""What Airflow learns about this provider without importing it: the ``bankapi`` connection type and its form.

Airflow calls :func:`get_provider_info` through the ``apache_airflow_provider`` entry point during provider
discovery, in every component (scheduler, API server, workers, triggerer), so this module imports nothing
but the standard library and ``client/fields.py`` (itself standard library only), the table of connection
fields the form is drawn from, where every default it shows is defined.

Since Airflow 3.2 the React connection form is drawn from the declarative ``conn-fields`` and
``ui-field-behaviour`` below; 3.3 reads nothing else (``get_connection_form_widgets()`` is ignored).
Each ``conn-fields`` key is the key users write in the connection's extra JSON, for example in an
``AIRFLOW_CONN_BANKAPI_DEFAULT`` environment variable, so the keys are public API.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_bankapi.client.fields import EXTRA_FIELDS, MATERIAL, NUMBER, NUMBERS, STANDARD_FIELDS

PACKAGE_NAME = "airflow-provider-bankapi"
CONN_TYPE = "bankapi"
HOOK_CLASS_NAME = "airflow_provider_bankapi.hooks.bankapi.BankingApiHook"
PORT_PLACEHOLDER = "443 (the Base URL's port; needed by the Test button)"


def form_fields() -> dict[str, dict[str, Any]]:
    """The extras as the form draws them (``conn-fields``), from the table of connection fields.

    Certificate and key material is a textarea ("multiline"), the private key too although it is secret: the
    "password" format is an <input type=password>, and browsers strip line breaks from such inputs, which
    would break pasted PEM. Its key name holds "private_key", so Airflow still masks its value everywhere
    once saved. Single-line secrets use "password".
    """
    form: dict[str, dict[str, Any]] = {}
    for field in EXTRA_FIELDS:
        schema: dict[str, Any]
        if field.kind == NUMBER:
            number = NUMBERS[field.setting]
            schema = {"type": ["integer" if number.whole else "number", "null"], "minimum": number.least}
        else:
            schema = {"type": ["string", "null"]}
            if field.kind == MATERIAL:
                schema["format"] = "multiline"
            elif field.secret:
                schema["format"] = "password"
        if field.choices:
            schema["enum"] = list(field.choices)
        if field.prefill:
            default = field.default
            schema["default"] = (
                int(default) if isinstance(default, float) and default.is_integer() else default
            )
        form[field.key] = {"label": field.label, "description": field.description, "schema": schema}
    return form


def get_provider_info() -> dict[str, Any]:
    """The provider's metadata for Airflow's providers manager.

    A new dict on every call: Airflow adds keys to the dict it receives (``documentation-url``).
    """
    return {
        "package-name": PACKAGE_NAME,
        "name": "Banking API",
        "description": (
            "Banking API provider: mutual TLS, OAuth2 client credentials, tokens shared across task runs, "
            "deferrable sensors."
        ),
        "integrations": [
            {"integration-name": "Banking API", "tags": ["service"]},
        ],
        "hooks": [
            {
                "integration-name": "Banking API",
                "python-modules": ["airflow_provider_bankapi.hooks.bankapi"],
            },
        ],
        "operators": [
            {
                "integration-name": "Banking API",
                "python-modules": ["airflow_provider_bankapi.operators.bankapi"],
            },
        ],
        "sensors": [
            {
                "integration-name": "Banking API",
                "python-modules": ["airflow_provider_bankapi.sensors.bankapi"],
            },
        ],
        "triggers": [
            {
                "integration-name": "Banking API",
                "python-modules": ["airflow_provider_bankapi.triggers.bankapi"],
            },
        ],
        "connection-types": [
            {
                "connection-type": CONN_TYPE,
                "hook-class-name": HOOK_CLASS_NAME,
                "hook-name": "Banking API",
                "conn-fields": form_fields(),
                # The port stays on the form: Airflow's Test button reuses a saved connection's secrets only
                # when the port it sends matches the stored one, and Airflow 3.3.2 sends 0 for an empty
                # port, which never matches. A saved Port (443 for the bank) matches in every version.
                "ui-field-behaviour": {
                    "hidden-fields": ["schema"],
                    "relabeling": {field.key: field.label for field in STANDARD_FIELDS},
                    "placeholders": {
                        **{field.key: field.description for field in STANDARD_FIELDS},
                        "port": PORT_PLACEHOLDER,
                    },
                },
            }
        ],
    }
