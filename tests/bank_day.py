"""The sandbox's controls for a faulty day at the bank: a seeded mix of faults, the request log, the clock.

The repository's own tests use them (the simulated day, the chaos and clock tests); users' tests have the
knobs of the :class:`bankapi_sandbox.Sandbox` handle. They drive the sandbox's control endpoint, so they
work on a sandbox of this process or of a ``serve`` process alike::

    day = BankDay(sandbox)
    day.set_fault_mix(seed=7, rate=0.2, kinds=["503", "drop"])
    ...
    requests = day.take_requests()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bankapi_sandbox.control import ControlClient

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bankapi_sandbox import Sandbox


class BankDay:
    """The day-test controls of one running sandbox."""

    def __init__(self, sandbox: Sandbox) -> None:
        self._control = ControlClient(sandbox.control_url)

    def set_fault_mix(
        self, *, seed: int, rate: float, kinds: Sequence[str], paths: str = "*", retry_after: int = 1
    ) -> None:
        """Fault a share ``rate`` of the requests whose path matches ``paths`` (``fnmatch``, relative to
        the base URL), each with a kind drawn from ``kinds``; the same seed faults the same requests.

        Kinds beyond ``Sandbox.inject_fault``'s: ``"429-date"`` (Retry-After as an HTTP date), ``"502"``,
        ``"504"``, ``"404"``, ``"not-json"`` (a 200 HTML page) and ``"revoke"`` (every token revoked
        just before the request is served).
        """
        body = {"seed": seed, "rate": rate, "kinds": list(kinds), "paths": paths, "retry_after": retry_after}
        self._control.call("POST", "/faults/mix", body)

    def clear_fault_mix(self) -> None:
        self._control.call("DELETE", "/faults/mix")

    def take_requests(self) -> list[dict[str, Any]]:
        """The requests since the last take: ``method``, ``path``, ``account``, ``status``, ``fault``."""
        result: list[dict[str, Any]] = self._control.call("POST", "/requests/take")
        return result

    def set_clock_offset(self, seconds: float) -> None:
        """Run the bank's clock ``seconds`` off the real one (token expiry, Date, Retry-After dates)."""
        self._control.call("POST", "/clock", {"offset": seconds})
