"""The retrain job: train a challenger, register it, promote it only through the gate.

Training is :func:`vigil.training.run.train` (what ``vigil train`` runs), and the run is
registered in the MLflow registry as the ``challenger``; the verdict is
:func:`vigil.training.gate.run_gate`; installation is
:func:`vigil.inference.deploy.install_model` (atomic) plus a row in the ``deployments``
table, from which the deployment follower of every running API and worker hot-swaps the new
file, and the registry's ``champion`` alias moves to the promoted version, as
``POST /deploy/{id}`` does.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from vigil.config import Settings, flatten
from vigil.inference.deploy import install_model
from vigil.inference.roles import CHAMPION
from vigil.inference.scorer import OnnxScorer
from vigil.retraining.runner import TrainOutcome
from vigil.storage import REGISTRY_VERSION, create_db_engine, save_deployment
from vigil.storage.cases import fetch_verdicts
from vigil.tracking.model_registry import ModelRegistry
from vigil.tracking.registration import register_run
from vigil.training.data import load_feature_table
from vigil.training.gate import GateDecision, GatePolicy, run_gate
from vigil.training.verdict_labels import stored_verdict_log

if TYPE_CHECKING:
    import pandas as pd

    from vigil.models.kinds import SingleModel
    from vigil.training.run import WarmStart

RETRAIN_STRATEGY = "retrain_strategy"  # MLflow tag of the challenger: full | warm_start

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Challenger:
    """A freshly trained model, its version in the MLflow registry and its headline figures."""

    model: Path
    registry_version: int
    mlflow_run_id: str
    metrics: dict[str, float]

    def outcome(self) -> TrainOutcome:
        """What an experiment records: model, metrics (with the registry version), MLflow run."""
        metrics = self.metrics | {REGISTRY_VERSION: float(self.registry_version)}
        return TrainOutcome(self.model, metrics, self.mlflow_run_id)


@dataclass(frozen=True)
class PromotionOutcome:
    """Whether the challenger now serves, and the gate's evidence (None: no champion yet)."""

    promoted: bool
    reason: str
    challenger: Path
    served_at: Path
    decision: GateDecision | None


def headline_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """Numeric test and validation figures of a ``metrics.json``, flattened (``test.auc_roc``)."""
    wanted: dict[str, Any] = {k: summary[k] for k in ("test", "validation") if k in summary}
    wanted["threshold"] = summary.get("threshold")
    return {
        key: float(value)
        for key, value in flatten(wanted).items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


def train_challenger(settings: Settings) -> Challenger:
    """The retrain job: one challenger (no promotion), registered as the registry's challenger.

    ``retrain.strategy`` says how it is made: a full training, a warm start of the serving
    champion, or both, the one with the better validation AP kept (:func:`_choose`). The
    strategy used is recorded as the MLflow run's and model version's ``retrain_strategy``
    tag and in the metrics (``retrain_warm_start``: 1 or 0), which the experiment record
    keeps.

    ``PUT /retrain`` runs it in a child process (``vigil train --challenger``), the Dagster
    retrain job in-process; what follows differs only in who promotes (``POST /deploy`` or
    :func:`gate_and_promote`).
    """
    # torch and the exporters: imported when a retrain runs, not when Dagster loads the assets.
    from vigil.training.artifacts import METRICS_FILE, ONNX_FILE
    from vigil.training.run import run_training

    strategy = settings.retrain.strategy
    table = load_feature_table(settings)
    verdicts = stored_verdicts(settings) if settings.retrain.verdict_labels else None
    if strategy == "full":
        run_dir, chosen = run_training(settings, table, verdicts=verdicts).run_dir, "full"
    else:
        adapted, warm_start = _warm_start(settings)
        warm = run_training(adapted, table, warm_start=warm_start, verdicts=verdicts).run_dir
        if strategy == "warm_start":
            run_dir, chosen = warm, "warm_start"
        else:
            full = run_training(settings, table, verdicts=verdicts).run_dir
            run_dir, chosen = _choose(warm, full)
    model = run_dir / ONNX_FILE
    if not model.is_file():
        raise RuntimeError(f"training finished without a model at {model}")
    registration = register_run(settings, run_dir, extra_tags={RETRAIN_STRATEGY: chosen})
    summary = json.loads((run_dir / METRICS_FILE).read_text())
    metrics = headline_metrics(summary) | {"retrain_warm_start": float(chosen == "warm_start")}
    logger.info("retrain strategy %s: challenger %s", chosen, run_dir.name)
    return Challenger(model, registration.version, registration.run_id, metrics)


def stored_verdicts(settings: Settings) -> pd.DataFrame:
    """The verdict log of the ``verdicts`` table (``retrain.verdict_labels``): the retrain
    fits on the delay period's reviewed transactions with these labels too."""
    engine = create_db_engine(settings.storage.database_url)
    try:
        with engine.connect() as connection:
            log = stored_verdict_log(fetch_verdicts(connection))
    finally:
        engine.dispose()
    logger.info("retrain with verdict labels: %d verdicts in the log", len(log))
    return log


def _warm_start(settings: Settings) -> tuple[Settings, WarmStart]:
    """The settings of a warm start (fewer trees or epochs) and the champion it adapts."""
    from vigil.training.run import WarmStart

    retrain = settings.retrain
    champion, version = load_champion(settings)
    lightgbm_config = settings.model.lightgbm.model_copy(
        update={"n_estimators": retrain.warm_start_trees}
    )
    adapted = settings.model_copy(
        update={
            "model": settings.model.model_copy(update={"lightgbm": lightgbm_config}),
            "train": settings.train.model_copy(update={"epochs": retrain.warm_start_epochs}),
        }
    )
    return adapted, WarmStart(champion, version, retrain.warm_start_days)


def load_champion(settings: Settings) -> tuple[SingleModel, str]:
    """The serving model in its trainable form (from its run directory) and its version."""
    import lightgbm

    from vigil.models.export_hf import load_hf
    from vigil.training.artifacts import HF_DIR, LIGHTGBM_FILE

    served = settings.inference.model_path
    if not served.is_file():
        raise ValueError(f"no serving model at {served}: nothing to warm-start from")
    metadata = OnnxScorer.load(served).metadata
    run_dir = settings.train.runs_dir / metadata.model_version
    if metadata.model_kind == "mlp" and (run_dir / HF_DIR).is_dir():
        return load_hf(run_dir / HF_DIR), metadata.model_version
    if metadata.model_kind == "lightgbm" and (run_dir / LIGHTGBM_FILE).is_file():
        booster = lightgbm.Booster(model_file=str(run_dir / LIGHTGBM_FILE))
        return booster, metadata.model_version
    raise ValueError(
        f"cannot warm-start the champion {metadata.model_version} ({metadata.model_kind}): "
        f"a warm start needs an mlp or lightgbm champion whose run is in {run_dir.parent}"
    )


def _gate_policy(settings: Settings) -> GatePolicy:
    """The promotion gate's policy of the retrain job: its k, and the test period as window."""
    return GatePolicy(top_k=settings.train.top_k_cards, recent_days=settings.train.test_days)


def _choose(warm: Path, full: Path) -> tuple[Path, str]:
    """``auto``: the warm start unless the full training has the higher validation AP.

    Both runs hold out the same validation days (a warm start fits on fewer days, not other
    ones), so the choice costs no look at the gate's recent window: the promotion gate then
    decides once, on the chosen model.
    """
    warm_ap, full_ap = (_validation_ap(run_dir) for run_dir in (warm, full))
    chosen = (full, "full") if full_ap > warm_ap else (warm, "warm_start")
    logger.info(
        "auto retrain: validation AP warm start %.4f, full %.4f: %s", warm_ap, full_ap, chosen[1]
    )
    return chosen


def _validation_ap(run_dir: Path) -> float:
    """A run's validation average precision (its ``metrics.json``)."""
    from vigil.training.artifacts import METRICS_FILE

    summary = json.loads((run_dir / METRICS_FILE).read_text())
    return float(summary["validation"]["average_precision"])


def install_champion(challenger: Path, served_at: Path, engine: Engine) -> str:
    """Install the model file and record the deployment (serving processes follow it)."""
    version = OnnxScorer.load(challenger).model_version
    install_model(challenger, served_at)
    save_deployment(engine, version, str(served_at), CHAMPION)
    logger.info("champion is now %s at %s", version, served_at)
    return version


def gate_and_promote(
    settings: Settings, challenger: Path, engine: Engine, registry_version: int | None = None
) -> PromotionOutcome:
    """Install ``challenger`` as the serving model only if the promotion gate says it is better.

    With no serving model yet there is nothing to compare with: the challenger is installed.
    When installed, the registry's ``champion`` alias moves to ``registry_version`` (if given).
    """
    served_at = settings.inference.model_path
    if not served_at.is_file():
        install_champion(challenger, served_at, engine)
        _move_champion_alias(settings, registry_version)
        reason = "no serving model yet: the challenger becomes the champion"
        return PromotionOutcome(True, reason, challenger, served_at, None)
    policy = _gate_policy(settings)
    features = load_feature_table(settings).frame
    decision = run_gate(served_at, challenger, features, policy)
    if decision.promote:
        install_champion(challenger, served_at, engine)
        _move_champion_alias(settings, registry_version)
    return PromotionOutcome(decision.promote, decision.reason, challenger, served_at, decision)


def _move_champion_alias(settings: Settings, version: int | None) -> None:
    """Point the registry's ``champion`` at the version now serving."""
    if version is None:
        return
    ModelRegistry(settings.tracking).set_alias(CHAMPION, version)
    logger.info("registry alias %s -> version %d", CHAMPION, version)
