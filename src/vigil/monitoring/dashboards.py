"""Grafana dashboards generated as code from the metric names in :mod:`vigil.monitoring.prometheus`.

``vigil dashboards`` writes one JSON file per dashboard into ``deploy/grafana/dashboards/``;
Grafana loads them through the file provider in ``deploy/grafana/provisioning/``. A test keeps
the committed files equal to what this module generates, and runs every PromQL expression
against a real Prometheus.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
SCHEMA_VERSION = 39
PANEL_WIDTH = 12
PANEL_HEIGHT = 8
GRID_WIDTH = 24
RATE = "[$__rate_interval]"
AMOUNT_NOTE = "In the currency of tx_amount."
# Business counters come from the daily performance mart (ADR 0007): each API replica exposes
# the same running totals, so panels take the max over instances, never the sum.
MART_NOTE = "From the daily delayed-label performance mart; max over API replicas."


@dataclass(frozen=True)
class Query:
    """One PromQL expression and how Grafana labels its series."""

    expr: str
    legend: str = ""
    instant: bool = False


@dataclass(frozen=True)
class Panel:
    """A Grafana panel: its kind, title, queries and display unit."""

    title: str
    queries: tuple[Query, ...]
    kind: str = "timeseries"
    unit: str = "short"
    description: str = ""
    thresholds: tuple[float, ...] = ()


@dataclass(frozen=True)
class Variable:
    """A Grafana template variable: the values of one label, ``All`` (any value) by default.

    Queries filter with ``label=~"$name"``; ``All`` expands to ``.*``.
    """

    name: str
    label: str
    metric: str

    @property
    def selector(self) -> str:
        """The matcher a query uses: ``name=~"$name"``."""
        return f'{self.name}=~"${self.name}"'


@dataclass(frozen=True)
class Dashboard:
    """A titled list of rows, each a list of panels laid out two per line."""

    uid: str
    title: str
    rows: tuple[tuple[str, tuple[Panel, ...]], ...]
    tags: tuple[str, ...] = field(default=("vigil",))
    variables: tuple[Variable, ...] = ()


ROUTE = Variable("route", "Route", "vigil_http_requests_total")
MODEL_VERSION = Variable("model_version", "Model version", "vigil_model_info")


def rate(metric: str, selector: str = "") -> str:
    """``rate(metric{selector}[$__rate_interval])``."""
    return f"rate({metric}{{{selector}}}{RATE})" if selector else f"rate({metric}{RATE})"


def increase(metric: str, window: str) -> str:
    """``increase(metric[window])``."""
    return f"increase({metric}[{window}])"


def quantile(q: float, histogram: str, by: str = "", selector: str = "") -> str:
    """The ``q`` quantile of a histogram's rate, grouped by ``by`` labels."""
    labels = ", ".join(["le", *([by] if by else [])])
    return f"histogram_quantile({q}, sum by ({labels}) ({rate(histogram + '_bucket', selector)}))"


def ratio(numerator: str, denominator: str) -> str:
    """``numerator / denominator`` that shows 0 rather than nothing when both are 0."""
    return f"({numerator}) / clamp_min({denominator}, 1e-9)"


def latency_panel(title: str, histogram: str, by: str = "", selector: str = "") -> Panel:
    """p50 and p99 of a latency histogram, optionally split by one label."""
    legend = f"{{{{{by}}}}} " if by else ""
    return Panel(
        title,
        (
            Query(quantile(0.5, histogram, by, selector), f"{legend}p50"),
            Query(quantile(0.99, histogram, by, selector), f"{legend}p99"),
        ),
        unit="s",
    )


def service_dashboard() -> Dashboard:
    """Traffic, errors, latency, writer and stream worker health."""
    requests = "vigil_http_requests_total"
    route = ROUTE.selector
    all_requests = f"sum({rate(requests, route)})"
    server_errors = "sum(" + rate(requests, f'{route}, status=~"5.."') + ")"
    client_errors = "sum(" + rate(requests, f'{route}, status=~"4.."') + ")"
    http = (
        Panel(
            "Requests per second by route",
            (Query(f"sum by (route) ({rate(requests, route)})", "{{route}}"),),
            unit="reqps",
        ),
        Panel(
            "Error rate",
            (
                Query(ratio(server_errors, all_requests), "5xx"),
                Query(ratio(client_errors, all_requests), "4xx"),
            ),
            unit="percentunit",
            thresholds=(0.01,),
        ),
        latency_panel(
            "Request latency", "vigil_http_request_duration_seconds", by="route", selector=route
        ),
        Panel(
            "Requests by status",
            (Query(f"sum by (status) ({rate(requests, route)})", "{{status}}"),),
            unit="reqps",
        ),
    )
    storage = (
        Panel(
            "Writer queue depth",
            (Query("max by (instance) (vigil_writer_queue_depth)", "{{instance}}"),),
        ),
        latency_panel("Database commit latency", "vigil_db_commit_latency_seconds"),
        latency_panel("State store latency", "vigil_state_store_latency_seconds", by="operation"),
    )
    stream = (
        Panel(
            "Messages per second",
            (
                Query(f"sum({rate('vigil_stream_messages_consumed_total')})", "consumed"),
                Query(f"sum({rate('vigil_stream_messages_acked_total')})", "acked"),
                Query(
                    f"sum by (reason) ({rate('vigil_stream_messages_dead_lettered_total')})",
                    "dead-lettered: {{reason}}",
                ),
            ),
            unit="ops",
        ),
        latency_panel("End-to-end latency", "vigil_stream_end_to_end_latency_seconds"),
        Panel(
            "Batch size",
            (
                Query(quantile(0.5, "vigil_stream_batch_size"), "p50"),
                Query(quantile(0.99, "vigil_stream_batch_size"), "p99"),
            ),
        ),
    )
    return Dashboard(
        "vigil-service",
        "Vigil / Service",
        (("HTTP API", http), ("Storage", storage), ("Stream worker", stream)),
        variables=(ROUTE,),
    )


def model_dashboard() -> Dashboard:
    """Score distribution, fraud rate, serving model versions and feature drift."""
    decisions = "vigil_decisions_total"
    frauds = rate(decisions, 'label="fraud"')
    scores = (
        Panel(
            "Score distribution (champion)",
            (
                Query(
                    f'sum by (le) (increase(vigil_score_bucket{{role="champion"}}{RATE}))',
                    "{{le}}",
                ),
            ),
            kind="heatmap",
        ),
        Panel(
            "Fraud rate (share of decisions labelled fraud)",
            (
                Query(
                    ratio(f"sum({frauds})", f"sum({rate(decisions)})"),
                    "fraud rate",
                ),
            ),
            unit="percentunit",
        ),
        Panel(
            "Mean score by role",
            (
                Query(
                    ratio(
                        f"sum by (role) ({rate('vigil_score_sum')})",
                        f"sum by (role) ({rate('vigil_score_count')})",
                    ),
                    "{{role}}",
                ),
            ),
            unit="percentunit",
        ),
        Panel(
            "Decisions per second by class",
            (Query(f"sum by (label) ({rate(decisions)})", "{{label}}"),),
            unit="ops",
            description="Champion decisions: fraud (flagged) and legit (approved).",
        ),
        Panel(
            "Serving models",
            (
                Query(
                    "max by (role, model_version, model_kind) "
                    f"(vigil_model_info{{{MODEL_VERSION.selector}}})",
                    instant=True,
                ),
            ),
            kind="table",
        ),
    )
    drift = (
        Panel(
            "Feature drift (PSI)",
            (Query("max by (feature) (vigil_feature_drift_psi)", "{{feature}}"),),
            description="PSI above 0.1 is a moderate shift, above 0.25 a major one.",
            thresholds=(0.1, 0.25),
        ),
        Panel(
            "Current PSI by feature",
            (Query("max by (feature) (vigil_feature_drift_psi)", "{{feature}}", instant=True),),
            kind="bargauge",
            thresholds=(0.1, 0.25),
        ),
    )
    return Dashboard(
        "vigil-model",
        "Vigil / Model",
        (("Scores", scores), ("Drift", drift), ("Business", money_panels())),
        variables=(MODEL_VERSION,),
    )


def money_panels() -> tuple[Panel, ...]:
    """Flagged amount and prevented loss: the business dashboard's first row, and the model
    dashboard's business row (what the decisions are worth, next to how they are made)."""
    return (
        Panel(
            "Flagged amount (dashboard range)",
            (Query(f"max({increase('vigil_flagged_amount_total', '$__range')})", instant=True),),
            kind="stat",
            description=f"{AMOUNT_NOTE} {MART_NOTE}",
        ),
        Panel(
            "Estimated prevented loss (dashboard range)",
            (Query(f"max({increase('vigil_prevented_loss_total', '$__range')})", instant=True),),
            kind="stat",
            description=f"Amounts of flagged transactions later labelled fraud. {AMOUNT_NOTE} "
            + MART_NOTE,
        ),
        Panel(
            "Flagged amount and prevented loss per day",
            (
                Query(f"max({increase('vigil_flagged_amount_total', '1d')})", "flagged"),
                Query(f"max({increase('vigil_prevented_loss_total', '1d')})", "prevented loss"),
            ),
            description=f"{AMOUNT_NOTE} {MART_NOTE}",
        ),
    )


CASES_NOTE = (
    "The queue of the latest verdict's day, read back from the database after each verdict; "
    "max over API replicas."
)


def case_panels() -> tuple[Panel, ...]:
    """The analysts' review: queue precision (live CP@k), review load, time to verdict."""
    reviewed, frauds = "max(vigil_case_queue_reviewed)", "max(vigil_case_queue_frauds)"
    return (
        Panel(
            "Queue precision (live CP@k of the reviewed cards)",
            (Query(ratio(frauds, reviewed), "found fraud / reviewed"),),
            unit="percentunit",
            description="Reviewed cards of the day's queue found fraud, over reviewed cards. "
            + CASES_NOTE,
        ),
        Panel(
            "Review load: cards reviewed against the budget",
            (
                Query(reviewed, "reviewed"),
                Query("max(vigil_case_queue_size)", "in the queue"),
                Query("max(vigil_case_queue_budget)", "budget"),
            ),
            description=CASES_NOTE,
        ),
        latency_panel(
            "Time to verdict (top alert to verdict)", "vigil_case_time_to_verdict_seconds"
        ),
        Panel(
            "Verdicts per day",
            (
                Query(
                    f"sum by (verdict) ({increase('vigil_case_verdicts_total', '1d')})",
                    "{{verdict}}",
                ),
            ),
            description="Cards reviewed, by verdict (fraud when any transaction is fraud).",
        ),
    )


def business_dashboard() -> Dashboard:
    """Money flagged, loss prevented and the cost of false alarms."""
    money = money_panels()
    labels = (
        Panel(
            "False alarms per day",
            (Query(f"max({increase('vigil_false_alarms_total', '1d')})", "false alarms"),),
            description=MART_NOTE,
        ),
        Panel(
            "Labels received per day by outcome",
            (
                Query(
                    f"max by (outcome) ({increase('vigil_labels_received_total', '1d')})",
                    "{{outcome}}",
                ),
            ),
            description=MART_NOTE,
        ),
    )
    return Dashboard(
        "vigil-business",
        "Vigil / Business",
        (("Money", money), ("Labels", labels), ("Case queue", case_panels())),
    )


def _target(query: Query, ref_id: str, kind: str) -> dict[str, Any]:
    target: dict[str, Any] = {
        "datasource": DATASOURCE,
        "expr": query.expr,
        "legendFormat": query.legend or "__auto",
        "refId": ref_id,
        "instant": query.instant,
        "range": not query.instant,
    }
    if kind == "heatmap":
        target["format"] = "heatmap"
    elif kind == "table":
        target["format"] = "table"
    return target


def _thresholds(values: tuple[float, ...]) -> dict[str, Any]:
    colours = ["green", "orange", "red"]
    steps: list[dict[str, Any]] = [{"color": colours[0], "value": None}]
    steps += [{"color": colours[min(i + 1, 2)], "value": v} for i, v in enumerate(values)]
    return {"mode": "absolute", "steps": steps}


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    ref_ids = "ABCDEFGHIJ"
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": PANEL_WIDTH, "h": PANEL_HEIGHT},
        "fieldConfig": {
            "defaults": {"unit": panel.unit, "thresholds": _thresholds(panel.thresholds)},
            "overrides": [],
        },
        "options": {},
        "targets": [_target(q, ref_ids[i], panel.kind) for i, q in enumerate(panel.queries)],
    }


def _variable_json(variable: Variable) -> dict[str, Any]:
    query = f"label_values({variable.metric}, {variable.name})"
    return {
        "name": variable.name,
        "label": variable.label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": variable.name},
        "definition": query,
        "refresh": 2,  # on time range change
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def render(dashboard: Dashboard) -> dict[str, Any]:
    """The Grafana JSON model of ``dashboard``: a row panel, then its panels two per line."""
    panels: list[dict[str, Any]] = []
    y = 0
    for title, row_panels in dashboard.rows:
        panels.append(
            {
                "id": len(panels) + 1,
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"x": 0, "y": y, "w": GRID_WIDTH, "h": 1},
                "panels": [],
            }
        )
        y += 1
        for index, panel in enumerate(row_panels):
            x = (index * PANEL_WIDTH) % GRID_WIDTH
            panels.append(_panel_json(panel, len(panels) + 1, x, y))
            if x + PANEL_WIDTH >= GRID_WIDTH or index == len(row_panels) - 1:
                y += PANEL_HEIGHT
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "tags": list(dashboard.tags),
        "timezone": "browser",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [_variable_json(v) for v in dashboard.variables]},
        "annotations": {"list": []},
        "panels": panels,
    }


def dashboards() -> dict[str, dict[str, Any]]:
    """Every Vigil dashboard as Grafana JSON, keyed by its file name."""
    built = (service_dashboard(), model_dashboard(), business_dashboard())
    return {f"{d.uid}.json": render(d) for d in built}


def write_dashboards(out_dir: Path) -> list[Path]:
    """Write every dashboard as indented JSON into ``out_dir``; return the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in dashboards().items():
        path = out_dir / name
        path.write_text(json.dumps(model, indent=2, sort_keys=True) + "\n")
        logger.info("wrote dashboard %s", path)
        written.append(path)
    return written
