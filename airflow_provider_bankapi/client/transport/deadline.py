"""A deadline for the whole answer of one attempt: status line, headers and body together.

A socket timeout bounds each read, and a server that trickles its answer (a byte every half
second) starts it afresh at every byte: with ``read_timeout=2`` such an answer kept a call alive
for as long as the server liked. urllib3's ``Timeout(total=...)`` does not help: it only shortens
the per-read timeout once, before the headers. So the connections of the bank's pools read their
answer through :class:`_DeadlineReader`, which gives every read what is left of the answer's
budget as its timeout, and fails a read past the deadline with :class:`AnswerDeadlineExceeded`.
That is a ``TimeoutError``, so urllib3 and requests report it as a read timeout (and urllib3's
retry rules treat it as one), and the error mapping finds it in the chain to say what happened.

The budget of the answer is the ``read`` part of the request's timeout, counted from the moment
the request has been sent; with the connect timeout before it, one attempt never lasts longer
than ``connect_timeout + read_timeout``.
"""

from __future__ import annotations

import functools
import http.client
import io
import time
from typing import TYPE_CHECKING, Any

from urllib3.connection import HTTPSConnection
from urllib3.connectionpool import HTTPSConnectionPool

if TYPE_CHECKING:
    import socket

    from urllib3 import PoolManager


class AnswerDeadlineExceeded(TimeoutError):
    """The whole answer did not arrive within its budget; ``seconds`` is that budget."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the whole answer took longer than {seconds:g} s")
        self.seconds = seconds


def time_left(deadline: float, budget: float) -> float:
    """Seconds left before ``deadline`` (a ``time.monotonic()`` value); raise once it has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise AnswerDeadlineExceeded(budget)
    return left


class _DeadlineReader(io.RawIOBase):
    """The socket's reader, with what is left of the deadline as the timeout of every read."""

    def __init__(self, raw: io.RawIOBase, sock: socket.socket, deadline: float, budget: float) -> None:
        super().__init__()
        self._raw = raw
        self._sock = sock
        self._deadline = deadline
        self._budget = budget

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        self._sock.settimeout(time_left(self._deadline, self._budget))
        try:
            return self._raw.readinto(buffer)
        except TimeoutError as exc:
            raise AnswerDeadlineExceeded(self._budget) from exc

    def close(self) -> None:
        if not self.closed:
            self._raw.close()  # releases the socket's reference, as the stdlib's reader does
        super().close()


class _AnswerWithDeadline(http.client.HTTPResponse):
    def __init__(
        self, sock: socket.socket, *args: Any, deadline: float, budget: float, **kwargs: Any
    ) -> None:
        super().__init__(sock, *args, **kwargs)
        raw = self.fp.detach()
        self.fp = io.BufferedReader(_DeadlineReader(raw, sock, deadline, budget))


class DeadlineHTTPSConnection(HTTPSConnection):
    """urllib3's HTTPS connection, reading each answer under a deadline (see the module docstring)."""

    def getresponse(self) -> Any:
        # urllib3 has just set ``timeout`` to the attempt's read timeout: the answer's budget.
        budget = self.timeout
        if isinstance(budget, (int, float)) and budget > 0:
            self.response_class = functools.partial(  # type: ignore[assignment]
                _AnswerWithDeadline, deadline=time.monotonic() + budget, budget=float(budget)
            )
        return super().getresponse()


class DeadlineHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = DeadlineHTTPSConnection


def use_answer_deadline(manager: PoolManager) -> PoolManager:
    """Make ``manager`` (a PoolManager or a ProxyManager) open its https pools with deadline connections."""
    manager.pool_classes_by_scheme = {**manager.pool_classes_by_scheme, "https": DeadlineHTTPSConnectionPool}
    return manager
