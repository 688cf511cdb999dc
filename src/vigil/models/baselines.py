"""Baselines trained through the same entry point: logistic regression and LightGBM."""

from __future__ import annotations

import logging

import lightgbm
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from vigil.config import ModelConfig

logger = logging.getLogger(__name__)

# LightGBM stops when validation AP has not improved for this many rounds.
LIGHTGBM_EARLY_STOPPING_ROUNDS = 50


def fit_logistic(
    features: np.ndarray, labels: np.ndarray, config: ModelConfig, balanced: bool, seed: int
) -> Pipeline:
    """Standard-scaler + logistic regression (scaler fitted on these rows only)."""
    pipeline = Pipeline(
        [
            ("scaler", StandardScaler()),
            (
                "classifier",
                LogisticRegression(
                    C=config.logistic_c,
                    class_weight="balanced" if balanced else None,
                    max_iter=2000,
                    random_state=seed,
                ),
            ),
        ]
    )
    pipeline.fit(features, labels)
    return pipeline


def fit_lightgbm(
    features: np.ndarray,
    labels: np.ndarray,
    validation: tuple[np.ndarray, np.ndarray],
    config: ModelConfig,
    balanced: bool,
    seed: int,
    init_model: lightgbm.LGBMClassifier | None = None,
) -> lightgbm.LGBMClassifier:
    """Gradient-boosted trees, early-stopped on validation average precision.

    ``init_model`` warm-starts: up to ``n_estimators`` trees are added to that model's.
    """
    params = config.lightgbm
    classifier = lightgbm.LGBMClassifier(
        n_estimators=params.n_estimators,
        learning_rate=params.learning_rate,
        num_leaves=params.num_leaves,
        class_weight="balanced" if balanced else None,
        random_state=seed,
        deterministic=True,
        force_row_wise=True,
        n_jobs=1,  # deterministic and immune to OpenMP spin-waits on a busy machine
        verbose=-1,
        metric="average_precision",
    )
    classifier.fit(
        features,
        labels,
        eval_X=validation[0],
        eval_y=validation[1],
        callbacks=[lightgbm.early_stopping(LIGHTGBM_EARLY_STOPPING_ROUNDS, verbose=False)],
        init_model=None if init_model is None else init_model.booster_,
    )
    logger.info("LightGBM: best iteration %s", classifier.best_iteration_)
    return classifier
