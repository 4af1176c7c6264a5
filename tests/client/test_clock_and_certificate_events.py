"""Events of a working day besides faulty answers: clocks that disagree, a certificate rotated, the host
token cache removed or made read-only. Each ends in the behaviour README.md documents ("Reliability").
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import stat
import subprocess
import time

import pytest
from bank_day import BankDay
from test_api import FAST, settings_for

from airflow_provider_bankapi.client.api import BankingApiClient
from airflow_provider_bankapi.client.identity.material import IdentityMaterial
from airflow_provider_bankapi.client.tokens.host import HostTokenStore
from airflow_provider_bankapi.errors import InvalidClientCertificateError

FIVE_MINUTES = 300
BALANCE = "/accounts/123/balance"
SKEWS = [pytest.param(FIVE_MINUTES, id="bank-5min-ahead"), pytest.param(-FIVE_MINUTES, id="bank-5min-behind")]


class WorkerClock:
    """The worker's clock, which the test moves forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


# -- clock skew between the worker and the bank --------------------------------------------------------


@pytest.mark.bankapi_sandbox(expires_in=60)
@pytest.mark.parametrize("skew", SKEWS)
def test_clock_skew_leaves_a_token_its_stated_lifetime(bankapi_sandbox, skew):
    # expires_in is a duration: the worker counts it on its own clock, whatever the bank's says.
    BankDay(bankapi_sandbox).set_clock_offset(skew)
    clock = WorkerClock()
    settings = settings_for(bankapi_sandbox, refresh_margin=5)
    with BankingApiClient(settings, token_stores=[], clock=clock) as client:
        for _ in range(3):
            client.get_balance("123")
        assert bankapi_sandbox.counters()["tokens_issued"] == 1
        clock.offset = 56  # past lifetime - margin on the worker's clock: renewed before the bank refuses it
        client.get_balance("123")
    assert bankapi_sandbox.counters()["tokens_issued"] == 2
    assert [entry["status"] for entry in BankDay(bankapi_sandbox).take_requests()] == [200] * 6  # never a 401


@pytest.mark.parametrize("skew", SKEWS)
def test_clock_skew_a_token_the_bank_expires_early_is_replaced_once(bankapi_sandbox, skew):
    BankDay(bankapi_sandbox).set_clock_offset(skew)
    with BankingApiClient(settings_for(bankapi_sandbox), token_stores=[]) as client:
        client.get_balance("123")
        bankapi_sandbox.expire_tokens()  # the bank's clock says the token is over, the worker's does not
        client.get_balance("123")
    statuses = [entry["status"] for entry in BankDay(bankapi_sandbox).take_requests()]
    assert statuses == [200, 200, 401, 200, 200]  # token, call, 401, new token, the call again


def test_a_retry_after_date_from_a_bank_clock_behind_is_honoured_as_the_bank_meant(bankapi_sandbox):
    BankDay(bankapi_sandbox).set_clock_offset(-FIVE_MINUTES)
    bankapi_sandbox.inject_fault(BALANCE, "429-date", retry_after=1)
    with BankingApiClient(settings_for(bankapi_sandbox), token_stores=[]) as client:
        assert client.get_balance("123")["account_id"] == "123"
    assert [entry["fault"] for entry in BankDay(bankapi_sandbox).take_requests()] == [None, "429-date", None]


def test_a_retry_after_date_from_a_bank_clock_ahead_is_honoured_as_the_bank_meant(bankapi_sandbox):
    BankDay(bankapi_sandbox).set_clock_offset(FIVE_MINUTES)
    bankapi_sandbox.inject_fault(BALANCE, "429-date", retry_after=1)
    with BankingApiClient(settings_for(bankapi_sandbox), token_stores=[]) as client:
        assert client.get_balance("123")["account_id"] == "123"
    # Read against the answer's Date (the bank's clock too), the date asks for about a second, not 301 s.
    assert [entry["fault"] for entry in BankDay(bankapi_sandbox).take_requests()] == [None, "429-date", None]


# -- a certificate rotated between two runs ---------------------------------------------------------------


def test_a_certificate_rotated_between_two_runs(bankapi_sandbox, tmp_path):
    store = tmp_path / "tokens"
    first = settings_for(bankapi_sandbox)
    with BankingApiClient(first, token_stores=[HostTokenStore(store)]) as run:
        run.get_balance("123")

    # Rotation, as the bank describes it: the second certificate bound, the connection switched, the first
    # unbound. The next run presents the second certificate: its token is new (a token is bound to the
    # certificate that fetched it), though the first one is still cached and fresh.
    second = bankapi_sandbox.issue_client_certificate("client-next", bind=True)
    rotated = dataclasses.replace(
        first,
        identity=IdentityMaterial(
            client_cert=str(second.certificate),
            client_private_key=str(second.private_key),
            ca_cert=str(bankapi_sandbox.ca_cert),
        ),
    )
    bankapi_sandbox.core.unbind(bankapi_sandbox.client_id, bankapi_sandbox.client_cert)
    with BankingApiClient(rotated, token_stores=[HostTokenStore(store)]) as run:
        run.get_balance("123")
    assert bankapi_sandbox.counters()["tokens_issued"] == 2

    # A worker still on the old connection: its cached token is refused, and so is a new one, by name.
    with (
        BankingApiClient(first, token_stores=[HostTokenStore(store)]) as stale,
        pytest.raises(InvalidClientCertificateError, match="Invalid Client Certificate"),
    ):
        stale.get_balance("123")


# -- the host token cache removed or made read-only mid-day ------------------------------------------------


def _run(sandbox, store) -> None:
    """One task run: a new process's client (no memory store), one balance."""
    with BankingApiClient(settings_for(sandbox, transport=FAST), token_stores=[HostTokenStore(store)]) as run:
        run.get_balance("123")


def test_a_host_cache_removed_mid_day_costs_one_token_and_comes_back_private(bankapi_sandbox, tmp_path):
    store = tmp_path / "cache" / "tokens"
    _run(bankapi_sandbox, store)
    shutil.rmtree(tmp_path / "cache")
    _run(bankapi_sandbox, store)
    _run(bankapi_sandbox, store)
    assert bankapi_sandbox.counters()["tokens_issued"] == 2
    assert stat.S_IMODE(store.stat().st_mode) == 0o700
    assert len(list(store.glob("*.json"))) == 1


@contextlib.contextmanager
def read_only(directory):
    """The directory made read-only, for root too (the suite runs as root): the immutable attribute."""
    made = subprocess.run(["chattr", "+i", str(directory)], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"this file system has no immutable attribute: {made.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(directory)], check=True)


def test_a_read_only_host_cache_costs_a_token_per_run_and_never_a_call(bankapi_sandbox, tmp_path, caplog):
    store = tmp_path / "tokens"
    _run(bankapi_sandbox, store)
    for token_file in store.glob("*.json"):
        token_file.unlink()  # the token is gone, and the directory is read-only from now on
    with read_only(store), caplog.at_level(logging.WARNING):
        _run(bankapi_sandbox, store)
        _run(bankapi_sandbox, store)
    assert bankapi_sandbox.counters()["tokens_issued"] == 3  # one per run: tokens last one process
    assert bankapi_sandbox.counters()["api_requests"] == 3  # every call made it
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any("Token store host failed to" in warning for warning in warnings), warnings
