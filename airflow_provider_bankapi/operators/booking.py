"""Where a booking window's written keys live between runs: Airflow's asset state of an asset of the task.

Airflow 3.3 keeps state per task instance (``task_state_store``, gone with the next run) and per asset
across runs (``asset_state_store``): the written keys must outlive the run, so they belong to an asset.
The task names it as an inlet (an inlet announces no event), one per task, so that two tasks reading
the same resource into different files each write every record once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset

from airflow_provider_bankapi.booking_window import interval_id, written_keys

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_provider_bankapi.booking_window import BookingDates, BookingWindow, WrittenKeys

#: The asset state key the written keys are remembered under.
STATE_KEY = "written_keys"


def written_keys_asset(dag_id: str | None, task_id: str) -> Asset:
    """The asset whose state remembers which keys a task's runs wrote."""
    owner = f"{dag_id}__{task_id}" if dag_id else task_id
    return Asset(name=f"bankapi__{owner}__written_keys")


def load_written_keys(
    context: Mapping[str, Any], asset: Asset, window: BookingWindow, dates: BookingDates, key_path: str
) -> WrittenKeys:
    """The run's :class:`~airflow_provider_bankapi.booking_window.WrittenKeys`, from the asset's state."""
    stored = context["asset_state_store"][asset].get(STATE_KEY)
    return written_keys(
        stored,
        interval=interval_id(context["data_interval_start"], context["data_interval_end"]),
        dates=dates,
        key_path=key_path,
        lookback=window.lookback,
        where=f"the state of asset {asset.name!r} (key {STATE_KEY!r})",
    )


def remember_written_keys(context: Mapping[str, Any], asset: Asset, keys: WrittenKeys) -> None:
    """Remember this run's keys; called only once its output is in place, so that a run that fails before
    keeps nothing and its rerun writes them again.
    """
    context["asset_state_store"][asset].set(STATE_KEY, keys.state())
