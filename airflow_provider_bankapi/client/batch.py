"""Balances of many accounts: concurrent calls over one client, every success and every failure by id.

One cold balance does not come here: this module is the batch's alone (``get_balances``,
``iter_balances``). The workers share the client's one Session and its token, fetched before they start.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

from airflow_provider_bankapi.client.api import balance_path, unexpected_failure
from airflow_provider_bankapi.client.endpoints import checked_account_id
from airflow_provider_bankapi.client.fields import DEFAULT_MAX_WORKERS
from airflow_provider_bankapi.errors import (
    ApiError,
    BankingApiError,
    ConfigurationError,
    ForbiddenError,
    InvalidClientCertificateError,
    InvalidCredentialsError,
    TlsHandshakeError,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from concurrent.futures import Future

    from airflow_provider_bankapi.client.api import BankingApiClient


@dataclass(frozen=True)
class BatchResult:
    """Every success and every failure of a call made for many keys (account ids)."""

    succeeded: dict[str, Any]
    failed: dict[str, BankingApiError]

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        """One line for logs and errors: how many succeeded, and each failure by key with its error type."""
        failures = "; ".join(
            f"{key}: {type(error).__name__}: {error.message}" for key, error in self.failed.items()
        )
        text = f"{len(self.succeeded)} succeeded, {len(self.failed)} failed"
        return f"{text} ({failures})" if failures else text


def fails_every_account(error: BankingApiError) -> bool:
    """Whether an error comes from the credential or this client's setup rather than from one account:
    a refused client_id/secret or certificate, a refused source IP, a token still refused after the
    renewal, a TLS failure or a configuration error. Every other account would fail the same way.
    """
    credential = (
        ConfigurationError,
        TlsHandshakeError,
        InvalidCredentialsError,
        InvalidClientCertificateError,
        ForbiddenError,
    )
    # Any other 401 on a protected call came after the one renewal of the token: it is refused too.
    return isinstance(error, credential) or (isinstance(error, ApiError) and error.status_code == 401)


def get_balances(
    client: BankingApiClient, account_ids: Sequence[str | int], *, max_workers: int = DEFAULT_MAX_WORKERS
) -> BatchResult:
    """Balances of many accounts, at most ``max_workers`` at once; every success and failure by id.

    A failure of the credential itself (see :func:`fails_every_account`) stops the batch: the
    accounts not yet asked for fail with it, and when no account succeeded it is raised, once.
    """
    succeeded: dict[str, Any] = {}
    failed: dict[str, BankingApiError] = {}
    for account_id, outcome in iter_balances(client, account_ids, max_workers=max_workers):
        if isinstance(outcome, BankingApiError):
            failed[account_id] = outcome
        else:
            succeeded[account_id] = outcome
    return BatchResult(succeeded, failed)


def iter_balances(
    client: BankingApiClient, account_ids: Sequence[str | int], *, max_workers: int = DEFAULT_MAX_WORKERS
) -> Iterator[tuple[str, Any]]:
    """``(account_id, balance or BankingApiError)`` for each account, in the order of the ids (without
    duplicates), as the answers arrive: the same outcomes as :func:`get_balances`, without holding them.

    At most ``max_workers`` calls run at once, and at most four times as many are asked for ahead of
    the consumer, so memory stays flat whatever the number of accounts. The token is fetched here,
    before any worker starts (a refused credential raises at once).
    """
    ids = list(dict.fromkeys(checked_account_id(account_id) for account_id in account_ids))
    if not ids:
        return iter(())
    client.get_token()  # one token for the whole batch, fetched before the workers start
    return _balances_in_order(client, ids, max(1, min(max_workers, len(ids))))


def _balances_in_order(client: BankingApiClient, ids: list[str], workers: int) -> Iterator[tuple[str, Any]]:
    # Yielded in the order of the ids (deterministic output), with a window of calls asked for ahead:
    # one slow account holds back the yield, not the other workers, until the window is full.
    pending = iter(ids)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bankapi-balance")
    try:
        ahead = deque((i, pool.submit(_balance_of_one, client, i)) for i in islice(pending, 4 * workers))
        delivered = False
        while ahead:
            account_id, future = ahead.popleft()
            outcome = _outcome(future)
            if isinstance(outcome, BankingApiError) and fails_every_account(outcome):
                yield from _after_credential_failure(account_id, outcome, ahead, pending, delivered)
                return
            ahead.extend((i, pool.submit(_balance_of_one, client, i)) for i in islice(pending, 1))
            delivered = delivered or not isinstance(outcome, BankingApiError)
            yield account_id, outcome
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # a consumer that stops early: no queued call runs


def _balance_of_one(client: BankingApiClient, account_id: str) -> Any:
    # Whatever one account's call raises is that account's failure, in the error tree: the batch keeps
    # the balances it already has.
    try:
        return client.get_balance(account_id)
    except BankingApiError:
        raise
    except Exception as exc:
        raise unexpected_failure(exc, f"GET {balance_path(account_id)}", client.redactor) from exc


def _outcome(future: Future[Any]) -> Any:
    try:
        return future.result()
    except BankingApiError as exc:
        return exc


def _after_credential_failure(
    account_id: str,
    error: BankingApiError,
    ahead: deque[tuple[str, Future[Any]]],
    pending: Iterator[str],
    delivered: bool,
) -> Iterator[tuple[str, Any]]:
    # No further call: the calls not started are cancelled, those already running end as they end,
    # and every account not asked for fails with the credential's error. When no account at all
    # succeeded, that error is raised instead, once (the window is small: its answers are awaited).
    for _, future in ahead:
        future.cancel()
    finished = [(i, error if future.cancelled() else _outcome(future)) for i, future in ahead]
    if not delivered and all(isinstance(outcome, BankingApiError) for _, outcome in finished):
        raise error
    yield account_id, error
    yield from finished
    yield from ((i, error) for i in pending)
