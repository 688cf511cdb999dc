"""The stress campaign's miniature (issue 15): the same script as ``make stress``, small.

API and worker in 1 CPU / 2 GB cgroups, private PostgreSQL and Redis, the machine's RabbitMQ
through a fault proxy; a few seconds of Locust, a 10x surge and every fault, then the report.
Needs root (cgroups, ``runuser postgres``), PostgreSQL's server binaries, ``redis-server``
and RabbitMQ on 5672; in CI each is required, locally a missing one skips.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import IN_CI, require_service
from onnx_factory import logistic_model, make_metadata, save
from vigil.config import FeaturesConfig
from vigil.features import feature_names
from vigil.stress import analysis
from vigil.stress.campaign import MINI, Campaign
from vigil.stress.cgroup import CgroupUnavailable, LimitedGroup, Limits
from vigil.stress.report import write_report

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _require_tools() -> None:
    problems = [tool for tool in ("redis-server", "runuser") if shutil.which(tool) is None]
    if os.geteuid() != 0:
        problems.append("root")
    try:
        with LimitedGroup("probe", Limits(64 * 2**20, 1.0)):
            pass
    except CgroupUnavailable:
        problems.append("cgroup v1")
    if problems:
        message = f"the stress campaign needs {', '.join(problems)}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    require_service("RabbitMQ", "127.0.0.1", 5672)


def test_the_miniature_campaign_loses_nothing_and_writes_the_report(tmp_path: Path) -> None:
    _require_tools()
    names = feature_names(FeaturesConfig())
    weights = [0.02 if name == "tx_amount" else 0.0 for name in names]
    model = save(
        logistic_model(weights, -3.0, make_metadata(names, threshold=0.5)), tmp_path / "m.onnx"
    )
    rules = ROOT / "deploy" / "prometheus" / "rules"
    results = Campaign(MINI, tmp_path / "work", model, ROOT / "locustfile.py", rules).run()
    report = write_report(results, tmp_path / "docs" / "STRESS_REPORT.md")

    campaign = analysis.Campaign.load(results)
    lost = analysis.losses(campaign)
    assert lost["api_acknowledged"] > 0 and lost["api_lost"] == 0
    assert lost["stream_published"] > 0 and lost["stream_lost"] == 0
    faults = {f["name"]: f["detail"] for f in campaign.faults}
    assert list(faults) == [
        "postgres_stop", "redis_kill", "broker_cut", "store_latency", "connections_dropped",
        "worker_oom",
    ]  # fmt: skip
    assert faults["worker_oom"]["oom_kills"] >= 1
    assert campaign.results["restarts"]["worker"], "the supervisor restarted the worker"
    assert faults["redis_kill"]["rewarm_s"] > 0
    windows = analysis.alert_windows(campaign)
    if shutil.which("prometheus") is not None or IN_CI:  # scripts/test_tools.sh installs it
        assert windows is not None
        assert [w["window"] for w in windows] == ["surge", *faults]
        assert all(w["polls"] > 0 for w in windows)  # the rules were evaluated all along
    text = report.read_text()
    headings = ("Course SLO with Locust", "Surge", "Faults under load", "Alerts", "Accuracy")
    headings += ("CPU and throttling by phase", "Seconds that missed the SLO")
    for heading in headings:
        assert heading in text
    assert "(Not sampled in this run" not in text  # the cgroups' throttling was sampled
    assert (report.parent / "images" / "stress-timeline.png").stat().st_size > 10_000
    json.loads(results.read_text())  # the raw results stay machine-readable
