"""Every Prometheus metric Vigil exposes, defined once and bound to an explicit registry.

The API and the stream worker each build one :class:`VigilMetrics` at start-up (never at
import) and serve :meth:`VigilMetrics.exposition` on ``/metrics``. Dashboards and alert rules
refer to these names; ``tests/integration/test_prometheus_queries.py`` checks that they agree.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from vigil.inference.roles import CHALLENGER, CHAMPION
from vigil.monitoring.gc_pauses import GcPauses

if TYPE_CHECKING:
    from vigil.inference.manager import ModelSnapshot

__all__ = ["CONTENT_TYPE_LATEST", "VigilMetrics", "create_metrics", "observe_many"]

# Fine-grained below 10 ms: a scored request takes about a millisecond on the happy path.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01,
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
# Storage round trips: Redis or an in-process dict (sub-millisecond) up to a slow database.
STORAGE_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
)  # fmt: skip
# A message's whole trip: publish -> consume -> score -> commit -> ack.
END_TO_END_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))
# The event loop's lag: a probe sleeps 5 ms; serving.max_loop_lag_ms is 20 in the stress campaign.
LOOP_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
SHED_REASONS = ("in_flight", "queued", "loop_lag")  # why admission control refused a request
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
# From a card's top alert to the analyst's verdict: minutes to days.
VERDICT_WAIT_BUCKETS = (
    60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 43200.0, 86400.0, 172800.0,
    604800.0,
)  # fmt: skip


class VigilMetrics:
    """The metric objects of one Vigil process, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        reg = registry

        # Service.
        self.http_requests = Counter(
            "vigil_http_requests",
            "HTTP requests answered, by route template and status code.",
            ["route", "status"],
            registry=reg,
        )
        self.http_request_duration = Histogram(
            "vigil_http_request_duration_seconds",
            "Time from request received to response sent, by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.requests_shed = Counter(
            "vigil_http_requests_shed",
            "Scoring requests refused by admission control (503 + Retry-After), not scored, by "
            "reason: in_flight (the in-flight limit), queued (waited past max_queue_ms before "
            "its handler), loop_lag (the event loop late on two probes in a row).",
            ["reason"],
            registry=reg,
        )
        for reason in SHED_REASONS:  # every series from the start: rate() sees the first one
            self.requests_shed.labels(reason=reason)
        self.event_loop_lag = Histogram(
            "vigil_event_loop_lag_seconds",
            "How late the admission gate's probe (a 5 ms sleep) woke up: the event loop's lag.",
            buckets=LOOP_LAG_BUCKETS,
            registry=reg,
        )
        self.admission_queue_wait = Histogram(
            "vigil_http_admission_wait_seconds",
            "Admitted scoring requests: time from the server reading them to their handler.",
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.admission_limit = Gauge(
            "vigil_http_admission_limit",
            "Scoring requests admission control lets in flight now.",
            registry=reg,
        )

        # Model.
        self.scores = Histogram(
            "vigil_score",
            "Fraud scores produced, by model role (champion or challenger in shadow).",
            ["role"],
            buckets=SCORE_BUCKETS,
            registry=reg,
        )
        self.decisions = Counter(
            "vigil_decisions",
            "Decisions taken by the champion model, by label (fraud or legit).",
            ["label"],
            registry=reg,
        )
        self.model_info = Gauge(
            "vigil_model_info",
            "Always 1: the model version and kind serving in each role.",
            ["role", "model_version", "model_kind"],
            registry=reg,
        )
        self.feature_drift_psi = Gauge(
            "vigil_feature_drift_psi",
            "Population stability index of each feature against the reference window.",
            ["feature"],
            registry=reg,
        )

        # Business.
        self.flagged_amount = Counter(
            "vigil_flagged_amount",
            "Sum of the amounts (currency units) of transactions flagged as fraud.",
            registry=reg,
        )
        self.prevented_loss = Counter(
            "vigil_prevented_loss",
            "Estimated loss prevented: amounts of flagged transactions later labelled fraud.",
            registry=reg,
        )
        self.false_alarms = Counter(
            "vigil_false_alarms",
            "Flagged transactions later labelled legitimate.",
            registry=reg,
        )
        self.labels_received = Counter(
            "vigil_labels_received",
            "Fraud labels received (chargebacks, analyst verdicts), by outcome.",
            ["outcome"],
            registry=reg,
        )

        # Case queue (analysts' review).
        self.case_verdicts = Counter(
            "vigil_case_verdicts",
            "Cards reviewed by an analyst, by verdict (fraud when any transaction is fraud).",
            ["verdict"],
            registry=reg,
        )
        self.case_time_to_verdict = Histogram(
            "vigil_case_time_to_verdict_seconds",
            "Wall-clock time from the arrival of a card's top-scored transaction to its verdict.",
            buckets=VERDICT_WAIT_BUCKETS,
            registry=reg,
        )
        self.case_queue_budget = Gauge(
            "vigil_case_queue_budget",
            "Cards the analysts review a day (the queue's length), for the latest verdict's day.",
            registry=reg,
        )
        self.case_queue_size = Gauge(
            "vigil_case_queue_size",
            "Cards in the latest verdict's day queue (the budget; more if more were reviewed).",
            registry=reg,
        )
        self.case_queue_reviewed = Gauge(
            "vigil_case_queue_reviewed",
            "Cards of the latest verdict's day queue that are fully reviewed.",
            registry=reg,
        )
        self.case_queue_frauds = Gauge(
            "vigil_case_queue_frauds",
            "Reviewed cards of the latest verdict's day queue found fraud (live CP@k numerator).",
            registry=reg,
        )

        # Storage.
        self.state_store_latency = Histogram(
            "vigil_state_store_latency_seconds",
            "Online state store round trip by operation (record: a micro-batch's features; label).",
            ["operation"],
            buckets=STORAGE_BUCKETS,
            registry=reg,
        )
        self.db_commit_latency = Histogram(
            "vigil_db_commit_latency_seconds",
            "Time the database writer takes to commit one group of rows.",
            buckets=STORAGE_BUCKETS,
            registry=reg,
        )
        self.writer_queue_depth = Gauge(
            "vigil_writer_queue_depth",
            "Rows waiting in the database writer's queue.",
            registry=reg,
        )
        self.state_store_warm = Gauge(
            "vigil_state_store_warm",
            "1 while the online state store holds its warm-up marker; 0 after a reset lost it.",
            registry=reg,
        )
        self.state_store_warm.set(1)
        self.state_store_rewarms = Counter(
            "vigil_state_store_rewarms",
            "Automatic re-warms of the Redis state store from the database after its servers "
            "changed (kind: tail after a restart or failover that kept the data, full after one "
            "that lost it).",
            ["kind"],
            registry=reg,
        )
        self.state_store_rewarmed_transactions = Counter(
            "vigil_state_store_rewarmed_transactions",
            "Transactions those re-warms re-recorded (repeats of held ones change nothing).",
            ["kind"],
            registry=reg,
        )
        self.database_up = Gauge(
            "vigil_database_up",
            "1 while the database writer's last interaction with PostgreSQL succeeded.",
            registry=reg,
        )
        self.broker_connected = Gauge(
            "vigil_broker_connected",
            "1 while the stream worker's connection to RabbitMQ is open.",
            registry=reg,
        )
        # NaN (no alert) in a process without a writer (the worker) or a broker (the API).
        self.database_up.set(math.nan)
        self.broker_connected.set(math.nan)
        # process_start_time_seconds (restarts), resident memory, CPU: the standard names.
        ProcessCollector(registry=reg)
        # Collections and their pauses, counted while the API runs (its lifespan installs it).
        self.gc_pauses = GcPauses()
        reg.register(self.gc_pauses)

        # Stream worker.
        self.messages_consumed = Counter(
            "vigil_stream_messages_consumed",
            "Broker messages received by the stream worker, by queue.",
            ["queue"],
            registry=reg,
        )
        self.messages_acked = Counter(
            "vigil_stream_messages_acked",
            "Broker messages acknowledged after their result was committed, by queue.",
            ["queue"],
            registry=reg,
        )
        self.messages_dead_lettered = Counter(
            "vigil_stream_messages_dead_lettered",
            "Broker messages sent to the dead-letter queue, by queue and short reason.",
            ["queue", "reason"],
            registry=reg,
        )
        self.stream_batch_size = Histogram(
            "vigil_stream_batch_size",
            "Messages scored together in one stream worker batch.",
            buckets=BATCH_BUCKETS,
            registry=reg,
        )
        self.stream_end_to_end_latency = Histogram(
            "vigil_stream_end_to_end_latency_seconds",
            "Time from a transaction's publication to the ack of its committed decision.",
            buckets=END_TO_END_BUCKETS,
            registry=reg,
        )

    def set_model(self, role: str, model_version: str, model_kind: str) -> None:
        """Record the model now serving in ``role``, replacing whichever served there before."""
        self.clear_model(role)
        self.model_info.labels(role=role, model_version=model_version, model_kind=model_kind).set(1)

    def show_models(self, models: ModelSnapshot) -> None:
        """``vigil_model_info`` as a process serves now: its champion, and challenger if any."""
        champion = models.champion.metadata
        self.set_model(CHAMPION, champion.model_version, champion.model_kind)
        if models.challenger is None:
            self.clear_model(CHALLENGER)
        else:
            challenger = models.challenger.metadata
            self.set_model(CHALLENGER, challenger.model_version, challenger.model_kind)

    def clear_model(self, role: str) -> None:
        """Record that no model serves in ``role`` (e.g. the challenger was removed)."""
        for labels in self._model_labels(role):
            self.model_info.remove(*labels)

    def _model_labels(self, role: str) -> list[tuple[str, ...]]:
        """Label tuples of ``vigil_model_info`` currently set for ``role``."""
        return [
            (sample.labels["role"], sample.labels["model_version"], sample.labels["model_kind"])
            for metric in self.model_info.collect()
            for sample in metric.samples
            if sample.labels.get("role") == role
        ]

    def exposition(self) -> bytes:
        """The registry in Prometheus text format (serve with ``CONTENT_TYPE_LATEST``)."""
        return generate_latest(self.registry)


def create_metrics(registry: CollectorRegistry | None = None) -> VigilMetrics:
    """Build Vigil's metrics in ``registry``, or in a fresh registry of their own."""
    return VigilMetrics(registry if registry is not None else CollectorRegistry())


def observe_many(histogram: Histogram, values: Iterable[float]) -> None:
    """``histogram.observe(value)`` for each value, one lock round per touched bucket.

    The hot routes observe a whole micro-batch at once: per value only a bisection, instead
    of ``observe``'s lock acquisitions for the sum and the bucket. ``histogram`` is a
    labelled child (or an unlabelled histogram); NaN is skipped for the buckets and poisons
    the sum, as with ``observe``.
    """
    bounds = histogram._upper_bounds
    counts: dict[int, int] = {}
    total = 0.0
    for value in values:
        total += value
        if value == value:  # NaN falls in no bucket
            index = bisect_left(bounds, value)
            counts[index] = counts.get(index, 0) + 1
    histogram._sum.inc(total)
    buckets = histogram._buckets
    for index, count in counts.items():
        buckets[index].inc(count)
