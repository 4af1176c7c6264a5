"""DAGs whose tasks each call BankingApiHook in a process of their own (run with ``use_executor=True``).

Used by tests/hooks/test_token_sharing_dags.py and benchmarks/cluster_day.py. The tasks also print the
secrets they can reach, as a careless DAG author might: the test proves the task logs show ``***`` instead.
"""

from __future__ import annotations

import datetime
import logging
import os
import time
from pathlib import Path

from airflow.sdk import DAG, task

log = logging.getLogger(__name__)
START = datetime.datetime(2024, 1, 1)


def _call_the_bank(account_id: str) -> dict:
    from airflow_provider_bankapi.hooks.bankapi import BankingApiHook

    hook = BankingApiHook()
    balance = hook.get_balance(account_id)
    settings = hook.client.settings
    print(f"token used: {hook.get_token().access_token}")
    print(f"client_secret: {settings.client_secret}")
    log.info("private key: %s", settings.identity.client_private_key)
    log.info("pfx password: %s", settings.identity.client_pfx_password)
    return {"pid": os.getpid(), "account_id": balance["account_id"]}


with DAG("bankapi_token_sharing", schedule=None, start_date=START, catchup=False):

    @task
    def accounts(**context) -> list[str]:
        return [str(number) for number in range(context["dag_run"].conf.get("accounts", 20))]

    @task
    def balance(account_id: str) -> dict:
        return _call_the_bank(account_id)

    balance.expand(account_id=accounts())


def _wait_for_everyone(barrier: str, parties: int, me: int) -> None:
    """A file barrier: every party's task process calls the bank at the same instant."""
    folder = Path(barrier)
    (folder / f"arrived-{me}").touch()
    deadline = time.monotonic() + 120
    while len(list(folder.glob("arrived-*"))) < parties:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(list(folder.glob('arrived-*')))} of {parties} tasks arrived")
        time.sleep(0.005)


def _wait_for_file(path: str) -> None:
    """Another host's task touches ``path`` once it has called the bank: this one starts after it."""
    deadline = time.monotonic() + 120
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear: the host before this one never called the bank")
        time.sleep(0.01)


with DAG("bankapi_cluster_hosts", schedule=None, start_date=START, catchup=False):

    @task
    def hosts(**context) -> list[dict]:
        return context["dag_run"].conf["hosts"]

    @task
    def on_host(host: dict, **context) -> dict:
        # This task process plays one worker machine: its host token store is that machine's.
        os.environ["XDG_CACHE_HOME"] = host["cache_home"]
        if host.get("barrier"):
            _wait_for_everyone(host["barrier"], host["parties"], context["ti"].map_index)
        if host.get("after"):
            _wait_for_file(host["after"])
        called = _call_the_bank(host["account_id"])
        if host.get("called"):
            Path(host["called"]).touch()
        return {**called, "cache_home": host["cache_home"]}

    on_host.expand(host=hosts())
