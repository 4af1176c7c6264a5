"""The cluster store's own logic: records checked on the way in, another credential's record refused.

Airflow's Variable is replaced by a dict here: outside a task the Task SDK cannot reach Variables at all.
The real path (a task -> the Task SDK -> the API server -> the metadata DB, and the API masking the
value) is proven by tests/hooks/test_token_sharing_dags.py.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path

import pytest

from airflow_provider_bankapi.client.tokens.values import AccessToken, token_record
from airflow_provider_bankapi.hooks.variable_store import (
    CLAIM_SECONDS,
    VariableTokenStore,
    claim_name,
    cluster_store,
    variable_name,
)

KEY = "ab" * 32
OTHER_KEY = KEY[:32] + "cd" * 16  # the same Variable name (its first 32 hex digits), another credential
NOW = time.time()
TOKEN = AccessToken("token-value-0123456789abcdef", "Bearer", NOW, NOW + 3600)
NEWER = AccessToken("token-value-newer-9876543210", "Bearer", NOW + 10, NOW + 3610)


def edited(**changes) -> str:
    """A record of ours, edited by hand (anyone with Variable access can)."""
    return json.dumps({**json.loads(token_record(KEY, TOKEN)), **changes})


@pytest.fixture
def variables(monkeypatch):
    """Airflow's Variables as a dict, with Variable.get/set/delete's signatures and not-found behaviour."""
    from airflow.sdk import Variable

    values: dict[str, str] = {}

    def get(key, default=None):
        return values.get(key, default)

    def set_(key, value, description=None):
        assert isinstance(value, str)
        values[key] = value

    monkeypatch.setattr(Variable, "get", staticmethod(get))
    monkeypatch.setattr(Variable, "set", staticmethod(set_))
    monkeypatch.setattr(Variable, "delete", staticmethod(lambda key: values.pop(key)))
    return values


def test_the_variable_name_says_token_and_holds_no_secret():
    assert variable_name(KEY) == "bankapi_token_" + KEY[:32]
    assert variable_name(OTHER_KEY) == variable_name(KEY)


def test_save_then_load(variables):
    store = VariableTokenStore()
    store.save(KEY, TOKEN)

    assert list(variables) == [variable_name(KEY)]
    assert store.load(KEY) == TOKEN
    assert store.load("ef" * 32) is None


def test_discard_only_removes_the_token_it_was_given(variables):
    store = VariableTokenStore()
    store.save(KEY, NEWER)

    store.discard(KEY, TOKEN)  # a 401 on the old token must not drop the newer one another worker saved
    assert store.load(KEY) == NEWER
    store.discard(KEY, NEWER)
    assert store.load(KEY) is None
    store.discard(KEY)  # already gone is fine


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("not json", id="not-json"),
        pytest.param("[1, 2]", id="not-an-object"),
        pytest.param(token_record(OTHER_KEY, TOKEN), id="another-credential-same-name"),
        pytest.param(edited(expires_at="tomorrow"), id="edited-expiry"),
        pytest.param(edited(access_token=""), id="empty-token"),
        pytest.param(edited(access_token=None), id="no-token"),
    ],
)
def test_an_unusable_variable_is_a_miss_with_a_warning_never_an_error(variables, caplog, value):
    variables[variable_name(KEY)] = value
    caplog.set_level(logging.WARNING)

    assert VariableTokenStore().load(KEY) is None
    assert variable_name(KEY) in caplog.text
    assert TOKEN.access_token not in caplog.text


def test_outside_a_task_there_is_no_cluster_store(caplog):
    caplog.set_level(logging.WARNING)

    assert cluster_store() == []
    assert "falling back to cache_scope=host" in caplog.text


def test_inside_a_task_the_cluster_store_is_the_variable_store():
    # What the task runner does before execute(): the context that the public get_current_context() reads.
    from airflow.sdk.execution_time.context import set_current_context

    with set_current_context({"ti": None}):
        (store,) = cluster_store()
    assert isinstance(store, VariableTokenStore)


def test_the_provider_uses_no_private_task_sdk_name():
    # The Task SDK's execution-time modules and private globals change between releases; the provider
    # asks the public airflow.sdk namespace only.
    package = Path(__file__).resolve().parents[2] / "airflow_provider_bankapi"
    private = re.compile(
        r"SUPERVISOR_COMMS|airflow\.sdk\.execution_time|airflow\.sdk\.definitions\._internal"
    )
    named = [
        f"{path.relative_to(package)}:{number}"
        for path in sorted(package.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if private.search(line)
    ]
    assert named == []


def test_in_the_triggerer_the_cluster_store_is_the_variable_store(caplog):
    # The triggerer runs no task but reaches Variables as one does: the trigger marks where it builds
    # its client, so the triggerer shares the workers' token.
    from airflow_provider_bankapi.hooks.variable_store import in_triggerer

    with in_triggerer():
        (store,) = cluster_store()
    assert isinstance(store, VariableTokenStore)
    assert cluster_store() == []  # the mark ends with the block


# -- the renewal claim: one host renews, the others wait for its token ---------------------------------


@pytest.fixture
def quick_claims(monkeypatch):
    """Claims without the pauses meant for a real API server (no test here waits for time to pass)."""
    from airflow_provider_bankapi.hooks import variable_store

    monkeypatch.setattr(variable_store, "CLAIM_SETTLE", 0.0)
    monkeypatch.setattr(variable_store, "CLAIM_POLL", 0.0)


def claim(until: object) -> str:
    return json.dumps({"claimant": "another-host", "until": until})


def test_a_renewal_claims_the_variable_while_it_runs_and_removes_its_claim_after(variables, quick_claims):
    with VariableTokenStore().lock(KEY):
        held = json.loads(variables[claim_name(KEY)])
        assert NOW < held["until"] <= time.time() + CLAIM_SECONDS

    assert claim_name(KEY) not in variables
    assert "token" not in claim_name(KEY)  # Airflow would mask a claim named so in every log
    assert claim_name(KEY) != claim_name("ef" * 32)


def another_host_releases_after(variables, monkeypatch, reads: int, record: list[str]):
    """Variable.get as before, except that another host's claim goes away after ``reads`` reads of it."""
    from airflow.sdk import Variable

    left = [reads]

    def get(key, default=None):
        value = variables.get(key, default)
        if key == claim_name(KEY) and value is not None and "another-host" in value:
            record.append("waited")
            left[0] -= 1
            if left[0] == 0:
                del variables[key]  # the claimant saved its token and released its claim
        return value

    monkeypatch.setattr(Variable, "get", staticmethod(get))


def test_a_host_finding_another_hosts_claim_waits_for_it_and_claims_nothing(
    variables, quick_claims, monkeypatch
):
    variables[claim_name(KEY)] = claim(time.time() + CLAIM_SECONDS)
    record: list[str] = []
    another_host_releases_after(variables, monkeypatch, 3, record)

    with VariableTokenStore().lock(KEY):
        record.append("renewing")
        assert claim_name(KEY) not in variables  # it renews (or finds the claimant's token) without a claim

    assert record == ["waited", "waited", "waited", "renewing"]


def test_of_two_hosts_claiming_at_the_same_moment_the_later_claim_renews(
    variables, quick_claims, monkeypatch
):
    from airflow.sdk import Variable

    record: list[str] = []
    another_host_releases_after(variables, monkeypatch, 2, record)
    own_set = Variable.set

    def set_(key, value, description=None):
        own_set(key, value, description)
        variables[key] = claim(time.time() + CLAIM_SECONDS)  # the other host's claim lands just after

    monkeypatch.setattr(Variable, "set", staticmethod(set_))

    with VariableTokenStore().lock(KEY):
        record.append("renewing")

    # Read back: the other host's claim, so this host waited for it instead of renewing at the same time.
    assert record == ["waited", "waited", "renewing"]


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(claim(NOW - 1), id="expired"),
        pytest.param("not json", id="not-json"),
        pytest.param(claim("soon"), id="until-not-a-time"),
        pytest.param(claim(True), id="until-a-boolean"),
        pytest.param(json.dumps({"claimant": "x"}), id="no-until"),
    ],
)
def test_an_expired_or_unreadable_claim_is_replaced_by_this_hosts(variables, quick_claims, value):
    variables[claim_name(KEY)] = value

    with VariableTokenStore().lock(KEY):
        assert json.loads(variables[claim_name(KEY)])["claimant"] != "another-host"

    assert claim_name(KEY) not in variables


def test_a_claim_that_never_ends_is_waited_for_at_most_claim_seconds(
    variables, quick_claims, monkeypatch, caplog
):
    # A host died holding a claim dated far ahead (a clock ahead, an edit by hand): renewing here after
    # CLAIM_SECONDS costs at most one more token, never a task stuck waiting.
    from airflow_provider_bankapi.hooks import variable_store

    monkeypatch.setattr(variable_store, "CLAIM_SECONDS", 0.01)
    variables[claim_name(KEY)] = claim(time.time() + 10 * 365 * 86400)
    caplog.set_level(logging.WARNING)

    with VariableTokenStore().lock(KEY):
        pass

    assert "outlasted" in caplog.text
    assert claim_name(KEY) in variables  # not this host's to remove
