"""Admission control: the scoring routes take only what they can answer within a latency target.

A process that queues every request under a surge answers every one of them late: past its
capacity the queue grows without bound and so does the latency of every answer, the ones it
will end up giving included. The gate in front of the scoring routes (``POST /predict``,
``POST /forward``) refuses a request at once, before its body is parsed, with ``503``,
``Retry-After`` and the usual JSON error body, when any of these holds:

* **in flight**: as many requests are admitted and not yet answered as the current limit.
  The limit follows latency (:class:`LatencyLimit`, ``serving.latency_target_ms``): a fixed
  count cannot bound latency, because what a count of requests costs in waiting depends on
  the throughput (128 in flight at 1,000 answers a second is 128 ms of queueing). The limit
  falls as soon as admitted requests answer later than the target and grows back while they
  answer within it and the limit is what holds them back; ``serving.max_in_flight`` caps it.
* **queued too long**: a request admitted by the server that waited more than
  ``serving.max_queue_ms`` before its handler started (a loop turn crowded by a burst) is
  refused then, before any work is done for it: a late request is refused, never one whose
  decision was made (a deadline per request, checked once, before the work).
* **loop lag**: with one core, requests wait in the socket buffers and the event loop's
  backlog before the gate ever sees them. A probe sleeps ``LAG_PROBE_S`` and measures how late
  it wakes up (CFS throttling by a CPU quota included); while that lag is above
  ``serving.max_loop_lag_ms`` on two probes in a row, scoring requests are refused too.

Refusing costs a fraction of scoring, so what is admitted keeps its latency however large the
surge. ``vigil serve`` refuses even earlier, in the HTTP server itself
(``serving/shedding.py``), with the same gate; it also stamps each request's arrival there,
so the queue deadline and the latency the limit follows start when the server read the
request, not when its task first ran.

Nothing acknowledged is lost: a refused request was never scored nor stored, and its client
was told to retry. Other routes (``/health``, ``/metrics``, admin) are not gated, so the
service stays observable during a surge.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from vigil.config import ServingConfig
from vigil.monitoring import VigilMetrics
from vigil.monitoring.prometheus import observe_many
from vigil.serving.context import request_id_var

SHED_DETAIL = "service overloaded, retry later"
LAG_PROBE_S = 0.005
ARRIVED = "vigil.arrived"
"""Scope key: the gate's clock when the server read the request (set with its admission)."""
Clock = Callable[[], float]


class LatencyLimit:
    """An in-flight limit that follows latency: additive increase, multiplicative decrease.

    Latencies of answered requests are gathered in windows of ``window_s`` (from a window's
    first answer to the first answer ``window_s`` later, included). At a window's end
    its ``QUANTILE`` latency is compared with ``target_s``. Only a window that reached the
    limit changes it (one that never did had no queue the limit could shorten: refusing
    would only turn slow answers into 503s). Its answers were late *because of the requests
    let in* when they took more than the target and more than ``QUEUEING`` times the
    window's fastest answer (they waited behind the others); then the limit is cut in
    proportion (``target / observed``, at most by half, at least by a fifth), so the queue
    shrinks within a few windows. Otherwise the limit is what held requests back for
    nothing, and it grows by a tenth (at least one): the answers were within the target,
    or every one was slow alike (the service itself is slow, say the database or a starved
    CPU, and fewer requests in flight would not make them faster, only fewer). So the limit
    settles where waiting starts, below the target's reach. A window that never reached
    the limit and answered within the target grows it too: once a surge is over, the limit
    goes back to the ceiling instead of staying where the surge left it (measured: the full
    stress plan's limit stayed at its floor of 32 after the surge, and the ordinary bursts of
    1,000 req/s then shed 1-5 % every second where they had shed none before). It stays within
    ``[floor, ceiling]``, the floor a quarter of the ceiling (at least ``FLOOR``): on a
    starved CPU every answer is late and jittery at any concurrency, and a limit free to
    fall would settle at a handful of requests, refusing most of what the service could
    answer (measured: 145 instead of 950 req/s admitted, and no recovery after the surge).
    Deterministic: time is passed in, so the policy is tested with a fake clock.
    """

    QUANTILE = 0.9
    QUEUEING = 2.0
    FLOOR = 4

    def __init__(self, ceiling: int, target_s: float, window_s: float = 0.1) -> None:
        if ceiling <= 0 or target_s <= 0 or window_s <= 0:
            raise ValueError("ceiling, target_s and window_s must be > 0")
        self.ceiling = ceiling
        self.floor = min(ceiling, max(self.FLOOR, ceiling // self.FLOOR))
        self.limit = ceiling
        self.target_s = target_s
        self.window_s = window_s
        self._samples: list[float] = []
        self._window_end: float | None = None
        self._saturated = False

    def reached(self) -> None:
        """The limit was reached: every slot taken (it holds requests back)."""
        self._saturated = True

    def observe(self, latency_s: float, now: float) -> None:
        """One answered request's latency, at ``now``; adapts at each window's end."""
        if self._window_end is None:
            self._window_end = now + self.window_s
        self._samples.append(latency_s)
        if now >= self._window_end:
            self._adapt()
            self._samples.clear()
            self._saturated = False
            self._window_end = None  # the next answer opens the next window

    def _adapt(self) -> None:
        samples = sorted(self._samples)
        observed = samples[int(self.QUANTILE * (len(samples) - 1))]
        if not self._saturated:
            if observed <= self.target_s:
                self._grow()  # calm again (after a surge): back towards the ceiling
            return
        if observed > self.target_s and observed > self.QUEUEING * samples[0]:
            factor = min(0.8, max(0.5, self.target_s / observed))
            self.limit = max(self.floor, int(self.limit * factor))
        else:
            self._grow()

    def _grow(self) -> None:
        self.limit = min(self.ceiling, self.limit + max(1, self.limit // 10))


class AdmissionGate:
    """ASGI wrapper of the scoring routes: admits within the limits above, refuses the rest."""

    def __init__(
        self,
        app: ASGIApp,
        serving: ServingConfig,
        metrics: VigilMetrics,
        clock: Clock = time.perf_counter,
    ) -> None:
        self.app = app
        self.clock = clock
        self.in_flight = 0
        self.lagging = False  # the loop's last measured lag passed max_loop_lag_ms
        self.adaptive = (
            LatencyLimit(serving.max_in_flight, serving.latency_target_ms / 1000.0)
            if serving.latency_target_ms > 0
            else None
        )
        self._fixed_limit = serving.max_in_flight
        self._max_queue_s = serving.max_queue_ms / 1000.0
        self._max_lag_s = serving.max_loop_lag_ms / 1000.0
        self._probe: asyncio.Task[None] | None = None
        self._retry_after = str(serving.retry_after_s).encode()
        self._shed = metrics.requests_shed
        self._lag = metrics.event_loop_lag
        self._queue_wait = metrics.admission_queue_wait
        self._waits: list[float] = []  # queue waits of this loop iteration, not yet observed
        metrics.admission_limit.set_function(lambda: self.limit)

    @property
    def limit(self) -> int:
        """How many scoring requests may be in flight now."""
        return self.adaptive.limit if self.adaptive is not None else self._fixed_limit

    @property
    def overloaded(self) -> bool:
        """Whether a scoring request arriving now is refused."""
        return self.refusing is not None

    @property
    def refusing(self) -> str | None:
        """Why a scoring request arriving now is refused (``loop_lag``, ``in_flight``), or
        None when it is admitted."""
        if self.lagging:
            return "loop_lag"
        return "in_flight" if self.in_flight >= self.limit else None

    def admit(self, scope: Scope) -> None:
        """Take a slot for the request of ``scope`` and stamp its arrival (the caller checked
        :attr:`overloaded`); the slot is given back when the request is answered or refused."""
        scope[ARRIVED] = self.clock()
        self.in_flight += 1
        if self.adaptive is not None and self.in_flight >= self.adaptive.limit:
            self.adaptive.reached()

    def release(self, scope: Scope) -> None:
        """Give back the slot :meth:`admit` took for ``scope``, once; a no-op without one
        (the server admitted a request the gate never saw: a 413, a connection lost)."""
        if scope.pop(ARRIVED, None) is not None:
            self.in_flight -= 1

    def count_shed(self, reason: str) -> None:
        """Count one refused request, by reason (also called by the server-level shedding)."""
        self._shed.labels(reason=reason).inc()

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
        """Admit (unless the server did already), check the queue deadline, call ``app``."""
        if ARRIVED not in scope:  # not admitted by the server's protocol: decide here
            reason = self.refusing
            if reason is not None:
                await self._refuse(scope, send, reason)
                return
            self.admit(scope)
        arrived: float = scope[ARRIVED]
        try:
            waited = self.clock() - arrived
            if self._max_queue_s and waited > self._max_queue_s:
                await self._refuse(scope, send, "queued")  # too late to start: before any work
                return
            self._observe_wait(waited)
            await self.app(scope, receive, send)
            if self.adaptive is not None:
                now = self.clock()
                self.adaptive.observe(now - arrived, now)
        finally:
            self.release(scope)

    def _observe_wait(self, seconds: float) -> None:
        """Buffer one admitted request's queue wait; :meth:`_flush_waits` observes the waits
        of a loop iteration at once (a histogram's ``observe`` per request costs a lock round
        per bucket and sum, more than the gate's own work)."""
        self._waits.append(seconds)
        if len(self._waits) == 1:
            asyncio.get_running_loop().call_soon(self._flush_waits)

    def _flush_waits(self) -> None:
        waits, self._waits = self._waits, []
        observe_many(self._queue_wait, waits)

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
            lag = loop.time() - asleep - LAG_PROBE_S
            self._lag.observe(max(0.0, lag))
            late = lag > self._max_lag_s
            self.lagging, late_before = late and late_before, late

    async def _refuse(self, scope: Scope, send: Send, reason: str) -> None:
        self.count_shed(reason)
        scope["endpoint"] = self  # the request metrics label it by its path
        body, headers = self.refusal(request_id_var.get() or "")
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})
