"""Admission control: the scoring routes take a bounded number of requests at once.

A process that queues every request under a surge answers every one of them late: past its
capacity the queue grows without bound and so does the latency of every answer, the ones it
will end up giving included. The gate instead admits at most ``serving.max_in_flight``
scoring requests (``POST /predict``, ``POST /forward``) at a time; one that arrives while
that many are being answered is refused at once, before its body is parsed, with ``503``,
``Retry-After`` and the usual JSON error body. Admitted requests then wait for at most
``max_in_flight`` others, so their latency stays bounded however large the surge, and a
refused one is cheap enough that refusing does not eat the capacity the admitted ones need.

Bounding the work in flight is not enough when the process itself is the bottleneck: with one
core, requests wait in the socket buffers and the event loop's backlog before the gate ever
sees them, and the admitted ones answer fast, so few are in flight while every answer is late.
The gate therefore also watches the event loop: a probe sleeps ``LAG_PROBE_S`` and measures
how late it wakes up (CFS throttling by a CPU quota included); while that lag is above
``serving.max_loop_lag_ms`` on two probes in a row, new scoring requests are refused too.
Refusing costs a fraction of scoring, so the loop catches up and the lag, and the latency of
what is admitted, stay near the bound. ``vigil serve`` refuses even earlier, in the HTTP
server itself (``serving/shedding.py``), with the same gate.

Nothing acknowledged is lost: a refused request was never scored nor stored, and its client
was told to retry. Other routes (``/health``, ``/metrics``, admin) are not gated, so the
service stays observable during a surge.
"""

from __future__ import annotations

import asyncio
import contextlib

import orjson
from prometheus_client import Counter
from starlette.types import ASGIApp, Receive, Scope, Send

from vigil.serving.context import request_id_var

SHED_DETAIL = "service overloaded, retry later"
LAG_PROBE_S = 0.005


class AdmissionGate:
    """ASGI wrapper of the scoring routes: at most ``max_in_flight`` inside ``app`` at once."""

    def __init__(
        self,
        app: ASGIApp,
        max_in_flight: int,
        retry_after_s: int,
        shed: Counter,
        max_loop_lag_ms: float = 0.0,
    ) -> None:
        if max_in_flight <= 0 or max_loop_lag_ms < 0:
            raise ValueError("max_in_flight must be > 0 and max_loop_lag_ms >= 0")
        self.app = app
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.lagging = False  # the loop's last measured lag passed max_loop_lag_ms
        self._max_lag_s = max_loop_lag_ms / 1000.0
        self._probe: asyncio.Task[None] | None = None
        self._retry_after = str(retry_after_s).encode()
        self._shed = shed

    @property
    def overloaded(self) -> bool:
        """Whether a scoring request arriving now is refused."""
        return self.in_flight >= self.max_in_flight or self.lagging

    def count_shed(self) -> None:
        """Count one refused request (also called by the server-level shedding)."""
        self._shed.inc()

    def refusal(self, request_id: str) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        """The 503's body and headers (without the request id header)."""
        body = orjson.dumps({"detail": SHED_DETAIL, "request_id": request_id})
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
            (b"retry-after", self._retry_after),
        ]
        return body, headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Admit (count in, call ``app``, count out) or refuse with a fast 503."""
        if self.overloaded:
            self.count_shed()
            scope["endpoint"] = self  # the request metrics label it by its path
            await self._refuse(send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    def start(self) -> None:
        """Start the loop-lag probe (the app's start-up; nothing to do without a lag bound)."""
        if self._probe is None and self._max_lag_s > 0:
            self._probe = asyncio.get_running_loop().create_task(self._watch_loop())

    async def stop(self) -> None:
        """Stop the probe (the app's shut-down)."""
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
            self._probe, self.lagging = None, False

    async def _watch_loop(self) -> None:
        """Measure, forever, how late a short sleep wakes up; set :attr:`lagging` when two
        probes in a row were late (one late probe is a hiccup: a collection, a preemption)."""
        loop = asyncio.get_running_loop()
        late_before = False
        while True:
            asleep = loop.time()
            await asyncio.sleep(LAG_PROBE_S)
            late = loop.time() - asleep - LAG_PROBE_S > self._max_lag_s
            self.lagging, late_before = late and late_before, late

    async def _refuse(self, send: Send) -> None:
        body, headers = self.refusal(request_id_var.get() or "")
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})
