"""Where the monitoring marts live under ``monitoring.marts_dir``, and their JSON documents.

Layout (written by the Dagster pipelines, read back by ``/metrics``)::

    features/tx_date=YYYY-MM-DD/features.parquet   point-in-time features of one day
    scores/tx_date=YYYY-MM-DD/scores.parquet       batch decisions of the serving model
    drift/YYYY-MM-DD.json, .html, latest.json      Evidently drift result and report
    performance/YYYY-MM-DD.json, latest.json       delayed-label performance

Plain ``json`` and ``pathlib`` only: the API imports this module.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

FEATURES = "features"
SCORES = "scores"
DRIFT = "drift"
PERFORMANCE = "performance"
LATEST = "latest.json"


def day_partition(marts_dir: Path, mart: str, day: date) -> Path:
    """The Parquet file of one day of a day-partitioned mart (``features`` or ``scores``)."""
    return marts_dir / mart / f"tx_date={day.isoformat()}" / f"{mart}.parquet"


def document_path(marts_dir: Path, mart: str, day: date, suffix: str = ".json") -> Path:
    """The dated document of a mart (``drift`` or ``performance``), e.g. ``drift/D.html``."""
    return marts_dir / mart / f"{day.isoformat()}{suffix}"


def latest_path(marts_dir: Path, mart: str) -> Path:
    """The newest document of a mart, the one ``/metrics`` reads."""
    return marts_dir / mart / LATEST


def write_json_atomically(payload: dict[str, Any], path: Path) -> None:
    """Write JSON to a temp file beside ``path``, then rename it (readers never see half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(handle, 0o644)  # mkstemp makes 0600; the API may read as another user
    try:
        with os.fdopen(handle, "w") as sink:
            json.dump(payload, sink, indent=2, sort_keys=True, default=str)
        os.replace(temp_name, path)
    finally:
        Path(temp_name).unlink(missing_ok=True)


def publish(marts_dir: Path, mart: str, day: date, payload: dict[str, Any]) -> Path:
    """Write the day's document and make it the mart's latest; returns the dated path."""
    dated = document_path(marts_dir, mart, day)
    write_json_atomically(payload, dated)
    write_json_atomically(payload, latest_path(marts_dir, mart))
    return dated


def read_document(path: Path) -> dict[str, Any] | None:
    """A mart document, or None when it does not exist yet."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    document: dict[str, Any] = json.loads(text)
    return document
