"""One training run: split, fit, choose the threshold, evaluate, export, track.

Everything a run produces lands in one directory ``runs/<experiment>-<timestamp>-<id>/``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import pandas as pd

from vigil import fraud_metrics as metrics
from vigil.config import Settings
from vigil.data.schema import CUSTOMER_ID, TX_DATETIME, TX_FRAUD
from vigil.features.definitions import feature_names, log_scaled_feature_indices
from vigil.inference.metadata import ModelMetadata
from vigil.models.baselines import fit_lightgbm, fit_lightgbm_stream, fit_logistic
from vigil.models.kinds import Ensemble, FraudModel, SingleModel, model_kind, predict_scores
from vigil.models.mlp import FraudMLP
from vigil.tracking.lineage import TAG_DATASET_VERSION, dataset_version
from vigil.training import artifacts
from vigil.training.data import FeatureTable, feature_matrix, load_feature_table
from vigil.training.provenance import dataset_hash, git_commit
from vigil.training.splits import Periods, handbook_split
from vigil.training.stream import ParquetRows
from vigil.training.stream_eval import Scored, ScoredTest, epoch_days, score_test_stream
from vigil.training.tracking import RunDataset, check_reachable, log_run
from vigil.training.trainer import (
    Dataset,
    EpochRecord,
    TrainingRows,
    epoch_order,
    feature_means,
    reason_baseline,
    train_mlp,
)
from vigil.training.verdict_labels import delay_period_rows, with_verdict_labels

logger = logging.getLogger(__name__)

# Headline figures copied into the ONNX metadata and MLflow.
HEADLINE = ("auc_roc", "average_precision", "card_precision_at_k", "precision", "recall")


@dataclass(frozen=True)
class RunResult:
    """Where a run's artifacts are and what it measured (the ``metrics.json`` content)."""

    run_dir: Path
    metrics: dict[str, Any]


def new_run_dir(settings: Settings) -> Path:
    """A fresh ``<runs_dir>/<experiment>-<YYYYmmdd-HHMMSS>-<6 hex>`` directory."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    name = f"{settings.train.experiment_name}-{stamp}-{uuid.uuid4().hex[:6]}"
    path = settings.train.runs_dir / name
    path.mkdir(parents=True)
    return path


def _dataset(frame: pd.DataFrame, settings: Settings) -> Dataset:
    return Dataset(feature_matrix(frame, settings), frame[TX_FRAUD].to_numpy(dtype=np.int8))


@dataclass(frozen=True)
class WarmStart:
    """Adapt ``champion`` (the serving model ``version``) instead of fitting from scratch.

    The run fits on the last ``days`` days of its fitting period only; the MLP continues
    from the champion's weights and scaler, LightGBM adds trees to the champion's.
    """

    champion: SingleModel
    version: str
    days: int


def fit_model(
    settings: Settings,
    train: TrainingRows,
    validation: Dataset,
    run_dir: Path,
    initial: SingleModel | None = None,
) -> tuple[FraudModel, list[EpochRecord]]:
    """Fit the configured ``model.kind`` (``initial``: warm start from that model's kind).

    Only a single MLP has an epoch history.
    """
    if initial is not None:
        kind = model_kind(initial)
        return _fit_single(kind, settings, train, validation, run_dir, initial)
    if settings.model.kind == "ensemble":
        return fit_ensemble(settings, train, validation, run_dir), []
    return _fit_single(settings.model.kind, settings, train, validation, run_dir)


def fit_ensemble(
    settings: Settings, train: TrainingRows, validation: Dataset, run_dir: Path
) -> Ensemble:
    """One MLP per ``model.ensemble_mlp_seeds`` and, with ``ensemble_lightgbm``, a LightGBM.

    Member seeds are ``train.seed + offset`` so that a multi-seed evaluation varies them.
    """
    members: list[SingleModel] = []
    for offset in settings.model.ensemble_mlp_seeds:
        seed = settings.train.seed + offset
        seeded = settings.model_copy(
            update={"train": settings.train.model_copy(update={"seed": seed})}
        )
        mlp, _ = _fit_single("mlp", seeded, train, validation, run_dir / f"mlp-seed{seed}")
        members.append(mlp)
    if settings.model.ensemble_lightgbm:
        members.append(_fit_single("lightgbm", settings, train, validation, run_dir)[0])
    return Ensemble(members=tuple(members))


def _fit_single(
    kind: str,
    settings: Settings,
    train: TrainingRows,
    validation: Dataset,
    run_dir: Path,
    initial: SingleModel | None = None,
) -> tuple[SingleModel, list[EpochRecord]]:
    config = settings.train
    if kind == "mlp":
        start = initial if isinstance(initial, FraudMLP) else None
        return train_mlp(
            train,
            validation,
            settings.model,
            config,
            run_dir / "tensorboard",
            initial=start,
            log_features=log_scaled_feature_indices(settings.features),
        )
    balanced = config.class_weighting == "balanced"
    if isinstance(train, ParquetRows):
        if kind != "lightgbm" or config.class_weighting == "undersample":
            raise ValueError(
                f"streamed training fits mlp and lightgbm with class_weighting none or "
                f"balanced, not {kind} with {config.class_weighting}"
            )
        validation_pair = (validation.features, validation.labels)
        booster = fit_lightgbm_stream(train, validation_pair, settings.model, balanced, config.seed)
        return booster, []
    if config.class_weighting == "undersample":
        rows = epoch_order(train.labels, True, np.random.default_rng(config.seed))
        train = Dataset(train.features[rows], train.labels[rows])
    if kind == "logistic":
        model = fit_logistic(train.features, train.labels, settings.model, balanced, config.seed)
        return model, []
    validation_pair = (validation.features, validation.labels)
    init = initial if isinstance(initial, lightgbm.LGBMClassifier | lightgbm.Booster) else None
    model = fit_lightgbm(
        train.features,
        train.labels,
        validation_pair,
        settings.model,
        balanced,
        config.seed,
        init_model=init,
    )
    return model, []


def _score(model: FraudModel, frame: pd.DataFrame, settings: Settings) -> Scored:
    data = _dataset(frame, settings)
    days = epoch_days(frame[TX_DATETIME].to_numpy())
    cards = frame[CUSTOMER_ID].to_numpy()
    return Scored(data.labels, predict_scores(model, data.features), days, cards)


def _evaluate(scored: Scored, threshold: float, settings: Settings) -> dict[str, float]:
    config = settings.train
    return metrics.evaluate_scores(
        scored.days,
        scored.cards,
        scored.labels,
        scored.scores,
        threshold,
        config.cost_missed_fraud,
        config.cost_false_alarm,
        config.top_k_cards,
    )


def _metadata(
    settings: Settings, run_dir: Path, train: TrainingRows, summary: dict[str, Any]
) -> ModelMetadata:
    headline = {name: summary["test"][name] for name in HEADLINE}
    headline["expected_cost_per_transaction"] = summary["test"]["expected_cost_per_transaction"]
    headline["validation_average_precision"] = summary["validation"]["average_precision"]
    baseline = reason_baseline(train)
    return ModelMetadata(
        model_version=run_dir.name,
        model_kind=summary["model_kind"],
        experiment_name=settings.train.experiment_name,
        git_commit=summary["git_commit"],
        saved_at=datetime.now(UTC),
        feature_names=feature_names(settings.features),
        feature_means=[float(m) for m in feature_means(train)],
        reason_baseline=None if baseline is None else [float(m) for m in baseline],
        threshold=summary["threshold"],
        metrics=headline,
    )


def run_training(
    settings: Settings,
    table: FeatureTable,
    promote: bool = False,
    warm_start: WarmStart | None = None,
    verdicts: pd.DataFrame | None = None,
) -> RunResult:
    """Train, evaluate and export one model on a feature table; returns its run directory.

    ``verdicts``: a verdict log; the delay period's transactions reviewed before the test
    period are fitted on too, labelled by their verdicts (:mod:`vigil.training.verdict_labels`).
    """
    check_reachable(settings.tracking.mlflow_uri)
    split = handbook_split(table.frame, settings.train)
    fitting = split.train
    if warm_start is not None:
        since = pd.Timestamp(split.periods.validation_start - timedelta(days=warm_start.days))
        fitting = fitting[fitting[TX_DATETIME] >= since]
    delayed_rows = len(fitting)
    if verdicts is not None:
        delay_rows = delay_period_rows(table.frame, split.periods)
        fitting = with_verdict_labels(fitting, delay_rows, verdicts, split.periods)

    def score_test(model: FraudModel) -> ScoredTest:
        return ScoredTest(_score(model, split.test, settings), split.test)

    frames = EvaluationFrames(split.validation, score_test, fitting, len(fitting) - delayed_rows)
    train = _dataset(fitting, settings)
    return _fit_and_record(
        settings, train, frames, table.source, table.source_sha256, promote, warm_start
    )


def run_streamed_training(settings: Settings, features: Path, promote: bool = False) -> RunResult:
    """:func:`run_training` on a feature Parquet, the training rows streamed (issue 15 item 3).

    The fitting days are read one row group at a time (:class:`ParquetRows`); the validation
    days are loaded before the fit; the test set (the same rows as the in-memory split's) is
    scored one row group at a time after it (:func:`score_test_stream`).
    """
    check_reachable(settings.tracking.mlflow_uri)
    periods = Periods.from_config(settings.train)
    names = tuple(feature_names(settings.features))
    with ParquetRows(features, names, periods.validation_start, periods.delay_start) as days:
        validation = days.table().to_pandas()

    def score_test(model: FraudModel) -> ScoredTest:
        return score_test_stream(features, names, periods, lambda x: predict_scores(model, x))

    frames = EvaluationFrames(validation, score_test, None)
    with ParquetRows(features, names, periods.fit_start, periods.validation_start) as train:
        return _fit_and_record(settings, train, frames, features, dataset_hash(features), promote)


@dataclass(frozen=True)
class EvaluationFrames:
    """The validation rows, how to score the test set and, if in memory, the training rows
    (``verdict_rows`` of them labelled by analysts' verdicts)."""

    validation: pd.DataFrame
    score_test: Callable[[FraudModel], ScoredTest]
    training: pd.DataFrame | None
    verdict_rows: int = 0


def _fit_and_record(
    settings: Settings,
    train: TrainingRows,
    frames: EvaluationFrames,
    source: Path,
    source_sha256: str,
    promote: bool,
    warm_start: WarmStart | None = None,
) -> RunResult:
    """Fit, choose the threshold, evaluate, export and track one run."""
    validation = _dataset(frames.validation, settings)
    run_dir = new_run_dir(settings)
    logger.info("run %s: training %s on %d rows", run_dir.name, settings.model.kind, len(train))
    started = time.perf_counter()
    initial = None if warm_start is None else warm_start.champion
    model, history = fit_model(settings, train, validation, run_dir, initial)
    train_seconds = time.perf_counter() - started
    val_scored = _score(model, frames.validation, settings)
    test = frames.score_test(model)
    test_scored = test.scored
    threshold = metrics.choose_threshold(
        val_scored.labels,
        val_scored.scores,
        settings.train.cost_missed_fraud,
        settings.train.cost_false_alarm,
    )
    summary: dict[str, Any] = {
        "run_id": run_dir.name,
        "experiment_name": settings.train.experiment_name,
        "model_kind": model_kind(model),
        "warm_start_from": None if warm_start is None else warm_start.version,
        "fitting_rows": len(train),
        "verdict_labelled_rows": frames.verdict_rows,
        "threshold": threshold,
        "test": _evaluate(test_scored, threshold, settings),
        "validation": _evaluate(val_scored, threshold, settings),
        "train_seconds": train_seconds,
        "epochs_run": len(history),
        "best_epoch": max(history, key=lambda r: r.validation_average_precision).epoch
        if history
        else None,
        "history": [asdict(r) for r in history],
        "git_commit": git_commit(),
        "dataset": {
            "path": str(source),
            "sha256": source_sha256,
            "version": dataset_version(source, source_sha256),
        },
        "streamed": isinstance(train, ParquetRows),
    }
    metadata = _metadata(settings, run_dir, train, summary)
    artifacts.write_run(
        run_dir,
        model,
        metadata,
        summary,
        settings,
        (test_scored.labels, test_scored.scores),
        history,
    )
    final = {f"test_{k}": v for k, v in summary["test"].items()}
    final |= {f"validation_{k}": v for k, v in summary["validation"].items()}
    contexts = {"training": frames.training, "validation": frames.validation}
    contexts["testing"] = test.sample
    rows = {"testing": len(test_scored.labels)}
    datasets = [
        RunDataset(f"{context}-{source_sha256[:8]}", context, str(source), frame, rows.get(context))
        for context, frame in contexts.items()
        if frame is not None
    ]
    log_run(
        settings,
        run_dir,
        final | {"train_seconds": train_seconds},
        history,
        _tags(summary),
        datasets,
        metadata.feature_names,
    )
    if promote:
        artifacts.promote(run_dir, settings.inference.model_path)
    return RunResult(run_dir=run_dir, metrics=summary)


def _tags(summary: dict[str, Any]) -> dict[str, str]:
    tags = {
        "git_commit": summary["git_commit"],
        "dataset_path": summary["dataset"]["path"],
        "dataset_sha256": summary["dataset"]["sha256"],
        TAG_DATASET_VERSION: summary["dataset"]["version"],
        "model_kind": summary["model_kind"],
        "vigil_run_id": summary["run_id"],
    }
    if summary["warm_start_from"] is not None:
        tags["warm_start_from"] = summary["warm_start_from"]
    return tags


def train(
    settings: Settings,
    data: Path | None = None,
    promote: bool = False,
    stream_features: Path | None = None,
    simulated_verdicts: bool = False,
) -> Path:
    """Load the feature table, run one training run, log its headline; returns the run dir.

    With ``stream_features`` (a feature Parquet) the training rows are streamed from it
    instead (:func:`run_streamed_training`). With ``simulated_verdicts`` the verdict features
    come from a simulated investigator's reviews (:mod:`vigil.feedback.past_reviews`).
    """
    if stream_features is not None:
        if simulated_verdicts:
            raise ValueError("simulated verdicts need the raw transactions, not --stream-features")
        result = run_streamed_training(settings, stream_features, promote=promote)
    else:
        table = load_feature_table(settings, data)
        if simulated_verdicts:
            # the evaluation's investigator, which imports this module: imported here
            from vigil.feedback.past_reviews import with_simulated_verdicts

            table = with_simulated_verdicts(settings, table)
        result = run_training(settings, table, promote=promote)
    test = result.metrics["test"]
    logger.info(
        "run %s: test AUC ROC %.4f, AP %.4f, CP@%d %.4f, threshold %.4f",
        result.run_dir.name,
        test["auc_roc"],
        test["average_precision"],
        settings.train.top_k_cards,
        test["card_precision_at_k"],
        result.metrics["threshold"],
    )
    return result.run_dir
