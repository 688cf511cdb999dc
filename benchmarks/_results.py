"""Machine-readable benchmark results: ``docs/results/<benchmark>.json``.

Each benchmark writes its headline figures here as well as printing them, so generated docs
(the one-pager) quote the last measurement instead of numbers typed by hand.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parents[1] / "docs" / "results"


def default_path(benchmark: str) -> Path:
    """Where ``benchmark`` writes its results unless told otherwise."""
    return RESULTS_DIR / f"{benchmark}.json"


# Whose numeric code ran: an MLP fit's figures differ between CPUs (vector code, float sums;
# docs/benchmarks.md, "Why the shipped figures moved"), so a result names its CPU and libraries.
_LIBRARIES = ("numpy", "torch", "onnxruntime")


def _cpu() -> dict[str, object]:
    """The CPU's model name and vector extensions (AVX, AMX: what a numeric kernel picks its
    code by), from Linux's ``/proc/cpuinfo``; elsewhere what ``platform`` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    fields = {}
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    flags = fields.get("flags", "").split()
    return {
        "model": fields.get("model name") or platform.processor() or platform.machine(),
        "vector_extensions": sorted(f for f in flags if f.startswith(("avx", "amx"))),
    }


def _library_versions() -> dict[str, str]:
    """The installed versions of the numeric libraries (the ones not installed left out)."""
    found: dict[str, str] = {}
    for name in _LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def write_results(
    benchmark: str,
    figures: dict[str, float],
    path: Path,
    details: Mapping[str, object] | None = None,
) -> Path:
    """Save ``figures`` with the date, the command and the machine they were measured on;
    ``details`` (what was measured, tables behind the figures) follow them in the file."""
    payload: dict[str, object] = {
        "benchmark": benchmark,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", *sys.argv]),
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "cpu": _cpu(),
            "libraries": _library_versions(),
        },
        "figures": {key: round(float(value), 3) for key, value in figures.items()},
        **(details or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
