"""A run's data interval as the bank's business dates, and which records of those dates were written.

A bank books transactions on local dates (Open Finance Brasil: ``fromBookingDate``/``toBookingDate``,
São Paulo time), while an Airflow run covers a UTC interval. :class:`BookingWindow` turns the interval
into the local dates to ask for: ``from`` is the local date of the interval's start minus the lookback,
``to`` the local date of the interval's last instant (its end minus a microsecond: the end belongs to the
next run). The lookback asks again for days already read, because a bank posts some transactions late
(final only at D+1): those appear in a later run's answer for an earlier date.

Asking again returns what was already written, so the records carry a key (``transactionId``) and
:class:`WrittenKeys` decides which to write: not those another run already wrote, not one twice in a run.
What is remembered is one JSON value, per run keyed by its data interval (so that a rerun of the same
interval replaces its own keys instead of taking them for another run's), and bounded: a run's keys are
kept while its window ends on or after the newest window's ``from`` minus the lookback, so that a rerun
of an interval inside the lookback is exact and nothing older is kept.

Pure: standard library only, no I/O (the operator reads and writes the value in Airflow's asset state).
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from airflow_provider_bankapi.documents import at_path, dumps
from airflow_provider_bankapi.errors import HINT_SCHEDULE, BankingApiError, ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

#: The version of the remembered value's layout; another one is refused rather than misread.
STATE_VERSION = 1
_ONE_MICROSECOND = datetime.timedelta(microseconds=1)


class MissingRecordKeyError(BankingApiError):
    """A record has no value at ``dedupe_key``: it cannot be told apart from another.

    :param key_path: the dotted path looked up.
    :param record_number: the record's position in this run's answer, from 1.
    """

    def __init__(self, key_path: str, record_number: int) -> None:
        super().__init__(
            f"Record {record_number} of this run has no {key_path!r} (dedupe_key): it cannot be written "
            "exactly once.",
            hint="Check dedupe_key against a record of the answer (a dotted path such as 'transactionId'), "
            "and records_path, which says where the records are.",
        )
        self.key_path = key_path
        self.record_number = record_number


@dataclass(frozen=True)
class BookingDates:
    """The local dates a run asks for, both included."""

    first: datetime.date
    last: datetime.date


@dataclass(frozen=True)
class BookingWindow:
    """A run's data interval as query parameters of local booking dates (ISO ``YYYY-MM-DD``).

    :param from_param: the query parameter of the first date (Open Finance Brasil: ``fromBookingDate``).
    :param to_param: the query parameter of the last date, included (``toBookingDate``).
    :param timezone: the bank's IANA time zone, where its dates begin and end.
    :param lookback: how far before the interval's start to ask again, for transactions posted late.
    """

    from_param: str = "fromBookingDate"
    to_param: str = "toBookingDate"
    timezone: str = "America/Sao_Paulo"
    lookback: datetime.timedelta = datetime.timedelta(days=1)

    def __post_init__(self) -> None:
        for name in ("from_param", "to_param"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise ConfigurationError(f"BookingWindow {name} must name a query parameter.", field=name)
        if self.from_param == self.to_param:
            raise ConfigurationError("BookingWindow from_param and to_param are the same.", field="to_param")
        if not isinstance(self.lookback, datetime.timedelta) or self.lookback < datetime.timedelta(0):
            raise ConfigurationError(
                f"BookingWindow lookback must be a timedelta of 0 or more; got {self.lookback!r}.",
                field="lookback",
            )
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
            raise ConfigurationError(
                f"BookingWindow timezone {self.timezone!r} is not an IANA time zone.",
                field="timezone",
                hint="Name it as the tz database does, e.g. 'America/Sao_Paulo'.",
            ) from exc

    def dates(self, start: datetime.datetime | None, end: datetime.datetime | None) -> BookingDates:
        """The local dates of the interval ``[start, end)``, the first one ``lookback`` earlier.

        :raises ConfigurationError: the run has no data interval, or an empty one.
        """
        if start is None or end is None or start.tzinfo is None or end.tzinfo is None or end <= start:
            raise ConfigurationError(
                f"The run's data interval ({start} to {end}) is not one a booking window can read.",
                field="window",
                hint=HINT_SCHEDULE,
            )
        zone = ZoneInfo(self.timezone)
        first = (start - self.lookback).astimezone(zone).date()
        last = (end - _ONE_MICROSECOND).astimezone(zone).date()
        return BookingDates(first, last)

    def params(self, dates: BookingDates) -> dict[str, str]:
        """The query parameters asking for ``dates``."""
        return {self.from_param: dates.first.isoformat(), self.to_param: dates.last.isoformat()}


def interval_id(start: datetime.datetime, end: datetime.datetime) -> str:
    """The name a run's keys are remembered under: its data interval in UTC, the same for every rerun."""
    utc = datetime.timezone.utc
    return f"{start.astimezone(utc).isoformat()}/{end.astimezone(utc).isoformat()}"


def key_text(value: Any) -> str:
    """A record's key as remembered: text as it is, anything else as its JSON (``42``, ``1.50``)."""
    return value if isinstance(value, str) else dumps(value)


@dataclass
class WrittenKeys:
    """Which records a run writes, and what to remember once they are written.

    :param interval: this run's :func:`interval_id`.
    :param dates: this run's booking dates.
    :param key_path: the dotted path of a record's key (``transactionId``).
    :param others: the remembered runs other than this one: interval id -> ``{"from", "to", "keys"}``.
    :param lookback: the window's lookback, which bounds what is kept.
    """

    interval: str
    dates: BookingDates
    key_path: str
    others: dict[str, dict[str, Any]]
    lookback: datetime.timedelta
    written: dict[str, None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._earlier = {key for run in self.others.values() for key in run["keys"]}

    def fresh(self, records: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
        """The records to write: each key once, and none another remembered run wrote.

        :raises MissingRecordKeyError: a record has no key.
        """
        for number, record in enumerate(records, start=1):
            value = at_path(record, self.key_path)
            if value is None:
                raise MissingRecordKeyError(self.key_path, number)
            key = key_text(value)
            if key in self._earlier or key in self.written:
                continue
            self.written[key] = None
            yield record

    @property
    def skipped_earlier(self) -> int:
        """How many keys other runs remember (the most this run could have skipped as theirs)."""
        return len(self._earlier)

    def state(self) -> dict[str, Any]:
        """The value to remember after this run's output is committed: this run's keys in place of its
        own earlier ones, and only the runs whose window ends on or after the newest ``from`` minus the
        lookback.
        """
        runs = {
            **self.others,
            self.interval: {
                "from": self.dates.first.isoformat(),
                "to": self.dates.last.isoformat(),
                "keys": list(self.written),
            },
        }
        newest_first = max(datetime.date.fromisoformat(run["from"]) for run in runs.values())
        lookback_days = math.ceil(self.lookback / datetime.timedelta(days=1))
        oldest_kept = newest_first - datetime.timedelta(days=lookback_days)
        kept = {
            name: run for name, run in runs.items() if datetime.date.fromisoformat(run["to"]) >= oldest_kept
        }
        return {"version": STATE_VERSION, "runs": kept}


def written_keys(
    stored: Any,
    *,
    interval: str,
    dates: BookingDates,
    key_path: str,
    lookback: datetime.timedelta,
    where: str,
) -> WrittenKeys:
    """The :class:`WrittenKeys` of a run from the remembered value (None when nothing is remembered).

    :param where: names the remembered value in an error (the asset it belongs to).
    :raises ConfigurationError: the remembered value is not one this provider wrote.
    """
    if stored is None:
        return WrittenKeys(interval, dates, key_path, {}, lookback)
    runs = stored.get("runs") if isinstance(stored, dict) else None
    valid = (
        isinstance(stored, dict)
        and stored.get("version") == STATE_VERSION
        and isinstance(runs, dict)
        and all(_valid_run(run) for run in runs.values())
    )
    if not valid:
        raise ConfigurationError(
            f"The written keys remembered in {where} are not in the layout this provider writes "
            f"(version {STATE_VERSION}).",
            field="dedupe_key",
            hint="Clear that asset's state (it is rebuilt by the next run), or install the provider "
            "version that wrote it.",
        )
    assert isinstance(runs, dict)
    others = {name: run for name, run in runs.items() if name != interval}
    return WrittenKeys(interval, dates, key_path, others, lookback)


def _valid_run(run: Any) -> bool:
    if not isinstance(run, dict) or not isinstance(run.get("keys"), list):
        return False
    try:
        datetime.date.fromisoformat(run["from"])
        datetime.date.fromisoformat(run["to"])
    except (KeyError, TypeError, ValueError):
        return False
    return all(isinstance(key, str) for key in run["keys"])
