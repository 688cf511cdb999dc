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
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parents[1] / "docs" / "results"


def default_path(benchmark: str) -> Path:
    """Where ``benchmark`` writes its results unless told otherwise."""
    return RESULTS_DIR / f"{benchmark}.json"


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
        },
        "figures": {key: round(float(value), 3) for key, value in figures.items()},
        **(details or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
