"""Property-based tests for reading PEM and PKCS#12 input.

Whatever arrives in a connection field, loading either succeeds or raises a ConfigurationError
(never a ValueError, TypeError or UnicodeError from deeper down); and valid material survives
the ways copy-paste, JSON and form fields mangle it.
"""

from __future__ import annotations

import base64
import datetime
import re
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from airflow_provider_bankapi.client.identity.identity import load_identity
from airflow_provider_bankapi.client.identity.material import IdentityMaterial
from airflow_provider_bankapi.errors import ClientIdentityError, ConfigurationError
from bankapi_sandbox import pki

# No deadline: the machine is shared, and a timed assertion is not a property of the code.
PROPERTY = settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
SLOW_PROPERTY = settings(deadline=None, max_examples=20, suppress_health_check=[HealthCheck.too_slow])

PASSWORDS = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40).filter(
    lambda text: text.strip() != ""
)


@dataclass(frozen=True)
class Material:
    ca: pki.Issued
    client: pki.Issued
    cert: str
    key: str
    ca_pem: str
    pfx: bytes
    pfx_password: str = "pfx-password"


@pytest.fixture(scope="module")
def m() -> Material:
    ca = pki.make_ca()
    client = pki.issue_client_certificate(ca)
    return Material(
        ca=ca,
        client=client,
        cert=client.certificate_pem().decode(),
        key=client.private_key_pem().decode(),
        ca_pem=ca.certificate_pem().decode(),
        pfx=client.pkcs12(b"pfx-password", ca=ca),
    )


def load_or_configuration_error(material: IdentityMaterial) -> str | None:
    """The fingerprint when the material loads; None when it is refused with a ConfigurationError."""
    try:
        return load_identity(material).fingerprint_sha256
    except ConfigurationError as exc:
        refused = exc
    assert refused.field is not None
    assert refused.message
    return None


# ----------------------------------------------------------------------------------------------
# Garbage never crashes with anything but a ConfigurationError


@PROPERTY
@given(garbage=st.text(max_size=300))
def test_any_text_as_certificate(m: Material, garbage: str) -> None:
    assert (
        load_or_configuration_error(IdentityMaterial(client_cert=garbage, client_private_key=m.key)) is None
    )


@PROPERTY
@given(garbage=st.text(max_size=300))
def test_any_text_as_key(m: Material, garbage: str) -> None:
    assert (
        load_or_configuration_error(IdentityMaterial(client_cert=m.cert, client_private_key=garbage)) is None
    )


@PROPERTY
@given(garbage=st.text(max_size=300) | st.binary(max_size=300))
def test_any_text_or_bytes_as_pfx(m: Material, garbage: str | bytes) -> None:
    assert (
        load_or_configuration_error(IdentityMaterial(client_pfx_secret=garbage, client_pfx_password="pw"))
        is None
    )


@PROPERTY
@given(
    garbage=st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\n ", max_size=400
    )
)
def test_any_base64_looking_text_as_pfx(m: Material, garbage: str) -> None:
    assert load_or_configuration_error(IdentityMaterial(client_pfx_secret=garbage)) is None


@PROPERTY
@given(garbage=st.text(max_size=300))
def test_any_text_as_ca(m: Material, garbage: str) -> None:
    result = load_or_configuration_error(
        IdentityMaterial(client_cert=m.cert, client_private_key=m.key, ca_cert=garbage)
    )
    # Whitespace-only counts as unset (system trust): the identity then loads.
    assert result is None or garbage.strip() == ""


@st.composite
def pem_with_garbage_block(draw: st.DrawFn) -> str:
    label = draw(
        st.sampled_from(["CERTIFICATE", "PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "RSA PRIVATE KEY", "X"])
    )
    body = draw(st.binary(max_size=200))
    return f"-----BEGIN {label}-----\n{base64.encodebytes(body).decode()}-----END {label}-----\n"


@PROPERTY
@given(cert=pem_with_garbage_block(), key=pem_with_garbage_block(), password=st.none() | PASSWORDS)
def test_well_framed_pem_with_garbage_inside(m: Material, cert: str, key: str, password: str | None) -> None:
    material = IdentityMaterial(
        client_cert=cert, client_private_key=key, client_private_key_password=password
    )
    assert load_or_configuration_error(material) is None


@st.composite
def mutation(draw: st.DrawFn, text: str) -> str:
    """The text with a few characters deleted, replaced or inserted."""
    chars = list(text)
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(chars) - 1))
        action = draw(st.sampled_from(["delete", "replace", "insert"]))
        character = draw(st.characters(blacklist_categories=("Cs",)))
        if action == "delete":
            del chars[position]
        elif action == "replace":
            chars[position] = character
        else:
            chars.insert(position, character)
    return "".join(chars)


@PROPERTY
@given(data=st.data())
def test_mutated_pem_loads_the_same_identity_or_is_refused(m: Material, data: st.DataObject) -> None:
    cert = data.draw(mutation(m.cert)) if data.draw(st.booleans()) else m.cert
    key = data.draw(mutation(m.key))
    fingerprint = load_or_configuration_error(IdentityMaterial(client_cert=cert, client_private_key=key))
    # A mutated certificate can still be a well-formed one for the same key (a changed serial number):
    # no local CA signed the client certificate, so only the bank's handshake can refuse it. A mutated
    # key must never load another identity.
    assert fingerprint in (None, m.client.fingerprint_sha256) or cert != m.cert


@SLOW_PROPERTY
@given(data=st.data())
def test_mutated_pfx_loads_the_same_identity_or_is_refused(m: Material, data: st.DataObject) -> None:
    raw = bytearray(m.pfx)
    for _ in range(data.draw(st.integers(1, 3))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    material = IdentityMaterial(client_pfx_secret=bytes(raw[:cut]), client_pfx_password=m.pfx_password)
    assert load_or_configuration_error(material) in (None, m.client.fingerprint_sha256)


# ----------------------------------------------------------------------------------------------
# Valid material survives whitespace, escaping and re-wrapping


PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z ]+)-----(.*?)-----END \1-----", re.DOTALL)


@st.composite
def mangled(draw: st.DrawFn, pem_text: str) -> str:
    """What copy-paste does to PEM: re-wrapped base64, other line ends, indentation, escapes, noise."""
    newline = draw(st.sampled_from(["\n", "\r\n", "\\n", "\\r\\n", " ", "\n\n", "\t"]))
    indent = draw(st.sampled_from(["", " ", "    ", "\t"]))
    pieces = []
    for label, body in PEM_BLOCK.findall(pem_text):
        width = draw(st.integers(8, 120))
        compact = "".join(body.split())
        lines = [indent + compact[i : i + width] for i in range(0, len(compact), width)]
        pieces.append(newline.join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"]))
    before = draw(st.sampled_from(["", "  \n", "Bag Attributes\n    friendlyName: client\n", '"']))
    after = draw(st.sampled_from(["", "\n", "  \n\n", '"', "\\n"]))
    return before + newline.join(pieces) + after


@PROPERTY
@given(data=st.data())
def test_valid_pem_survives_mangling(m: Material, data: st.DataObject) -> None:
    cert = data.draw(mangled(m.cert + m.ca_pem))
    key = data.draw(mangled(m.key))
    identity = load_identity(IdentityMaterial(client_cert=cert, client_private_key=key, ca_cert=m.ca_pem))
    assert identity.fingerprint_sha256 == m.client.fingerprint_sha256
    assert identity.chain == (m.client.certificate, m.ca.certificate)


@PROPERTY
@given(
    width=st.integers(4, 200),
    newline=st.sampled_from(["\n", "\r\n", "\\n", " "]),
    urlsafe=st.booleans(),
    padding=st.booleans(),
    around=st.sampled_from(["", " ", "\n", "\t\n "]),
)
def test_valid_pfx_base64_survives_mangling(
    m: Material, width: int, newline: str, urlsafe: bool, padding: bool, around: str
) -> None:
    text = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(m.pfx).decode()
    if not padding:
        text = text.rstrip("=")
    text = around + newline.join(text[i : i + width] for i in range(0, len(text), width)) + around
    identity = load_identity(IdentityMaterial(client_pfx_secret=text, client_pfx_password=m.pfx_password))
    assert identity.fingerprint_sha256 == m.client.fingerprint_sha256


# ----------------------------------------------------------------------------------------------
# Passwords: any password works, any wrong one is refused without being shown


@PROPERTY
@given(password=PASSWORDS)
def test_any_key_passphrase_works(m: Material, password: str) -> None:
    key = m.client.private_key_pem(password.encode()).decode()
    identity = load_identity(
        IdentityMaterial(client_cert=m.cert, client_private_key=key, client_private_key_password=password)
    )
    assert identity.fingerprint_sha256 == m.client.fingerprint_sha256


def refusal(material: IdentityMaterial) -> ClientIdentityError:
    with pytest.raises(ClientIdentityError) as caught:
        load_identity(material)
    return caught.value


REFERENCE_WRONG_PASSWORD = "reference-wrong-password"


@PROPERTY
@given(right=PASSWORDS, wrong=PASSWORDS)
def test_a_wrong_key_passphrase_is_refused_and_not_shown(m: Material, right: str, wrong: str) -> None:
    assume(wrong != right and wrong.strip() != right)
    assume(REFERENCE_WRONG_PASSWORD.strip() != right)
    key = m.client.private_key_pem(right.encode()).decode()
    error = refusal(
        IdentityMaterial(client_cert=m.cert, client_private_key=key, client_private_key_password=wrong)
    )
    reference = refusal(
        IdentityMaterial(
            client_cert=m.cert, client_private_key=key, client_private_key_password=REFERENCE_WRONG_PASSWORD
        )
    )
    assert error.field == "client_private_key_password"
    # The message does not depend on the password at all, so it cannot show any part of it.
    assert (str(error), repr(error)) == (str(reference), repr(reference))


@SLOW_PROPERTY
@given(right=PASSWORDS, wrong=PASSWORDS)
def test_pfx_passwords(m: Material, right: str, wrong: str) -> None:
    assume(wrong != right and wrong.strip() != right)
    assume(REFERENCE_WRONG_PASSWORD != right)
    pfx = base64.b64encode(m.client.pkcs12(right.encode())).decode()
    identity = load_identity(IdentityMaterial(client_pfx_secret=pfx, client_pfx_password=right))
    assert identity.fingerprint_sha256 == m.client.fingerprint_sha256
    error = refusal(IdentityMaterial(client_pfx_secret=pfx, client_pfx_password=wrong))
    reference = refusal(IdentityMaterial(client_pfx_secret=pfx, client_pfx_password=REFERENCE_WRONG_PASSWORD))
    assert error.field == "client_pfx_password"
    assert (str(error), repr(error)) == (str(reference), repr(reference))


@PROPERTY
@given(seconds_left=st.integers(1, 360 * 86400), window=st.integers(0, 400))
def test_the_expiry_warning_follows_the_window(m: Material, seconds_left: int, window: int) -> None:
    now = m.client.certificate.not_valid_after_utc - datetime.timedelta(seconds=seconds_left)
    identity = load_identity(
        IdentityMaterial(client_cert=m.cert, client_private_key=m.key, ca_cert=m.ca_pem),
        now=now,
        expiry_warning_days=window,
    )
    assert bool(identity.warnings) is (seconds_left <= window * 86400)
    assert identity.describe(now).days_left == seconds_left // 86400
