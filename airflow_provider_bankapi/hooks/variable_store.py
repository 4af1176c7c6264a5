"""The ``cluster`` token store: one token for every worker of a deployment, in an Airflow Variable.

Airflow's secrets backends are read-only and Variables have no compare-and-set (last writer wins), so
this store has no lock of its own: the host store's file lock, taken first, makes each worker machine
fetch at most once, and a cold start on N machines at the same instant costs at most N tokens. After
that, hosts renew at spread moments inside the refresh margin (``spans_hosts``): the first renews, the
others take its token from the Variable, so they settle on one token per lifetime.
The Variable's name holds ``token``, so the UI, the API and the logs mask its value.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from typing import TYPE_CHECKING

from airflow_provider_bankapi.client.tokens.values import token_from_record, token_record

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_bankapi.client.tokens.cache import TokenStore
    from airflow_provider_bankapi.client.tokens.values import AccessToken

log = logging.getLogger(__name__)

VARIABLE_PREFIX = "bankapi_token_"


def variable_name(key: str) -> str:
    """The Variable that holds the token of a cache key (the key is already a hash: no secret in it)."""
    return VARIABLE_PREFIX + key[:32]


# Set by the trigger while it builds its client: the triggerer reaches Variables through the API server
# as a task does, but runs no task, so the Task SDK's task context cannot tell.
_IN_TRIGGERER: contextvars.ContextVar[bool] = contextvars.ContextVar("bankapi_in_triggerer", default=False)


@contextlib.contextmanager
def in_triggerer() -> Iterator[None]:
    """Mark the code inside as running in the triggerer, where Variables are reachable too."""
    reset = _IN_TRIGGERER.set(True)
    try:
        yield
    finally:
        _IN_TRIGGERER.reset(reset)


def in_task_context() -> bool:
    """True inside a running task or the triggerer, where the Task SDK reaches Variables.

    A task is recognised through the Task SDK's public ``get_current_context()``, which raises outside
    one: its execution-time internals may change in any release.
    """
    if _IN_TRIGGERER.get():
        return True
    from airflow.sdk import get_current_context

    try:
        get_current_context()
    except RuntimeError:
        return False
    return True


class VariableTokenStore:
    """Tokens in Airflow Variables, shared by every worker that reaches the same API server."""

    name = "cluster"
    spans_hosts = True  # hosts renew at spread moments: the first one's token serves the others

    def load(self, key: str) -> AccessToken | None:
        from airflow.sdk import Variable

        raw = Variable.get(variable_name(key), default=None)
        if raw is None:
            return None
        try:
            # Checked like a new token: anyone with Variable access can edit it; a record written for
            # another credential or certificate whose hash shares the name's prefix is refused too.
            return token_from_record(key, raw)
        except ValueError as exc:
            log.warning("Ignoring the token Variable %s (%s); it will be replaced.", variable_name(key), exc)
            return None

    def save(self, key: str, token: AccessToken) -> None:
        from airflow.sdk import Variable

        Variable.set(
            variable_name(key),
            token_record(key, token),
            description="Banking API access token shared by the workers (cache_scope=cluster).",
        )

    def discard(self, key: str, token: AccessToken | None = None) -> None:
        from airflow.sdk import Variable

        if token is not None:
            current = self.load(key)
            if current is None or current.access_token != token.access_token:
                return
        with contextlib.suppress(Exception):  # already gone is fine
            Variable.delete(variable_name(key))

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        # No compare-and-set in Variables: the host store's lock, taken before this one, is the guard.
        yield


def cluster_store() -> list[TokenStore]:
    """The cluster store inside a task; outside one (no API server to reach), nothing, with a warning."""
    if in_task_context():
        return [VariableTokenStore()]
    log.warning(
        "cache_scope=cluster needs a running task to reach Airflow Variables; "
        "falling back to cache_scope=host here."
    )
    return []
