"""An open-loop HTTP load generator for ``POST /predict``: a fixed arrival rate, whatever the
server does (the transactions of a file, in order).

Locust and wrk are closed loops: each client waits for its answer before the next request,
so a slow server is offered less load and its latency is under-reported. Here requests are
*scheduled* at the phase's rate; each goes out on an idle keep-alive connection (a new one
while fewer than ``max_connections`` are open) or waits for one, and its latency counts from
its scheduled time, so waiting in the generator counts as the server's. One request at a time
per connection, raw HTTP/1.1 on asyncio protocols (uvloop): about 15 µs of CPU per request,
enough for 10,000 req/s on one core. Every request is recorded (scheduled time, answer time,
status, transaction id), so acknowledged decisions can be checked against the database.

Status codes: the HTTP status, ``-1`` timeout, ``-2`` connection refused or reset,
``-3`` never sent (the generator's own backlog passed ``max_backlog``).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import orjson
import pandas as pd

from vigil.data import schema

TIMEOUT = -1
CONNECTION_ERROR = -2
NOT_SENT = -3


@dataclass(frozen=True)
class Phase:
    """``seconds`` of requests at ``rate`` per second."""

    seconds: float
    rate: float


def parse_phases(text: str) -> list[Phase]:
    """``"60:1000,30:10000"`` -> 60 s at 1,000 req/s, then 30 s at 10,000 req/s."""
    phases = []
    for part in text.split(","):
        seconds, rate = part.split(":")
        phases.append(Phase(float(seconds), float(rate)))
    if not phases or any(p.seconds <= 0 or p.rate < 0 for p in phases):
        raise ValueError(f"bad phases {text!r}: SECONDS:RATE,... with positive numbers")
    return phases


@dataclass
class Records:
    """One row per scheduled request (epoch seconds)."""

    scheduled: np.ndarray  # float64
    sent: np.ndarray  # float64; NaN when never sent
    answered: np.ndarray  # float64; NaN when never answered
    status: np.ndarray  # int32
    transaction_id: np.ndarray  # int64

    def save(self, path: str) -> None:
        """Write as ``.npz``."""
        np.savez_compressed(
            path,
            scheduled=self.scheduled,
            sent=self.sent,
            answered=self.answered,
            status=self.status,
            transaction_id=self.transaction_id,
        )

    @classmethod
    def load(cls, path: str) -> Records:
        """Read what :meth:`save` wrote."""
        with np.load(path) as data:
            return cls(
                data["scheduled"],
                data["sent"],
                data["answered"],
                data["status"],
                data["transaction_id"],
            )

    @classmethod
    def concat(cls, parts: Sequence[Records]) -> Records:
        """Rows of every part, in order."""
        return cls(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in cls.__dataclass_fields__)
        )


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request in flight at a time."""

    def __init__(self, generator: LoadGenerator) -> None:
        self.generator = generator
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.current: int | None = None  # index of the request in flight
        self.deadline = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's TCPTransport

    def send(self, index: int, request: bytes, deadline: float) -> None:
        self.current, self.deadline, self.buffer = index, deadline, b""
        if self.transport is None:  # closed before its first request
            self.generator.finished(self, index, CONNECTION_ERROR, False)
            return
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0 or self.current is None:
            return
        head = self.buffer[:head_end].lower()
        at = head.find(b"content-length:")
        end = head.find(b"\r\n", at)
        length = int(head[at + 15 : end if end > 0 else len(head)]) if at >= 0 else 0
        if len(self.buffer) < head_end + 4 + length:
            return
        status = int(self.buffer[9:12])
        keep = b"connection: close" not in head
        index, self.current, self.buffer = self.current, None, b""
        self.generator.finished(self, index, status, keep)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.current is not None:
            index, self.current = self.current, None
            self.generator.finished(self, index, CONNECTION_ERROR, False)
        else:
            self.generator.dropped(self)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def request_bodies(transactions: pd.DataFrame) -> list[bytes]:
    """``POST /predict`` JSON bodies of a frame of transactions, in its order."""
    frame = transactions[
        [schema.TRANSACTION_ID, schema.TX_DATETIME, schema.CUSTOMER_ID, schema.TERMINAL_ID]
    ].copy()
    frame[schema.TX_DATETIME] = frame[schema.TX_DATETIME].dt.strftime("%Y-%m-%dT%H:%M:%S")
    frame[schema.TX_AMOUNT] = transactions[schema.TX_AMOUNT].astype(float)
    return [orjson.dumps(row) for row in frame.to_dict("records")]


def needed_rows(phases: Sequence[Phase]) -> int:
    """How many transactions ``phases`` can send at most."""
    return int(sum(p.seconds * p.rate for p in phases)) + len(phases)


class LoadGenerator:
    """Offers ``phases`` of load to ``host:port`` ``POST /predict``; records every request."""

    def __init__(
        self,
        host: str,
        port: int,
        phases: Sequence[Phase],
        transactions: pd.DataFrame,
        *,
        max_connections: int = 256,
        timeout_s: float = 10.0,
        max_backlog: int = 20_000,
    ) -> None:
        self.host, self.port, self.phases = host, port, list(phases)
        self.max_connections, self.timeout_s, self.max_backlog = (
            max_connections,
            timeout_s,
            max_backlog,
        )
        total = min(needed_rows(self.phases), len(transactions))
        self.bodies = request_bodies(transactions.iloc[:total])
        self.scheduled = np.full(total, np.nan)
        self.sent = np.full(total, np.nan)
        self.answered = np.full(total, np.nan)
        self.status = np.zeros(total, dtype=np.int32)
        self.transaction_id = transactions[schema.TRANSACTION_ID].to_numpy(np.int64)[:total]
        self.count = 0
        self._head = b"POST /predict HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\n" % (
            host.encode()
        )
        self._idle: list[_Connection] = []
        self._busy: set[_Connection] = set()
        self._opening = 0
        self._backlog: collections.deque[int] = collections.deque()
        self._offset = time.time() - time.monotonic()  # monotonic -> epoch

    def _request(self, index: int) -> bytes:
        body = self.bodies[index]
        return self._head + b"content-length: %d\r\n\r\n%s" % (len(body), body)

    def finished(self, connection: _Connection, index: int, status: int, keep: bool) -> None:
        """A request got its answer (or failed): record it, reuse or drop the connection."""
        self.answered[index] = time.monotonic() + self._offset
        self.status[index] = status
        self._busy.discard(connection)
        if keep and connection.transport is not None:
            self._give(connection)
        else:
            connection.abort()

    def dropped(self, connection: _Connection) -> None:
        """An idle connection closed (server restart, proxy cut)."""
        if connection in self._idle:
            self._idle.remove(connection)
        self._busy.discard(connection)

    def _give(self, connection: _Connection) -> None:
        """Hand an available connection the oldest waiting request, else park it."""
        if self._backlog:
            self._send(connection, self._backlog.popleft())
        else:
            self._idle.append(connection)

    def _send(self, connection: _Connection, index: int) -> None:
        self._busy.add(connection)
        self.sent[index] = time.monotonic() + self._offset
        deadline = self.scheduled[index] - self._offset + self.timeout_s
        connection.send(index, self._request(index), deadline)

    def _dispatch(self, index: int) -> None:
        if self._idle:
            self._send(self._idle.pop(), index)
            return
        if len(self._backlog) >= self.max_backlog:
            self.status[index] = NOT_SENT
            return
        self._backlog.append(index)
        if len(self._busy) + len(self._idle) + self._opening < self.max_connections:
            asyncio.get_running_loop().create_task(self._open())

    async def _open(self) -> None:
        self._opening += 1
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(
                lambda: _Connection(self), self.host, self.port
            )
        except OSError:
            self._opening -= 1
            if self._backlog:  # the server is down: fail the oldest waiting request
                index = self._backlog.popleft()
                self.answered[index] = time.monotonic() + self._offset
                self.status[index] = CONNECTION_ERROR
            await asyncio.sleep(0.01)
            return
        self._opening -= 1
        self._give(connection)

    def _expire(self, now: float) -> None:
        """Time out requests in flight past their deadline (their connection is dropped)."""
        for connection in list(self._busy):
            if connection.current is not None and connection.deadline < now:
                index, connection.current = connection.current, None
                self.finished(connection, index, TIMEOUT, False)
        while (
            self._backlog and self.scheduled[self._backlog[0]] - self._offset + self.timeout_s < now
        ):
            index = self._backlog.popleft()
            self.status[index] = TIMEOUT

    async def run(self, on_start: Callable[[float], None] | None = None) -> Records:
        """Offer every phase, then wait up to ``timeout_s`` for the last answers.

        ``on_start`` gets the epoch time of the first phase's start (the campaign's zero).
        """
        start = time.monotonic()
        phase_start = start
        tick, next_expiry = 0.001, start
        if on_start is not None:
            on_start(start + self._offset)
        for phase in self.phases:
            sent_in_phase = 0
            end = phase_start + phase.seconds
            while (now := time.monotonic()) < end:
                due = int((now - phase_start) * phase.rate)
                while sent_in_phase < due and self.count < len(self.scheduled):
                    index = self.count
                    self.count += 1
                    sent_in_phase += 1
                    self.scheduled[index] = phase_start + sent_in_phase / phase.rate + self._offset
                    self._dispatch(index)
                if now >= next_expiry:
                    self._expire(now)
                    next_expiry = now + 0.1
                await asyncio.sleep(tick)
            phase_start = end
        drain_until = time.monotonic() + self.timeout_s
        while (self._busy or self._backlog) and time.monotonic() < drain_until:
            self._expire(time.monotonic())
            await asyncio.sleep(0.01)
        self._expire(float("inf"))
        for connection in [*self._idle, *self._busy]:
            connection.abort()
        n = self.count
        return Records(
            self.scheduled[:n].copy(),
            self.sent[:n].copy(),
            self.answered[:n].copy(),
            self.status[:n].copy(),
            self.transaction_id[:n].copy(),
        )


def generate(generator: LoadGenerator, on_start: Callable[[float], None] | None = None) -> Records:
    """Run ``generator`` on a fresh uvloop event loop; return its records."""
    import uvloop

    return uvloop.run(generator.run(on_start))
