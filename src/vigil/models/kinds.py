"""The model kinds one run can produce, and scoring them in-process (before export)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

import lightgbm
import numpy as np
from sklearn.pipeline import Pipeline

from vigil.models.mlp import FraudMLP

# A LightGBM fitted in memory is the scikit-learn classifier; one fitted from a stream
# (vigil.training.stream) is the booster itself.
SingleModel: TypeAlias = FraudMLP | Pipeline | lightgbm.LGBMClassifier | lightgbm.Booster


@dataclass(frozen=True)
class Ensemble:
    """The mean of its members' fraud probabilities."""

    members: tuple[SingleModel, ...]

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("an ensemble needs at least one member")


FraudModel: TypeAlias = SingleModel | Ensemble


def model_kind(model: FraudModel) -> str:
    """``mlp`` | ``logistic`` | ``lightgbm`` | ``ensemble``, as recorded in the model metadata."""
    if isinstance(model, Ensemble):
        return "ensemble"
    if isinstance(model, FraudMLP):
        return "mlp"
    if isinstance(model, lightgbm.LGBMClassifier | lightgbm.Booster):
        return "lightgbm"
    if isinstance(model, Pipeline):
        return "logistic"
    raise TypeError(f"not a Vigil model: {type(model).__name__}")


def predict_scores(model: FraudModel, features: np.ndarray) -> np.ndarray:
    """Fraud probabilities, float32 [N], for raw features [N, F]."""
    batch = np.ascontiguousarray(features, dtype=np.float32)
    if isinstance(model, Ensemble):
        member_scores = [predict_scores(member, batch) for member in model.members]
        return np.asarray(np.mean(member_scores, axis=0, dtype=np.float32))
    if isinstance(model, FraudMLP):
        return np.asarray(model.predict_proba(batch))
    if isinstance(model, lightgbm.Booster):
        return np.asarray(model.predict(batch), dtype=np.float32)
    probabilities = np.asarray(model.predict_proba(batch))
    return probabilities[:, 1].astype(np.float32)
