"""The case queue's figures on ``/metrics``: verdicts, time to verdict, review load, precision."""

from __future__ import annotations

from vigil.cases import CaseQueue
from vigil.decisions.labels import VerdictOutcome
from vigil.monitoring.prometheus import VigilMetrics
from vigil.storage.records import utc_now


def observe_verdict(metrics: VigilMetrics, outcome: VerdictOutcome, queue: CaseQueue) -> None:
    """Count a new verdict and its wait; show the state of its day's queue.

    The wait is wall-clock: from the arrival of the card's top-scored transaction of the day
    to the verdict. The queue gauges describe the day of the latest verdict.
    """
    if outcome.stored:
        verdict = "fraud" if any(r.is_fraud for r in outcome.stored) else "legit"
        metrics.case_verdicts.labels(verdict=verdict).inc()
        waited = (utc_now() - outcome.top_received_at).total_seconds()
        metrics.case_time_to_verdict.observe(max(waited, 0.0))
    metrics.case_queue_budget.set(queue.budget)
    metrics.case_queue_size.set(queue.size)
    metrics.case_queue_reviewed.set(queue.reviewed)
    metrics.case_queue_frauds.set(queue.frauds)
