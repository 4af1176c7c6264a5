"""What the real-triggerer benchmark puts into the triggerer beside the triggers it measures: a trigger
that measures the event loop's lag, and the http provider's response check that is never met.

Imported by the triggerer's runner (the benchmark puts the repository on its ``PYTHONPATH``).
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseEventTrigger

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from airflow.triggers.base import TriggerEvent

#: The runner's own watchdog sleeps this long; the probe ticks alike, so its lags read the same.
TICK = 0.1
#: Seconds between two writes of the ticks measured since the last one.
FLUSH = 1.0


def record_collections(pauses: list[str]) -> None:
    """Append ``<monotonic time> <generation> <pause>`` to ``pauses`` for every garbage collection of this
    process from now on (``gc.callbacks``): a collection holds the GIL, so its pause is the event loop's.
    """
    started: list[float] = []

    def callback(phase: str, info: dict[str, int]) -> None:
        now = time.monotonic()
        if phase == "start":
            started[:] = [now]
        elif started:
            pauses.append(f"{now:.4f} {info['generation']} {now - started.pop():.4f}\n")

    gc.callbacks.append(callback)


class LagProbe(BaseEventTrigger):
    """Sleeps ``TICK`` seconds again and again; appends ``<monotonic time> <overshoot>`` lines to ``path``,
    and the runner's garbage collections (:func:`record_collections`) to ``path`` + ``.gc``.

    ``time.monotonic`` is the machine's clock (CLOCK_MONOTONIC), so the benchmark picks the lines of its
    window by time. Never fires an event.
    """

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {"path": self.path}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        ticks: list[str] = []
        collections: list[str] = []
        record_collections(collections)
        flushed = time.monotonic()
        while True:
            before = time.monotonic()
            await asyncio.sleep(TICK)
            now = time.monotonic()
            ticks.append(f"{now:.4f} {now - before - TICK:.4f}\n")
            if now - flushed >= FLUSH:
                # A few hundred bytes once a second: no measurable stall of the loop it measures.
                with open(self.path, "a") as lines:
                    lines.writelines(ticks)
                with open(self.path + ".gc", "a") as lines:
                    lines.writelines(collections)
                ticks.clear()
                collections.clear()
                flushed = now
        yield  # pragma: no cover - makes this an async generator, as the triggerer expects


async def never_met(response: Any) -> bool:
    """The http provider's ``response_check_path``: the condition never holds, so its triggers poll on."""
    return False
