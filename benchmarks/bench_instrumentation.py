"""CPU cost of each event of the serving processes' own instrumentation, in isolation.

Three costs the API and the stream worker pay for their /metrics, each in CPU time
(``time.process_time``), best of ``--repeats``:

* the ``gc.callbacks`` hook :class:`~vigil.monitoring.gc_pauses.GcPauses`, per collection: a
  young collection (``gc.collect(0)`` of an empty generation) with and without the hook
  installed; the interpreter calls it twice (start, stop) with a fresh ``info`` dict each;
* one observation of the event-loop lag histogram (``vigil_event_loop_lag_seconds``'s
  buckets), which the admission probe makes ~200 times a second when
  ``serving.max_loop_lag_ms > 0``;
* a refusal counted in ``vigil_http_requests_shed_total`` by reason (``labels().inc()``)
  against an unlabelled counter's ``inc()``.

What they cost per request or transaction is these figures times how often each happens, which
the served process's own /metrics count (``docs/benchmarks.md``).

    .venv/bin/python benchmarks/bench_instrumentation.py
"""

from __future__ import annotations

import argparse
import gc
import time
import timeit
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram

from vigil.monitoring.gc_pauses import GcPauses
from vigil.monitoring.prometheus import LOOP_LAG_BUCKETS

PROBES_PER_S = 200  # the admission probe sleeps 5 ms: at most ~200 observations a second


def parse_args() -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=100_000, help="calls per timing")
    parser.add_argument("--repeats", type=int, default=7)
    return parser.parse_args()


def cpu_ns_per_call(call: Callable[[], object], number: int, repeats: int) -> float:
    """CPU nanoseconds of one ``call``, best of ``repeats`` timings of ``number`` calls."""
    seconds = timeit.repeat(call, number=number, repeat=repeats, timer=time.process_time)
    return min(seconds) / number * 1e9


def young_collection_ns(number: int, repeats: int) -> tuple[float, float]:
    """A young collection's CPU without and with the hook installed (generation 0 only, and
    empty after the first: the collection itself costs next to nothing)."""
    hook = GcPauses()
    bare = cpu_ns_per_call(lambda: gc.collect(0), number, repeats)
    hook.install()
    try:
        hooked = cpu_ns_per_call(lambda: gc.collect(0), number, repeats)
    finally:
        hook.remove()
    return bare, hooked


def main() -> None:
    """Time each event; print the three costs, the headline last."""
    args = parse_args()
    registry = CollectorRegistry()
    lag = Histogram("lag_seconds", "lag", buckets=LOOP_LAG_BUCKETS, registry=registry)
    plain = Counter("shed_plain", "refusals", registry=registry)
    by_reason = Counter("shed_by_reason", "refusals", ["reason"], registry=registry)
    by_reason.labels(reason="in_flight")

    bare, hooked = young_collection_ns(args.number, args.repeats)
    observe = cpu_ns_per_call(lambda: lag.observe(0.0004), args.number, args.repeats)
    inc = cpu_ns_per_call(plain.inc, args.number, args.repeats)
    labelled = cpu_ns_per_call(
        lambda: by_reason.labels(reason="in_flight").inc(), args.number, args.repeats
    )
    print(f"young collection: {bare:,.0f} ns bare, {hooked:,.0f} ns with GcPauses installed")
    print(f"shed counter: inc {inc:,.0f} ns, labels(reason).inc {labelled:,.0f} ns per refusal")
    print(
        f"GcPauses hook {(hooked - bare) / 1000:.2f} us per collection; loop-lag histogram "
        f"{observe / 1000:.2f} us per observation (= {observe * PROBES_PER_S / 1e7:.3f} % of a "
        f"core at {PROBES_PER_S}/s); shed reason label +{(labelled - inc) / 1000:.2f} us per "
        "refusal"
    )


if __name__ == "__main__":
    main()
