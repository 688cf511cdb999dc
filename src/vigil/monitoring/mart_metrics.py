"""Carry the newest monitoring marts into a process's Prometheus metrics (ADR 0007).

The Dagster jobs that compute drift and delayed-label performance are short-lived, so
Prometheus cannot scrape them. Instead the API's ``/metrics`` calls :meth:`refresh`: it stats
the two ``latest.json`` documents (at most once per ``min_interval_s``), re-reads one only
when it was replaced, and

- sets ``vigil_feature_drift_psi{feature}`` to each column's PSI (other stattests are not
  PSI and are not exported under that name);
- raises the business counters to the running totals of the performance mart. Totals only
  grow, and a fresh process starts its counters at the totals before its first scrape, so
  the series stays continuous across restarts.

Plain ``json`` only: this runs inside the API.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from prometheus_client import Counter

from vigil.monitoring.marts import DRIFT, PERFORMANCE, latest_path, read_document
from vigil.monitoring.prometheus import VigilMetrics

logger = logging.getLogger(__name__)

PSI = "psi"


class MartMetrics:
    """Mirrors the latest drift and performance marts into ``metrics``."""

    def __init__(self, metrics: VigilMetrics, marts_dir: Path, min_interval_s: float = 5.0) -> None:
        self._metrics = metrics
        self._paths = {
            DRIFT: latest_path(marts_dir, DRIFT),
            PERFORMANCE: latest_path(marts_dir, PERFORMANCE),
        }
        self._seen: dict[str, tuple[int, int]] = {}
        self._applied: dict[str, float] = {}
        self._min_interval_s = min_interval_s
        self._checked_at = float("-inf")

    def refresh(self) -> None:
        """Apply whichever mart changed since the last call (cheap when nothing did)."""
        now = time.monotonic()
        if now - self._checked_at < self._min_interval_s:
            return
        self._checked_at = now
        for mart, path in self._paths.items():
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            # Documents are replaced by rename: a new inode or mtime means a new document.
            version = (stat.st_ino, stat.st_mtime_ns)
            if self._seen.get(mart) == version:
                continue
            document = read_document(path)
            if document is None:
                continue
            self._apply(mart, document)
            self._seen[mart] = version

    def _apply(self, mart: str, document: dict[str, Any]) -> None:
        if mart == DRIFT:
            self._apply_drift(document)
        else:
            self._apply_totals(document.get("totals"))

    def _apply_drift(self, document: dict[str, Any]) -> None:
        gauge = self._metrics.feature_drift_psi
        gauge.clear()
        for column in document["columns"]:
            if column["method"] == PSI:
                gauge.labels(feature=column["column"]).set(float(column["score"]))

    def _apply_totals(self, totals: dict[str, Any] | None) -> None:
        if totals is None:
            return
        m = self._metrics
        self._raise_to(m.flagged_amount, "flagged_amount", totals["flagged_amount"])
        self._raise_to(m.prevented_loss, "prevented_loss", totals["prevented_loss"])
        self._raise_to(m.false_alarms, "false_alarms", totals["false_alarms"])
        fraud, legit = (
            m.labels_received.labels(outcome="fraud"),
            m.labels_received.labels(outcome="legit"),
        )
        self._raise_to(fraud, "labels_fraud", totals["labels_fraud"])
        self._raise_to(legit, "labels_legit", totals["labels_legit"])

    def _raise_to(self, counter: Counter, key: str, total: float) -> None:
        """Increment ``counter`` so that it reads ``total`` (counters never go down)."""
        delta = float(total) - self._applied.get(key, 0.0)
        if delta < 0:
            logger.warning("mart total %s went down (%s); counter left as it is", key, total)
            return
        if delta > 0:
            counter.inc(delta)
        self._applied[key] = float(total)
