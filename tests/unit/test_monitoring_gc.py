"""GcPauses: the process's garbage collections counted and timed while installed."""

from __future__ import annotations

import asyncio
import gc

import pytest
from prometheus_client import CollectorRegistry

from vigil.config import build_settings
from vigil.monitoring.gc_pauses import GcPauses
from vigil.monitoring.prometheus import VigilMetrics


def _values(pauses: GcPauses) -> dict[tuple[str, str], float]:
    return {
        (sample.name, sample.labels["generation"]): sample.value
        for family in pauses.collect()
        for sample in family.samples
    }


def test_collections_are_counted_and_timed_only_while_installed() -> None:
    pauses = GcPauses()
    pauses.install()
    pauses.install()  # once, however often
    try:
        assert gc.callbacks.count(pauses) == 1
        gc.collect(2)
        gc.collect(2)
    finally:
        pauses.remove()
    gc.collect(2)  # not counted: removed
    values = _values(pauses)
    assert values[("vigil_gc_collections_total", "2")] == 2
    assert values[("vigil_gc_pause_seconds_total", "2")] > 0
    assert pauses not in gc.callbacks


def test_a_young_collection_counts_in_its_generation() -> None:
    pauses = GcPauses()
    pauses("start", {"generation": 0})
    pauses("stop", {"generation": 0, "collected": 0, "uncollectable": 0})
    values = _values(pauses)
    assert values[("vigil_gc_collections_total", "0")] == 1
    assert values[("vigil_gc_collections_total", "2")] == 0
    assert values[("vigil_gc_pause_seconds_total", "0")] >= 0


def test_the_stream_worker_freezes_its_start_up_and_times_its_collections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`vigil worker`'s /metrics counts the worker's collections (not a counter stuck at 0)."""
    import vigil.decisions
    import vigil.inference.follower
    import vigil.monitoring
    import vigil.streaming
    from vigil.cli import stream_commands

    made: list[VigilMetrics] = []
    frozen: list[int] = []

    def create_metrics(registry: CollectorRegistry) -> VigilMetrics:
        made.append(real_create_metrics(registry))
        return made[-1]

    class Runtime:
        models = None

        def watch_state(self) -> None:
            pass

        async def close(self) -> None:
            pass

    class Worker:
        def __init__(self, *args: object) -> None:
            pass

        async def run(self, stop: asyncio.Event) -> None:
            assert made[-1].gc_pauses in gc.callbacks
            frozen.append(gc.get_freeze_count())
            gc.collect(2)

    real_create_metrics = vigil.monitoring.create_metrics
    monkeypatch.setattr(vigil.monitoring, "create_metrics", create_metrics)
    monkeypatch.setattr(vigil.decisions.Runtime, "build", lambda *a, **k: Runtime())
    monkeypatch.setattr(vigil.streaming, "StreamWorker", Worker)
    monkeypatch.setattr(vigil.inference.follower, "follow_deployments", lambda *a: None)
    asyncio.run(stream_commands._run_worker(build_settings({}), metrics_port=0))
    values = _values(made[-1].gc_pauses)
    assert values[("vigil_gc_collections_total", "2")] >= 1
    assert made[-1].gc_pauses not in gc.callbacks  # removed when the worker stops
    # what it built before running is kept out of the full scans (as the API), then released
    assert frozen[0] > 0 and gc.get_freeze_count() == 0
