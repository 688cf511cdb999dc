"""Dashboards as code: committed JSON is fresh, layout is sane, every query names real metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from vigil.cli import app
from vigil.monitoring import create_metrics
from vigil.monitoring.dashboards import DATASOURCE, GRID_WIDTH, dashboards

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = ROOT / "deploy" / "grafana" / "dashboards"
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
METRIC_NAME = re.compile(r"\bvigil_[a-z0-9_]+")


def exposed_series_names() -> set[str]:
    """Every sample name VigilMetrics can expose (``_total``, ``_bucket``, ``_sum``, ...)."""
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
    names = set()
    # Labelled metrics without children still expose their HELP and TYPE lines.
    for family in text_string_to_metric_families(create_metrics().exposition().decode()):
        names |= {family.name + s for s in suffixes.get(family.type, [""])}
    return names


def panels(model: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in model["panels"] if p["type"] != "row"]


def test_committed_dashboards_are_what_the_code_generates() -> None:
    on_disk = {p.name: json.loads(p.read_text()) for p in DASHBOARD_DIR.glob("*.json")}
    assert on_disk == dashboards(), "run `vigil dashboards` and commit the result"


def test_every_query_uses_metrics_that_vigil_exposes() -> None:
    known = exposed_series_names()
    used = {
        name
        for model in dashboards().values()
        for panel in panels(model)
        for target in panel["targets"]
        for name in METRIC_NAME.findall(target["expr"])
    }
    assert used, "dashboards hold no vigil_ queries"
    assert used <= known, f"unknown metrics: {sorted(used - known)}"


def test_panels_fit_the_grid_without_overlapping() -> None:
    for name, model in dashboards().items():
        cells: set[tuple[int, int]] = set()
        ids = [p["id"] for p in model["panels"]]
        assert len(ids) == len(set(ids)), name
        for panel in model["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] + pos["w"] <= GRID_WIDTH, (name, panel["title"])
            area = {
                (x, y)
                for x in range(pos["x"], pos["x"] + pos["w"])
                for y in range(pos["y"], pos["y"] + pos["h"])
            }
            assert not cells & area, (name, panel["title"])
            cells |= area


def test_the_three_dashboards_cover_service_model_and_business() -> None:
    titles = {model["uid"]: {p["title"] for p in panels(model)} for model in dashboards().values()}
    assert {"Requests per second by route", "Error rate", "Writer queue depth"} <= titles[
        "vigil-service"
    ]
    assert {"Score distribution (champion)", "Serving models", "Feature drift (PSI)"} <= titles[
        "vigil-model"
    ]
    assert {"Flagged amount (dashboard range)", "False alarms per day"} <= titles["vigil-business"]


def test_template_variables_are_defined_where_used_and_default_to_all() -> None:
    used_anywhere = set()
    for name, model in dashboards().items():
        defined = {v["name"]: v for v in model["templating"]["list"]}
        used = {
            variable
            for panel in panels(model)
            for target in panel["targets"]
            for variable in re.findall(r"\$([a-z_]+)", target["expr"])
            if not variable.startswith("__")
        }
        assert used == set(defined), name  # none missing, none unused
        for variable in defined.values():
            assert variable["includeAll"] and variable["allValue"] == ".*"
            assert variable["query"]["query"].startswith("label_values(vigil_")
        used_anywhere |= used
    assert used_anywhere == {"route", "model_version"}


def test_decisions_per_class_and_a_business_row_on_the_model_dashboard() -> None:
    model = dashboards()["vigil-model.json"]
    rows = [p["title"] for p in model["panels"] if p["type"] == "row"]
    assert rows == ["Scores", "Drift", "Business"]
    (decisions,) = [p for p in panels(model) if p["title"] == "Decisions per second by class"]
    assert decisions["targets"][0]["expr"].startswith("sum by (label) (rate(vigil_decisions_total")


def test_provisioning_points_at_the_dashboards_datasource() -> None:
    sources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    assert [s["uid"] for s in sources["datasources"]] == [DATASOURCE["uid"]]
    for model in dashboards().values():
        for panel in panels(model):
            assert panel["datasource"] == DATASOURCE
            assert all(t["datasource"] == DATASOURCE for t in panel["targets"])


def test_cli_writes_the_dashboards(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["dashboards", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(dashboards())
    assert json.loads((tmp_path / "vigil-model.json").read_text())["uid"] == "vigil-model"
