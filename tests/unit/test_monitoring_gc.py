"""GcPauses: the process's garbage collections counted and timed while installed."""

from __future__ import annotations

import gc

from vigil.monitoring.gc_pauses import GcPauses


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
