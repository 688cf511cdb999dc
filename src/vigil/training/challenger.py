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
from typing import Any

from sqlalchemy import Engine

from vigil.config import Settings, flatten
from vigil.inference.deploy import install_model
from vigil.inference.roles import CHAMPION
from vigil.inference.scorer import OnnxScorer
from vigil.retraining.runner import TrainOutcome
from vigil.storage import REGISTRY_VERSION, save_deployment
from vigil.tracking.model_registry import ModelRegistry
from vigil.tracking.registration import register_run
from vigil.training.data import load_feature_table
from vigil.training.gate import GateDecision, GatePolicy, run_gate

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
    """The retrain job: one training (no promotion), registered as the registry's challenger.

    ``PUT /retrain`` runs it in a child process (``vigil train --challenger``), the Dagster
    retrain job in-process; what follows differs only in who promotes (``POST /deploy`` or
    :func:`gate_and_promote`).
    """
    # torch and the exporters: imported when a retrain runs, not when Dagster loads the assets.
    from vigil.training.artifacts import METRICS_FILE, ONNX_FILE
    from vigil.training.run import train

    run_dir = train(settings, promote=False)
    model = run_dir / ONNX_FILE
    if not model.is_file():
        raise RuntimeError(f"training finished without a model at {model}")
    registration = register_run(settings, run_dir)
    summary = json.loads((run_dir / METRICS_FILE).read_text())
    return Challenger(model, registration.version, registration.run_id, headline_metrics(summary))


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
    policy = GatePolicy(top_k=settings.train.top_k_cards, recent_days=settings.train.test_days)
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
