"""Dagster pipelines: definitions load, the daily job materializes in-process, sensors decide."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from pipeline_support import (
    DRIFT_COLUMNS,
    RUN_DAY,
    SCORING_KEYS,
    make_world,
    pipeline_settings,
)
from vigil.config import Settings
from vigil.features.definitions import feature_names
from vigil.features.offline import compute_features_frame
from vigil.monitoring import marts
from vigil.pipelines import etl, monitoring, scoring
from vigil.pipelines.definitions import DAILY_JOB, RETRAIN_JOB, build_definitions
from vigil.pipelines.resources import build_resources
from vigil.pipelines.sensors import new_raw_days, retrain_request
from vigil.pipelines.steps import build_feature_mart, horizon


@pytest.fixture
def world(tmp_path: Path) -> tuple[Settings, pd.DataFrame]:
    settings = pipeline_settings(tmp_path)
    return settings, make_world(settings)


def test_defs_can_load(tmp_path: Path) -> None:
    defs = build_definitions(pipeline_settings(tmp_path))
    dg.Definitions.validate_loadable(defs)
    assert {DAILY_JOB, RETRAIN_JOB} <= {job.name for job in defs.resolve_all_job_defs()}
    assert {s.name for s in defs.sensors} == {"raw_partition_sensor", "drift_retrain_sensor"}
    assert [s.name for s in defs.schedules] == [
        "daily_schedule",
        "storage_maintenance_schedule",
    ]


def test_feature_mart_equals_features_over_the_whole_history(tmp_path: Path) -> None:
    # 60 days: the mart of the last day reads only days 9-59 (horizon 14 + look-back 37).
    settings = pipeline_settings(tmp_path, n_days=60)
    transactions = make_world(settings)
    last_day = date(2018, 5, 30)
    summary = build_feature_mart(settings, last_day)
    assert summary.days == tuple(horizon(settings, last_day))
    full = compute_features_frame(settings.features, transactions)
    columns = ["transaction_id", *feature_names(settings.features)]
    for day in (summary.days[0], last_day):
        mart = pd.read_parquet(marts.day_partition(settings.monitoring.marts_dir, "features", day))
        expected = full[full["tx_datetime"].dt.date == day].sort_values(
            ["tx_datetime", "transaction_id"]
        )
        pd.testing.assert_frame_equal(
            mart[columns].reset_index(drop=True), expected[columns].reset_index(drop=True)
        )


def test_daily_assets_materialize_in_process(world: tuple[Settings, pd.DataFrame]) -> None:
    settings, transactions = world
    result = dg.materialize(
        [etl.raw_transactions, etl.feature_mart, scoring.batch_scores, monitoring.feature_drift],
        resources=build_resources(settings),
        partition_key=RUN_DAY.isoformat(),
    )
    assert result.success
    marts_dir = settings.monitoring.marts_dir
    day_rows = transactions[transactions["tx_datetime"].dt.date == RUN_DAY]
    scores = pd.read_parquet(marts.day_partition(marts_dir, "scores", RUN_DAY))
    assert sorted(scores["transaction_id"]) == sorted(day_rows["transaction_id"])
    drift = json.loads(marts.latest_path(marts_dir, "drift").read_text())
    assert drift["day"] == RUN_DAY.isoformat()
    by_column = {c["column"]: c for c in drift["columns"]}
    assert list(by_column) == list(DRIFT_COLUMNS)
    assert by_column["tx_amount"]["drifted"]  # amounts doubled from day 14
    assert not by_column["tx_during_night"]["drifted"]
    assert drift["dataset_drift"]  # 1 of 2 columns reaches drift_share 0.5
    assert marts.document_path(marts_dir, "drift", RUN_DAY, ".html").is_file()
    events = result.asset_materializations_for_node("feature_drift")
    assert events[0].metadata["dataset_drift"].value is True


def test_first_days_without_a_reference_window_skip_drift_and_succeed(
    world: tuple[Settings, pd.DataFrame],
) -> None:
    settings, _ = world
    first_week = "2018-04-05"  # reference window March 23-29: before the data starts
    result = dg.materialize(
        [etl.raw_transactions, etl.feature_mart, scoring.batch_scores, monitoring.feature_drift],
        resources=build_resources(settings),
        partition_key=first_week,
    )
    assert result.success
    assert result.asset_materializations_for_node("feature_drift") == []
    assert not marts.latest_path(settings.monitoring.marts_dir, "drift").exists()


@pytest.mark.slow
def test_daily_job_compares_every_feature_and_the_score_once_all_days_are_scored(
    tmp_path: Path,
) -> None:
    settings = pipeline_settings(tmp_path, drift_columns=())
    make_world(settings)
    job = build_definitions(settings).resolve_job_def(DAILY_JOB)
    for day in horizon(settings, RUN_DAY):  # every day of both windows scored, as daily runs do
        run = job.execute_in_process(partition_key=day.isoformat(), asset_selection=SCORING_KEYS)
        assert run.success
    assert job.execute_in_process(partition_key=RUN_DAY.isoformat()).success
    drift = json.loads(marts.latest_path(settings.monitoring.marts_dir, "drift").read_text())
    assert [c["column"] for c in drift["columns"]] == [*feature_names(settings.features), "score"]
    drifted = {c["column"] for c in drift["columns"] if c["drifted"]}
    assert {"tx_amount", "score"} <= drifted  # this model's score follows the amount


def test_performance_asset_writes_the_mart_on_an_empty_database(
    world: tuple[Settings, pd.DataFrame],
) -> None:
    settings, _ = world
    result = dg.materialize(
        [monitoring.delayed_label_performance],
        resources=build_resources(settings),
        partition_key=RUN_DAY.isoformat(),
    )
    assert result.success
    document = json.loads(
        marts.latest_path(settings.monitoring.marts_dir, "performance").read_text()
    )
    assert document["n_labelled"] == 0 and document["average_precision"] is None
    assert document["totals"]["prevented_loss"] == 0.0


def test_raw_partition_discovery_is_ordered_and_after_the_cursor(tmp_path: Path) -> None:
    for day in ("2018-04-03", "2018-04-01", "2018-04-02"):
        (tmp_path / f"tx_date={day}").mkdir()
    (tmp_path / "not-a-partition").mkdir()
    assert new_raw_days(tmp_path, None) == ["2018-04-01", "2018-04-02", "2018-04-03"]
    assert new_raw_days(tmp_path, "2018-04-01") == ["2018-04-02", "2018-04-03"]
    assert new_raw_days(tmp_path, None, limit=1) == ["2018-04-01"]
    assert new_raw_days(tmp_path / "absent", None) == []


def test_raw_partition_sensor_requests_each_new_day_once(tmp_path: Path) -> None:
    settings = pipeline_settings(tmp_path)
    for day in ("2018-04-01", "2018-04-02"):
        (settings.data.raw_dir / f"tx_date={day}").mkdir(parents=True)
    sensor = build_definitions(settings).resolve_sensor_def("raw_partition_sensor")
    resources = build_resources(settings)
    with dg.build_sensor_context(resources=resources) as context:
        first = sensor(context)
    assert isinstance(first, dg.SensorResult)
    assert [r.partition_key for r in first.run_requests or []] == ["2018-04-01", "2018-04-02"]
    assert first.cursor == "2018-04-02"
    with dg.build_sensor_context(cursor=first.cursor, resources=resources) as context:
        again = sensor(context)
    assert isinstance(again, dg.SensorResult) and not again.run_requests


@pytest.mark.parametrize(
    ("drifted", "enabled", "requested"),
    [(True, True, True), (False, True, False), (True, False, False)],
)
def test_drift_requests_a_retrain_up_to_the_drifted_day(
    drifted: bool, enabled: bool, requested: bool
) -> None:
    decision = retrain_request("2018-04-21", drifted, enabled)
    assert isinstance(decision, dg.RunRequest) == requested
    if isinstance(decision, dg.RunRequest):
        assert decision.run_key == "drift-2018-04-21"
        assert decision.run_config["ops"]["challenger_model"]["config"]["as_of"] == "2018-04-21"
