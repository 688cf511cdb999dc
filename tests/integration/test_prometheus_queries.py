"""Every PromQL expression in the dashboards and alert rules, run by a real Prometheus.

A tiny exporter serves a populated :class:`VigilMetrics`; a throw-away Prometheus scrapes it
every half second and loads ``deploy/prometheus/rules``. Each dashboard query must succeed and
return series; each alert expression must succeed and name only scraped metrics. ``promtool``
and ``amtool`` check the shipped configuration files and run the alert unit tests.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import start_http_server

from conftest import IN_CI
from vigil.monitoring import VigilMetrics, create_metrics

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
DASHBOARD_DIR = ROOT / "deploy" / "grafana" / "dashboards"
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
METRIC_NAME = re.compile(r"\bvigil_[a-z0-9_]+")
# Grafana's built-in variables, as Grafana would expand them for a short time range, and the
# dashboards' template variables at their default, All (".*").
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__range": "5m",
    "$route": ".*",
    "$model_version": ".*",
}
STARTUP_TIMEOUT_S = 30.0


def require_tool(name: str) -> str:
    """Path of a Prometheus tool; skipped locally when absent, a failure in CI."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed (apt-get install prometheus prometheus-alertmanager)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def dashboard_queries() -> list[tuple[str, str]]:
    """(id, expanded expression) for every target of every committed dashboard."""
    queries = []
    for path in sorted(DASHBOARD_DIR.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for variable, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(variable, value)
                queries.append((f"{path.stem}:{panel['title']}:{target['refId']}", expr))
    return queries


def alert_queries() -> list[tuple[str, str]]:
    """(alert name, expression) for every rule in deploy/prometheus/rules."""
    queries = []
    for path in sorted((PROMETHEUS_DIR / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                queries.append((rule.get("alert") or rule["record"], rule["expr"]))
    return queries


def populate(metrics: VigilMetrics) -> None:
    """Give every metric, and every label value a query filters on, at least one sample."""
    for status, count in (("200", 97), ("404", 2), ("500", 1)):
        metrics.http_requests.labels(route="/predict", status=status).inc(count)
    for seconds in (0.0008, 0.002, 0.004, 0.03):
        metrics.http_request_duration.labels(route="/predict").observe(seconds)
    for role, score in (("champion", 0.91), ("champion", 0.02), ("challenger", 0.4)):
        metrics.scores.labels(role=role).observe(score)
    metrics.decisions.labels(label="fraud").inc(2)
    metrics.decisions.labels(label="legit").inc(98)
    metrics.set_model("champion", "vigil-abc123", "mlp")
    metrics.feature_drift_psi.labels(feature="tx_amount").set(0.05)
    metrics.flagged_amount.inc(250.0)
    metrics.prevented_loss.inc(180.0)
    metrics.false_alarms.inc()
    metrics.labels_received.labels(outcome="fraud").inc()
    metrics.labels_received.labels(outcome="legit").inc(3)
    metrics.state_store_latency.labels(operation="record").observe(0.0003)
    metrics.db_commit_latency.observe(0.004)
    metrics.writer_queue_depth.set(12)
    metrics.messages_consumed.labels(queue="transactions").inc(10)
    metrics.messages_acked.labels(queue="transactions").inc(9)
    metrics.messages_dead_lettered.labels(queue="transactions", reason="invalid").inc()
    metrics.stream_batch_size.observe(9)
    metrics.stream_end_to_end_latency.observe(0.04)
    metrics.case_verdicts.labels(verdict="fraud").inc(3)
    metrics.case_verdicts.labels(verdict="legit").inc(5)
    metrics.case_time_to_verdict.observe(1800.0)
    metrics.case_queue_budget.set(100)
    metrics.case_queue_size.set(100)
    metrics.case_queue_reviewed.set(8)
    metrics.case_queue_frauds.set(3)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def api(base_url: str, path: str, **params: str) -> dict[str, Any]:
    """GET a Prometheus HTTP API path and return the decoded body."""
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    with urllib.request.urlopen(f"{base_url}{path}{query}", timeout=10) as response:
        body: dict[str, Any] = json.loads(response.read())
    return body


def wait_for_scrapes(base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until Prometheus is ready and holds two scrapes of the exporter (so rate() works)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"prometheus exited early:\n{log.read_text()[-3000:]}")
        try:
            result = api(base_url, "/api/v1/query", query="count_over_time(up[1m])")
        except OSError:
            time.sleep(0.2)
            continue
        samples = result["data"]["result"]
        if samples and float(samples[0]["value"][1]) >= 2:
            return
        time.sleep(0.2)
    pytest.fail(f"prometheus did not scrape the exporter in time:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a Prometheus scraping a populated VigilMetrics exporter."""
    binary = require_tool("prometheus")
    metrics = create_metrics()
    populate(metrics)
    exporter, thread = start_http_server(0, addr="127.0.0.1", registry=metrics.registry)
    workdir = tmp_path_factory.mktemp("prometheus")
    config = {
        "global": {"scrape_interval": "500ms", "evaluation_interval": "500ms"},
        "rule_files": [str(PROMETHEUS_DIR / "rules" / "*.yml")],
        "scrape_configs": [
            {
                "job_name": "vigil-api",
                "static_configs": [{"targets": [f"127.0.0.1:{exporter.server_port}"]}],
            }
        ],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = workdir / "prometheus.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for_scrapes(base_url, process, log)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=10)
        exporter.shutdown()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def scraped_names(prometheus: str) -> set[str]:
    """Metric names Prometheus holds after scraping the exporter."""
    return set(api(prometheus, "/api/v1/label/__name__/values")["data"])


@pytest.mark.parametrize(("query_id", "expr"), dashboard_queries(), ids=lambda v: str(v)[:60])
def test_dashboard_query_runs_and_returns_series(
    prometheus: str, scraped_names: set[str], query_id: str, expr: str
) -> None:
    used = set(METRIC_NAME.findall(expr))
    assert used and used <= scraped_names, f"{query_id}: unknown {sorted(used - scraped_names)}"
    body = api(prometheus, "/api/v1/query", query=expr)
    assert body["status"] == "success", body
    assert body["data"]["result"], f"{query_id} returned no series: {expr}"


@pytest.mark.parametrize(("alert", "expr"), alert_queries(), ids=lambda v: str(v)[:60])
def test_alert_expression_runs_on_scraped_metrics(
    prometheus: str, scraped_names: set[str], alert: str, expr: str
) -> None:
    used = set(METRIC_NAME.findall(expr))
    assert used <= scraped_names, f"{alert}: unknown {sorted(used - scraped_names)}"
    assert api(prometheus, "/api/v1/query", query=expr)["status"] == "success"


def test_prometheus_loads_and_evaluates_every_rule(prometheus: str) -> None:
    deadline = time.monotonic() + 10
    while True:
        groups = api(prometheus, "/api/v1/rules")["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        if all(rule["health"] == "ok" for rule in rules) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert sorted(rule["name"] for rule in rules) == sorted(name for name, _ in alert_queries())
    assert [r["name"] for r in rules if r["health"] != "ok"] == []


@pytest.mark.parametrize(
    "args",
    [
        ["promtool", "check", "config", str(PROMETHEUS_DIR / "prometheus.yml")],
        ["promtool", "check", "rules", *map(str, sorted(PROMETHEUS_DIR.glob("rules/*.yml")))],
        ["promtool", "test", "rules", *map(str, sorted(PROMETHEUS_DIR.glob("tests/*.yml")))],
        ["amtool", "check-config", str(ALERTMANAGER_CONFIG)],
    ],
    ids=["promtool-config", "promtool-rules", "promtool-test-rules", "amtool-config"],
)
def test_shipped_configuration_passes_the_official_checkers(args: list[str]) -> None:
    tool = require_tool(args[0])
    result = subprocess.run([tool, *args[1:]], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
