"""The process's garbage collections and the time they stopped it, by generation.

A full collection (generation 2) stops every thread of the process while it scans what the
process holds; under a steady load a pause of tens of milliseconds shows as a second of late
answers or refusals. The API and the stream worker freeze what they built at start-up
(:func:`frozen_start_up`: ``gc.freeze``), so a collection scans only what came after; how
long they take is measured here, not assumed.

:class:`GcPauses` is a ``gc.callbacks`` entry (installed while the API or the stream worker
runs, for their /metrics) and a Prometheus collector: ``vigil_gc_collections_total{generation}``
and ``vigil_gc_pause_seconds_total{generation}``. The callback only adds to plain numbers (no
lock: a collection may start while any lock of the process is held); the collector reads
them at scrape time. What it costs a request is measured, not assumed either: about a
microsecond per collection (``benchmarks/bench_instrumentation.py``), and the request path runs
a young collection only every ~50 /predict requests (``docs/benchmarks.md``).
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

GENERATIONS = (0, 1, 2)


class GcPauses(Collector):
    """Counts collections and their duration while installed (:meth:`install`)."""

    def __init__(self) -> None:
        self.collections = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        """The ``gc.callbacks`` hook: ``start`` and ``stop`` of each collection."""
        if phase == "start":
            self._started = time.perf_counter()
            return
        generation = int(info["generation"])
        self.collections[generation] += 1
        self.seconds[generation] += time.perf_counter() - self._started

    def install(self) -> None:
        """Start timing this process's collections (once, however often it is called)."""
        if self not in gc.callbacks:
            gc.callbacks.append(self)

    def remove(self) -> None:
        """Stop timing them (the counts so far stay)."""
        if self in gc.callbacks:
            gc.callbacks.remove(self)

    def collect(self) -> Iterator[Metric]:
        """The two counters by generation (Prometheus's collector protocol)."""
        collections = CounterMetricFamily(
            "vigil_gc_collections",
            "Garbage collections of the process while serving, by generation (2: full).",
            labels=["generation"],
        )
        seconds = CounterMetricFamily(
            "vigil_gc_pause_seconds",
            "Time garbage collections stopped the process while serving, by generation.",
            labels=["generation"],
        )
        for generation in GENERATIONS:
            collections.add_metric([str(generation)], self.collections[generation])
            seconds.add_metric([str(generation)], self.seconds[generation])
        yield collections
        yield seconds


@contextlib.contextmanager
def frozen_start_up(pauses: GcPauses) -> Iterator[None]:
    """While a long-running process serves: what it built so far (model, clients, caches)
    stays out of the collector's scans, and the collections that still run are timed.

    Entered once start-up is done; on exit the hook is removed and the objects unfrozen.
    """
    gc.collect()
    gc.freeze()
    pauses.install()
    try:
        yield
    finally:
        pauses.remove()
        gc.unfreeze()
