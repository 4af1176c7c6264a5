"""What Airflow learns about this provider without importing it: the ``bankapi`` connection type and its form.

Airflow calls :func:`get_provider_info` through the ``apache_airflow_provider`` entry point during provider
discovery, in every component (scheduler, API server, workers, triggerer), so this module imports nothing
but the standard library and ``client/settings.py`` (itself standard library only), where every default
shown in the form is defined.

Since Airflow 3.2 the React connection form is drawn from the declarative ``conn-fields`` and
``ui-field-behaviour`` below; 3.3 reads nothing else (``get_connection_form_widgets()`` is ignored).
Each ``conn-fields`` key is the key users write in the connection's extra JSON, for example in an
``AIRFLOW_CONN_BANKAPI_DEFAULT`` environment variable, so the keys are public API.

Airflow masks extras in its UI, REST API and logs by key name only (``password``, ``secret``,
``private_key``, ``token``, ``proxy``, ...). Every key that holds key material therefore carries such a
word, and no other key does, or Airflow would hide harmless values such as the CA path.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_bankapi.client.settings import (
    CACHE_SCOPES,
    DEFAULT_CACHE_SCOPE,
    DEFAULT_INTERACTION_ID_HEADER,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_MAX_RETRIES,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_REFRESH_MARGIN,
    NO_INTERACTION_ID,
    PRODUCTION_BASE_URL,
    TOKEN_PATH,
)

PACKAGE_NAME = "airflow-provider-bankapi"
CONN_TYPE = "bankapi"
HOOK_CLASS_NAME = "airflow_provider_bankapi.hooks.bankapi.BankingApiHook"
PORT_PLACEHOLDER = "443 (the Base URL's port; needed by the Test button)"

_TEXT = ["string", "null"]

# The extra fields in the order the form shows them: identity first (PEM pair or PKCS#12 bundle, then the
# bank's CA), then the token, then the transport.
#
# PEM fields use the "multiline" format (a textarea). The private key does too, although it is secret:
# the "password" format is an <input type=password>, and browsers strip line breaks from such inputs,
# which would break pasted PEM. Its key name holds "private_key", so Airflow still masks its value
# everywhere once saved. Single-line secrets use "password".
_CONN_FIELDS: tuple[tuple[str, dict[str, Any]], ...] = (
    (
        "client_cert",
        {
            "label": "Client certificate",
            "description": (
                "The client certificate registered with the bank for mutual TLS: PEM text "
                "(-----BEGIN CERTIFICATE-----, intermediates may follow) or a file path on the workers. "
                "Leave empty when you use a PKCS#12 bundle."
            ),
            "schema": {"type": _TEXT, "format": "multiline"},
        },
    ),
    (
        "client_private_key",
        {
            "label": "Client private key",
            "description": (
                "The private key of the client certificate: PEM text or a file path on the workers. "
                "Masked by Airflow."
            ),
            "schema": {"type": _TEXT, "format": "multiline"},
        },
    ),
    (
        "client_private_key_password",
        {
            "label": "Private key passphrase",
            "description": "Only if the private key is encrypted: its passphrase.",
            "schema": {"type": _TEXT, "format": "password"},
        },
    ),
    (
        "client_pfx_secret",
        {
            "label": "PKCS#12 bundle (.pfx / .p12)",
            "description": (
                "Instead of the certificate and key above: the PKCS#12 bundle holding both, as base64 "
                "text or a file path on the workers. Masked by Airflow."
            ),
            "schema": {"type": _TEXT, "format": "password"},
        },
    ),
    (
        "client_pfx_password",
        {
            "label": "PKCS#12 password",
            "description": "The password of the PKCS#12 bundle, if it has one.",
            "schema": {"type": _TEXT, "format": "password"},
        },
    ),
    (
        "ca_cert",
        {
            "label": "Bank CA certificate",
            "description": (
                "The CA that signed the bank's server certificate: PEM text or a file path. "
                "Leave empty to trust OpenSSL's default CA store (the system's, or SSL_CERT_FILE)."
            ),
            "schema": {"type": _TEXT, "format": "multiline"},
        },
    ),
    (
        "auth_endpoint",
        {
            "label": "Token endpoint",
            "description": "Path of the OAuth2 token endpoint under the Base URL.",
            "schema": {"type": _TEXT, "default": TOKEN_PATH},
        },
    ),
    (
        "cache_scope",
        {
            "label": "Token cache scope",
            "description": (
                "Where access tokens are shared between task runs: host = every task on the same worker "
                "machine (default); cluster = every worker, through an Airflow Variable; process = "
                "one task process only; off = a new token for every client."
            ),
            "schema": {"type": _TEXT, "enum": list(CACHE_SCOPES), "default": DEFAULT_CACHE_SCOPE},
        },
    ),
    (
        "refresh_margin",
        {
            "label": "Token refresh margin (seconds)",
            "description": (
                "A token is renewed this many seconds before it expires (the bank recommends 5 minutes)."
            ),
            "schema": {"type": ["integer", "null"], "minimum": 0, "default": int(DEFAULT_REFRESH_MARGIN)},
        },
    ),
    (
        "timeout",
        {
            "label": "Timeout (seconds)",
            "description": (
                f"How long to wait for the bank to answer one request. Default: {DEFAULT_READ_TIMEOUT:g}."
            ),
            "schema": {"type": ["number", "null"], "minimum": 0},
        },
    ),
    (
        "max_retries",
        {
            "label": "Maximum retries",
            "description": (
                "How many times a request is retried after a transient failure (429, 503, a dropped "
                "connection), honouring Retry-After. 0 disables retries. "
                f"Default: {DEFAULT_MAX_RETRIES}."
            ),
            "schema": {"type": ["integer", "null"], "minimum": 0},
        },
    ),
    (
        "max_response_bytes",
        {
            "label": "Largest answer (bytes)",
            "description": (
                "The largest answer of one call, on the wire and once inflated; a larger one is refused "
                "while it is read. Raise it for legitimately large resources (long statements). Token "
                f"answers keep a fixed 1 MiB. Default: {DEFAULT_MAX_RESPONSE_BYTES} (16 MiB)."
            ),
            "schema": {"type": ["integer", "null"], "minimum": 1024},
        },
    ),
    (
        "proxy",
        {
            "label": "Egress proxy",
            "description": (
                "URL of the HTTP(S) proxy through which requests to the bank leave your network, "
                "e.g. http://user:password@proxy.internal:3128. Masked by Airflow."
            ),
            "schema": {"type": _TEXT, "format": "password"},
        },
    ),
    (
        "interaction_id_header",
        {
            "label": "Interaction id header",
            "description": (
                "The request header that carries a fresh UUID on every request, kept on every error so "
                f"that the bank's support desk can find the request. {NO_INTERACTION_ID!r} sends none. "
                f"Default: {DEFAULT_INTERACTION_ID_HEADER}."
            ),
            "schema": {"type": _TEXT, "default": DEFAULT_INTERACTION_ID_HEADER},
        },
    ),
)

#: Every valid key of the connection's extra JSON. The hook rejects any other key.
EXTRA_KEYS: tuple[str, ...] = tuple(key for key, _ in _CONN_FIELDS)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


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
                "conn-fields": {key: _copy(field) for key, field in _CONN_FIELDS},
                # The port stays on the form: Airflow's Test button reuses a saved connection's secrets only
                # when the port it sends matches the stored one, and Airflow 3.3.2 sends 0 for an empty
                # port, which never matches. A saved Port (443 for the bank) matches in every version.
                "ui-field-behaviour": {
                    "hidden-fields": ["schema"],
                    "relabeling": {"host": "Base URL", "login": "Client ID", "password": "Client secret"},
                    "placeholders": {
                        "host": PRODUCTION_BASE_URL,
                        "port": PORT_PLACEHOLDER,
                        "login": "client_id issued by the bank",
                        "password": "client_secret issued by the bank",
                    },
                },
            }
        ],
    }
