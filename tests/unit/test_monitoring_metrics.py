"""VigilMetrics: names, labels, values and the exposition text, in a fresh registry each time."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from vigil.monitoring import VigilMetrics, create_metrics
from vigil.monitoring.prometheus import observe_many

EXPECTED_FAMILIES = {
    "vigil_http_requests": "counter",
    "vigil_http_request_duration_seconds": "histogram",
    "vigil_http_requests_shed": "counter",
    "vigil_http_admission_wait_seconds": "histogram",
    "vigil_http_admission_limit": "gauge",
    "vigil_event_loop_lag_seconds": "histogram",
    "vigil_gc_collections": "counter",
    "vigil_gc_pause_seconds": "counter",
    "vigil_score": "histogram",
    "vigil_decisions": "counter",
    "vigil_model_info": "gauge",
    "vigil_feature_drift_psi": "gauge",
    "vigil_flagged_amount": "counter",
    "vigil_prevented_loss": "counter",
    "vigil_false_alarms": "counter",
    "vigil_labels_received": "counter",
    "vigil_case_verdicts": "counter",
    "vigil_case_time_to_verdict_seconds": "histogram",
    "vigil_case_queue_budget": "gauge",
    "vigil_case_queue_size": "gauge",
    "vigil_case_queue_reviewed": "gauge",
    "vigil_case_queue_frauds": "gauge",
    "vigil_state_store_latency_seconds": "histogram",
    "vigil_db_commit_latency_seconds": "histogram",
    "vigil_writer_queue_depth": "gauge",
    "vigil_state_store_warm": "gauge",
    "vigil_state_store_rewarms": "counter",
    "vigil_state_store_rewarmed_transactions": "counter",
    "vigil_database_up": "gauge",
    "vigil_broker_connected": "gauge",
    "vigil_stream_messages_consumed": "counter",
    "vigil_stream_messages_acked": "counter",
    "vigil_stream_messages_dead_lettered": "counter",
    "vigil_stream_batch_size": "histogram",
    "vigil_stream_end_to_end_latency_seconds": "histogram",
    # prometheus_client's process collector (restarts: process_start_time_seconds)
    "process_virtual_memory_bytes": "gauge",
    "process_resident_memory_bytes": "gauge",
    "process_start_time_seconds": "gauge",
    "process_cpu_seconds": "counter",
    "process_open_fds": "gauge",
    "process_max_fds": "gauge",
}


def samples(metrics: VigilMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parse the exposition text back into {(sample name, sorted labels): value}."""
    parsed = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            parsed[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return parsed


def families(metrics: VigilMetrics) -> dict[str, tuple[str, str]]:
    """{family name: (type, help)} from the exposition text."""
    text = metrics.exposition().decode()
    return {
        f.name: (f.type, f.documentation)
        for f in text_string_to_metric_families(text)
        if not f.name.endswith("_created")  # prometheus-client's creation timestamps
    }


def test_every_metric_is_exposed_with_its_type_and_a_description() -> None:
    metrics = create_metrics()
    metrics.http_requests.labels(route="/predict", status="200").inc()
    found = families(metrics)
    assert {name: kind for name, (kind, _) in found.items()} == EXPECTED_FAMILIES
    assert all(help_text.endswith(".") and len(help_text) > 20 for _, help_text in found.values())


def test_observed_values_appear_in_the_exposition() -> None:
    metrics = create_metrics()
    metrics.http_requests.labels(route="/predict", status="200").inc(3)
    metrics.http_requests.labels(route="/predict", status="400").inc()
    metrics.http_request_duration.labels(route="/predict").observe(0.004)
    metrics.scores.labels(role="champion").observe(0.93)
    metrics.decisions.labels(label="fraud").inc()
    metrics.flagged_amount.inc(120.5)
    metrics.flagged_amount.inc(79.5)
    metrics.writer_queue_depth.set(17)
    metrics.feature_drift_psi.labels(feature="tx_amount").set(0.31)
    metrics.messages_dead_lettered.labels(queue="transactions", reason="invalid").inc()
    metrics.stream_batch_size.observe(100)

    got = samples(metrics)
    assert got[("vigil_http_requests_total", (("route", "/predict"), ("status", "200")))] == 3
    assert got[("vigil_http_requests_total", (("route", "/predict"), ("status", "400")))] == 1
    assert got[("vigil_decisions_total", (("label", "fraud"),))] == 1
    assert got[("vigil_flagged_amount_total", ())] == 200.0
    assert got[("vigil_writer_queue_depth", ())] == 17
    assert got[("vigil_feature_drift_psi", (("feature", "tx_amount"),))] == 0.31
    dlq = (
        "vigil_stream_messages_dead_lettered_total",
        (("queue", "transactions"), ("reason", "invalid")),
    )
    assert got[dlq] == 1
    # 4 ms falls in the 5 ms bucket and not in the 3 ms one: buckets are fine below 10 ms.
    bucket = "vigil_http_request_duration_seconds_bucket"
    assert got[(bucket, (("le", "0.003"), ("route", "/predict")))] == 0
    assert got[(bucket, (("le", "0.005"), ("route", "/predict")))] == 1
    # A score of 0.93 is counted from the 0.95 bucket on; 100 messages from the 128 bucket on.
    assert got[("vigil_score_bucket", (("le", "0.9"), ("role", "champion")))] == 0
    assert got[("vigil_score_bucket", (("le", "0.95"), ("role", "champion")))] == 1
    assert got[("vigil_stream_batch_size_bucket", (("le", "64.0"),))] == 0
    assert got[("vigil_stream_batch_size_bucket", (("le", "128.0"),))] == 1


def test_set_model_replaces_the_previous_version_of_the_same_role_only() -> None:
    metrics = create_metrics()
    metrics.set_model("champion", "vigil-a1", "mlp")
    metrics.set_model("challenger", "vigil-b2", "lightgbm")
    metrics.set_model("champion", "vigil-c3", "mlp")

    info = {
        labels: value
        for (name, labels), value in samples(metrics).items()
        if name == "vigil_model_info"
    }
    assert info == {
        (("model_kind", "mlp"), ("model_version", "vigil-c3"), ("role", "champion")): 1,
        (("model_kind", "lightgbm"), ("model_version", "vigil-b2"), ("role", "challenger")): 1,
    }


def test_instances_are_independent_and_leave_the_global_registry_alone() -> None:
    before = {m.name for m in REGISTRY.collect()}
    first, second = create_metrics(), create_metrics()
    first.decisions.labels(label="legit").inc()
    assert ("vigil_decisions_total", (("label", "legit"),)) not in samples(second)
    assert {m.name for m in REGISTRY.collect()} == before

    mine = CollectorRegistry()
    assert create_metrics(mine).registry is mine


def test_observe_many_counts_exactly_like_observe() -> None:
    """Bucket edges included (a value equal to a bound is in that bucket), +Inf, the sum."""
    values = [0.0, 0.05, 0.051, 0.5, 0.93, 1.0, 0.05, 7.5]
    one_by_one, batched = create_metrics(), create_metrics()
    for value in values:
        one_by_one.scores.labels(role="champion").observe(value)
    observe_many(batched.scores.labels(role="champion"), values)
    expected = {k: v for k, v in samples(one_by_one).items() if k[0].startswith("vigil_score_")}
    got = {k: v for k, v in samples(batched).items() if k[0].startswith("vigil_score_")}
    assert got.keys() == expected.keys()
    assert {k: v for k, v in got.items() if not k[0].endswith("_created")} == {
        k: v for k, v in expected.items() if not k[0].endswith("_created")
    }
    assert expected[("vigil_score_bucket", (("le", "0.05"), ("role", "champion")))] == 3
    assert expected[("vigil_score_bucket", (("le", "1.0"), ("role", "champion")))] == 7
    assert expected[("vigil_score_count", (("role", "champion"),))] == 8
