"""The ``cluster`` token store: one token for every worker of a deployment, in an Airflow Variable.

Airflow's secrets backends are read-only and Variables have no compare-and-set (last writer wins). The
host store's file lock, taken first, makes each worker machine fetch at most once; across machines, the
store's lock is a renewal claim in a second Variable (:meth:`VariableTokenStore.lock`): a host about to
renew writes its claim, waits long enough for a claim written at the same moment to land, and reads it
back; the last claim written is the one every host reads, so one host renews while the others wait for
its token, and N machines starting together settle on one token. A claim expires, so a host that dies
holding one delays the others by at most :data:`CLAIM_SECONDS`. Hosts also renew at spread moments
inside the refresh margin (``spans_hosts``): the first renews, the others find its token in the Variable.
The token's Variable name holds ``token``, so the UI, the API and the logs mask its value.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import math
import secrets
import time
from typing import TYPE_CHECKING

from airflow_provider_bankapi.client.tokens.values import token_from_record, token_record

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_bankapi.client.tokens.cache import TokenStore
    from airflow_provider_bankapi.client.tokens.values import AccessToken

log = logging.getLogger(__name__)

VARIABLE_PREFIX = "bankapi_token_"
#: Renewal claims hold no secret, and their name no ``token``: Airflow masks every string of a Variable
#: whose name says ``token``, and would then hide the claim's values wherever they appear in a log.
CLAIM_PREFIX = "bankapi_renewal_"
#: Seconds a renewal claim lasts: a token request, with its retries, ends well within it; a host that died
#: holding a claim makes the others wait this long at most before they renew themselves.
CLAIM_SECONDS = 30.0
#: Seconds between writing a claim and reading it back: longer than a Variable write (one call to the API
#: server) takes to land, so that two hosts that claimed at the same moment both read the later claim.
CLAIM_SETTLE = 0.5
#: Seconds between two reads of another host's claim while waiting for its token.
CLAIM_POLL = 0.2


def variable_name(key: str) -> str:
    """The Variable that holds the token of a cache key (the key is already a hash: no secret in it)."""
    return VARIABLE_PREFIX + key[:32]


def claim_name(key: str) -> str:
    """The Variable in which a host claims the renewal of a cache key's token."""
    return CLAIM_PREFIX + key[:32]


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
        """The renewal of ``key`` across hosts: held by the host whose claim every host reads back.

        A host that finds another's claim waits until it is gone (the claimant's token is then in the
        store, where the cache looks again) or has expired, and goes on without one: the worst case of
        a lost race or a slow API server is one more token, as without a claim.
        """
        from airflow.sdk import Variable

        name = claim_name(key)
        mine: str | None = None
        if _live_claim(name) is None:
            mine = json.dumps({"claimant": secrets.token_hex(8), "until": time.time() + CLAIM_SECONDS})
            Variable.set(name, mine, description="Banking API token renewal under way (cache_scope=cluster).")
            time.sleep(CLAIM_SETTLE)  # a claim written at the same moment lands: the later one is read
            if Variable.get(name, default=None) != mine:
                mine = None
        if mine is None:
            _wait_while_claimed(name)
        try:
            yield
        finally:
            # Read once more: a host that saw no claim just before mine landed may have claimed over it,
            # and deleting its claim would free the renewal for a third host.
            if mine is not None and Variable.get(name, default=None) == mine:
                Variable.delete(name)


def _live_claim(name: str) -> str | None:
    """The claim in ``name`` while it lasts; an expired or unreadable one counts as none."""
    from airflow.sdk import Variable

    raw = Variable.get(name, default=None)
    if raw is None:
        return None
    try:
        until = json.loads(raw)["until"]
    except (ValueError, TypeError, KeyError):
        log.warning("Ignoring the renewal claim Variable %s (not a claim this provider wrote).", name)
        return None
    if isinstance(until, bool) or not isinstance(until, (int, float)) or not math.isfinite(until):
        log.warning("Ignoring the renewal claim Variable %s (its until is not a time).", name)
        return None
    return str(raw) if time.time() < until else None


def _wait_while_claimed(name: str) -> None:
    """Wait until another host's claim is gone or has expired, at most :data:`CLAIM_SECONDS`."""
    deadline = time.monotonic() + CLAIM_SECONDS
    while _live_claim(name) is not None:
        if time.monotonic() >= deadline:
            log.warning("Another host's renewal claim %s outlasted %g s; renewing here.", name, CLAIM_SECONDS)
            return
        time.sleep(CLAIM_POLL)


def cluster_store() -> list[TokenStore]:
    """The cluster store inside a task; outside one (no API server to reach), nothing, with a warning."""
    if in_task_context():
        return [VariableTokenStore()]
    log.warning(
        "cache_scope=cluster needs a running task to reach Airflow Variables; "
        "falling back to cache_scope=host here."
    )
    return []
