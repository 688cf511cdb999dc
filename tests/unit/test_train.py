"""One training run end to end on a tiny simulated world: artifacts, determinism, entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import yaml
from typer.testing import CliRunner

from training_support import TINY_WORLD, tiny_world
from vigil.cli import app
from vigil.config import Settings, build_settings, settings_to_dict
from vigil.data.simulate import simulate_transactions
from vigil.inference.metadata import ModelMetadata
from vigil.inference.roles import CHALLENGER
from vigil.inference.scorer import OnnxScorer
from vigil.models.export_hf import load_hf
from vigil.models.kinds import predict_scores
from vigil.retraining.runner import TrainOutcome
from vigil.storage import REGISTRY_VERSION
from vigil.tracking.model_registry import ModelRegistry
from vigil.train import main
from vigil.training.data import FeatureTable, feature_matrix, load_feature_table
from vigil.training.experiments import aggregate, format_table, read_run_metrics
from vigil.training.run import fit_model, run_training
from vigil.training.splits import handbook_split
from vigil.training.tracking import TrackingError, log_run
from vigil.training.trainer import Dataset, EpochRecord


def _settings(root: Path, **sections: dict[str, object]) -> Settings:
    tree = tiny_world()
    tree["data"]["raw_dir"] = str(root / "raw.parquet")
    tree["train"]["runs_dir"] = str(root / "runs")
    tree["tracking"] = {"mlflow_uri": f"file:{root / 'mlruns'}"}
    tree["inference"] = {"model_path": str(root / "serving" / "model.onnx")}
    for section, values in sections.items():
        tree.setdefault(section, {}).update(values)
    return build_settings(tree)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, FeatureTable]:
    root = tmp_path_factory.mktemp("world")
    settings = _settings(root)
    simulate_transactions(settings.data).to_parquet(settings.data.raw_dir)
    return root, load_feature_table(settings)


def test_run_writes_every_artifact_and_promotes(world: tuple[Path, FeatureTable]) -> None:
    root, table = world
    settings = _settings(root)
    result = run_training(settings, table, promote=True)
    run = result.run_dir
    assert run.parent == settings.train.runs_dir and run.name.startswith("vigil-")
    for name in ("metrics.json", "config.yaml", "model.onnx", "model.mar", "hf/config.json"):
        assert (run / name).is_file(), name
    plots = {p.name for p in (run / "plots").iterdir()}
    assert plots == {
        "roc.png",
        "precision_recall.png",
        "score_histogram.png",
        "training_curves.png",
    }
    assert any((run / "tensorboard").iterdir())
    summary = json.loads((run / "metrics.json").read_text())
    for key in ("auc_roc", "average_precision", "card_precision_at_k", "precision", "recall"):
        assert 0.0 <= summary["test"][key] <= 1.0
    assert summary["test"]["threshold"] == summary["threshold"]
    assert summary["validation"]["n_transactions"] > 0 and summary["train_seconds"] > 0
    assert len(summary["history"]) == summary["epochs_run"] <= 3
    # The promoted model is the run's model, with the contract's metadata.
    props = {p.key: p.value for p in onnx.load(str(settings.inference.model_path)).metadata_props}
    metadata = ModelMetadata.from_props(props)
    assert metadata.model_version == run.name and metadata.threshold == summary["threshold"]
    assert metadata.metrics["average_precision"] == summary["test"]["average_precision"]
    # The reason codes' baseline: the median of the genuine fitting rows (a typical payment).
    fitting = handbook_split(table.frame, settings.train).train
    genuine = feature_matrix(fitting[fitting["tx_fraud"] == 0], settings)
    assert metadata.reason_baseline is not None
    np.testing.assert_allclose(metadata.reason_baseline, np.median(genuine, axis=0), rtol=1e-6)
    # ONNX on real test rows agrees with the restored Hugging Face model.
    test_rows = feature_matrix(handbook_split(table.frame, settings.train).test, settings)
    onnx_scores = OnnxScorer.load(run / "model.onnx").score(test_rows)
    hf_scores = load_hf(run / "hf").predict_proba(test_rows)
    np.testing.assert_allclose(onnx_scores, hf_scores, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["mlp", "lightgbm"])
def test_same_config_and_data_give_the_same_model(
    world: tuple[Path, FeatureTable], kind: str, tmp_path: Path
) -> None:
    root, table = world
    settings = _settings(root, model={"kind": kind})
    split = handbook_split(table.frame, settings.train)
    train, validation = (
        Dataset(feature_matrix(f, settings), f["tx_fraud"].to_numpy(np.int8))
        for f in (split.train, split.validation)
    )
    rows = feature_matrix(split.test, settings)
    (first, history_1), (second, history_2) = (
        fit_model(settings, train, validation, tmp_path / str(i)) for i in range(2)
    )
    assert history_1 == history_2
    assert np.array_equal(predict_scores(first, rows), predict_scores(second, rows))
    if kind == "mlp":
        assert torch.get_num_threads() == settings.train.torch_threads == 1


@pytest.mark.parametrize("kind", ["logistic", "lightgbm"])
def test_baselines_go_through_the_same_entry_point(
    world: tuple[Path, FeatureTable], kind: str
) -> None:
    root, table = world
    settings = _settings(root / kind, model={"kind": kind}, train={"experiment_name": kind})
    run = run_training(settings, table).run_dir
    scorer = OnnxScorer.load(run / "model.onnx")
    assert scorer.metadata.model_kind == kind and (run / "model.mar").is_file()
    rows = read_run_metrics(settings.train.runs_dir)
    assert "| " + kind + " | " + kind + " | 1 |" in format_table(aggregate(rows))


def test_the_retrain_job_trains_registers_and_writes_its_outcome(
    world: tuple[Path, FeatureTable], tmp_path: Path
) -> None:
    """``vigil train --challenger``: what PUT /retrain's child runs (and Dagster in-process)."""
    root, _ = world
    settings = _settings(
        root,
        train={"runs_dir": str(tmp_path / "runs")},
        inference={"model_path": str(tmp_path / "serving" / "model.onnx")},
        tracking={"mlflow_uri": f"file:{tmp_path / 'mlruns'}"},
    )
    config = tmp_path / "vigil.yaml"
    config.write_text(yaml.safe_dump(settings_to_dict(settings)))
    out = tmp_path / "outcome.json"
    result = CliRunner().invoke(app, ["train", "-c", str(config), "--challenger", str(out)])
    assert result.exit_code == 0, result.output
    outcome = TrainOutcome.read_json(out)
    assert outcome.model_path.parent.parent == settings.train.runs_dir
    summary = json.loads((outcome.model_path.parent / "metrics.json").read_text())
    assert outcome.metrics["test.average_precision"] == summary["test"]["average_precision"]
    assert outcome.metrics["threshold"] == summary["threshold"]
    registry = ModelRegistry(settings.tracking)
    version = registry.by_alias(CHALLENGER)
    assert version is not None and outcome.metrics[REGISTRY_VERSION] == version.version
    assert version.run_id == outcome.mlflow_run_id
    assert not settings.inference.model_path.exists()  # the job never promotes


def test_the_retrain_job_refuses_promote_and_data(tmp_path: Path) -> None:
    out = tmp_path / "outcome.json"
    result = CliRunner().invoke(app, ["train", "--challenger", str(out), "--promote"])
    assert result.exit_code != 0 and "never promotes" in result.output
    assert not out.exists()


def test_logging_a_run_uses_an_explicit_client_and_leaves_the_environment_alone(
    tmp_path: Path,
) -> None:
    from mlflow import MlflowClient

    settings = _settings(tmp_path)
    run_dir = tmp_path / "vigil-run-9"
    run_dir.mkdir()
    (run_dir / "metrics.json").write_text("{}")
    history = [EpochRecord(1, 0.5, 0.4, 0.3), EpochRecord(2, 0.3, 0.35, 0.4)]
    before = dict(os.environ)
    run_id = log_run(settings, run_dir, {"test_auc_roc": 0.9}, history, {"vigil_run_id": "r9"})
    assert dict(os.environ) == before  # no MLFLOW_TRACKING_URI, nothing else either
    run = MlflowClient(tracking_uri=settings.tracking.mlflow_uri).get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "vigil-run-9"
    assert run.data.metrics["test_auc_roc"] == 0.9
    assert run.data.metrics["validation_average_precision"] == 0.4  # the last epoch's
    assert run.data.params["train.epochs"] == "3" and run.data.tags["vigil_run_id"] == "r9"
    assert [a.path for a in MlflowClient(settings.tracking.mlflow_uri).list_artifacts(run_id)] == [
        "metrics.json"
    ]


def test_unreachable_tracking_server_fails_before_training(
    world: tuple[Path, FeatureTable],
) -> None:
    root, table = world
    settings = _settings(root / "offline", tracking={"mlflow_uri": "http://127.0.0.1:9"})
    with pytest.raises(TrackingError, match="not reachable"):
        run_training(settings, table)
    assert not settings.train.runs_dir.exists()


@pytest.mark.slow  # a fresh interpreter importing torch; the in-process run above is the fast twin
def test_python_m_vigil_train_smoke(world: tuple[Path, FeatureTable]) -> None:
    root, _ = world
    settings = _settings(root)
    config = root / "tiny.yaml"
    config.write_text(json.dumps(TINY_WORLD))
    command = [
        sys.executable, "-m", "vigil.train", "--config", str(config),
        "--data", str(settings.data.raw_dir),
        "--set", f"train.runs_dir={root / 'smoke'}",
        "--set", f"tracking.mlflow_uri=file:{root / 'mlruns'}",
        "--set", "train.epochs=1",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    (run,) = (root / "smoke").iterdir()
    assert json.loads((run / "metrics.json").read_text())["epochs_run"] == 1


def test_entry_point_rejects_a_bad_setting(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--set", "train.lr=-1"])
    assert exit_info.value.code == 2 and "train.lr" in capsys.readouterr().err


def test_run_logs_its_datasets_and_a_model_that_mlflow_scores_like_vigil_predict(
    world: tuple[Path, FeatureTable],
) -> None:
    import mlflow
    import pandas as pd
    from typer.testing import CliRunner

    from vigil.cli import app
    from vigil.tracking.lineage import TAG_DATASET_VERSION
    from vigil.tracking.registration import register_run

    root, table = world
    folder = root / "registry"
    settings = _settings(
        root,
        train={"runs_dir": str(folder / "runs")},
        tracking={"mlflow_uri": f"file:{folder / 'mlruns'}", "registered_model": "vigil-test"},
    )
    run = run_training(settings, table).run_dir
    registration = register_run(settings, run)  # the first version is also champion
    client = mlflow.MlflowClient(settings.tracking.mlflow_uri)
    # The world is a plain Parquet file (no recorded world): named by the bytes trained on.
    named = f"external-{table.source_sha256[:12]}"
    assert registration.tags[TAG_DATASET_VERSION] == named
    assert json.loads((run / "metrics.json").read_text())["dataset"]["version"] == named
    assert client.get_run(registration.run_id).data.tags[TAG_DATASET_VERSION] == named
    inputs = client.get_run(registration.run_id).inputs.dataset_inputs
    contexts = {i.tags[0].value: i.dataset for i in inputs}
    assert set(contexts) == {"training", "validation", "testing"}
    assert all(d.digest and d.source_type == "local" for d in contexts.values())
    assert len({d.digest for d in contexts.values()}) == 3  # three different frames

    test = handbook_split(table.frame, settings.train).test.head(50)
    rows = folder / "rows.csv"
    names = OnnxScorer.load(run / "model.onnx").metadata.feature_names
    test[["transaction_id", *names]].to_csv(rows, index=False)
    out = folder / "scores.csv"
    args = ["predict", "-i", str(rows), "-o", str(out), "--features-precomputed"]
    result = CliRunner().invoke(app, [*args, "--model", str(run / "model.onnx")])
    assert result.exit_code == 0, result.output

    mlflow.set_tracking_uri(settings.tracking.mlflow_uri)
    model = mlflow.pyfunc.load_model("models:/vigil-test@champion")
    scored = model.predict(pd.read_csv(rows)[names])
    expected = pd.read_csv(out)["score"].to_numpy()
    np.testing.assert_allclose(scored["score"].to_numpy(), expected, atol=1e-6, rtol=0)


SECRETS = {
    "serving": {"api_key": "s3cr3t-api-key"},
    "storage": {"database_url": "postgresql+psycopg://vigil:db-pass-123@db:5432/vigil"},
    "broker": {"url": "amqp://vigil:mq-pass-456@rabbitmq:5672/"},
}


def test_secrets_reach_neither_mlflow_nor_the_run_config(
    world: tuple[Path, FeatureTable],
) -> None:
    root, table = world
    settings = _settings(root, model={"kind": "logistic"}, **SECRETS)
    run = run_training(settings, table, promote=False).run_dir
    config = run / "config.yaml"
    assert config.stat().st_mode & 0o777 == 0o600
    written = [p for p in [*run.rglob("*"), *(root / "mlruns").rglob("*")] if p.is_file()]
    for path in written:
        text = path.read_bytes()
        for secret in (b"s3cr3t-api-key", b"db-pass-123", b"mq-pass-456"):
            assert secret not in text, f"{secret!r} leaked into {path}"
    params = root / "mlruns"
    assert any(p.name == "storage.database_url" for p in params.rglob("*"))  # logged, masked


def test_simulated_verdicts_feed_the_verdict_features_of_a_run(
    world: tuple[Path, FeatureTable],
) -> None:
    from vigil.features.definitions import verdict_feature_names
    from vigil.feedback.past_reviews import with_simulated_verdicts
    from vigil.training.run import train

    root, table = world
    settings = _settings(
        root, features={"verdicts": True}, model={"kind": "lightgbm"}, cases={"review_budget": 5}
    )
    names = verdict_feature_names(settings.features)
    with_log = with_simulated_verdicts(settings, table)
    assert list(with_log.frame.columns[-len(names) :]) == names
    assert len(with_log.frame) == len(table.frame)
    reviewed = with_log.frame["customer_id_verdict_nb_reviewed_28day_window"]
    assert 0 < (reviewed > 0).mean() < 1  # the investigator reviewed some cards, not every card

    run_dir = train(settings, simulated_verdicts=True)
    props = {p.key: p.value for p in onnx.load(str(run_dir / "model.onnx")).metadata_props}
    assert ModelMetadata.from_props(props).feature_names[-len(names) :] == names


@pytest.mark.parametrize(
    ("sections", "error"),
    [
        ({}, "set features.verdicts=true"),
        ({"features": {"verdicts": True}, "drop": True}, "for simulated data only"),
    ],
)
def test_simulated_verdicts_need_the_verdict_features_and_simulated_data(
    world: tuple[Path, FeatureTable], sections: dict[str, object], error: str
) -> None:
    from vigil.feedback.past_reviews import with_simulated_verdicts

    root, table = world
    drop = bool(sections.pop("drop", False))
    settings = _settings(root, **sections)  # type: ignore[arg-type]
    if drop:
        table = FeatureTable(table.frame.drop(columns=["tx_fraud_scenario"]), table.source, "")
    with pytest.raises(ValueError, match=error):
        with_simulated_verdicts(settings, table)


def test_the_retrain_job_refuses_simulated_verdicts(tmp_path: Path) -> None:
    out = tmp_path / "outcome.json"
    arguments = ["train", "--challenger", str(out), "--simulated-verdicts"]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code != 0 and "without simulated verdicts" in result.output
