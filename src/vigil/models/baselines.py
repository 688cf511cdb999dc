"""Baselines trained through the same entry point: logistic regression and LightGBM."""

from __future__ import annotations

import ctypes
import logging
from typing import TYPE_CHECKING, Any

import lightgbm
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from vigil.config import ModelConfig

if TYPE_CHECKING:
    from vigil.training.stream import ParquetRows


logger = logging.getLogger(__name__)

# LightGBM stops when validation AP has not improved for this many rounds.
LIGHTGBM_EARLY_STOPPING_ROUNDS = 50
# Deterministic and immune to OpenMP spin-waits on a busy machine (one thread).
LIGHTGBM_FIXED: dict[str, Any] = {
    "deterministic": True,
    "verbose": -1,
    "metric": "average_precision",
}


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
    init_model: lightgbm.LGBMClassifier | lightgbm.Booster | None = None,
) -> lightgbm.LGBMClassifier:
    """Gradient-boosted trees, early-stopped on validation average precision.

    ``init_model`` warm-starts: up to ``n_estimators`` trees are added to that model's.
    """
    params = config.lightgbm
    classifier = lightgbm.LGBMClassifier(
        n_estimators=params.n_estimators,
        learning_rate=params.learning_rate,
        num_leaves=params.num_leaves,
        max_bin=params.max_bin,
        class_weight="balanced" if balanced else None,
        random_state=seed,
        force_row_wise=True,
        n_jobs=1,
        **LIGHTGBM_FIXED,
    )
    classifier.fit(
        features,
        labels,
        eval_X=validation[0],
        eval_y=validation[1],
        callbacks=[lightgbm.early_stopping(LIGHTGBM_EARLY_STOPPING_ROUNDS, verbose=False)],
        init_model=init_model.booster_
        if isinstance(init_model, lightgbm.LGBMClassifier)
        else init_model,
    )
    logger.info("LightGBM: best iteration %s", classifier.best_iteration_)
    return classifier


def balanced_weights(labels: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Per-row weights n / (2 n_class), as ``class_weight="balanced"`` gives (float32).

    With sampling ``weights`` (1 / the row's sampling rate) the class counts are the weighted
    ones (estimates of the unsampled counts) and each row's weight is multiplied by its own.
    """
    if weights is None:
        counts = np.bincount(labels, minlength=2).astype(np.float64)
        return np.asarray(len(labels) / (2.0 * counts), dtype=np.float32)[labels]
    weighted = np.bincount(labels, weights=weights, minlength=2)
    per_class = weighted.sum() / (2.0 * weighted)
    return np.asarray(weights * per_class[labels], dtype=np.float32)


def release_heap() -> None:
    """Give the C heap's freed pages back to the system (glibc ``malloc_trim``; else no-op).

    After a fit the freed per-row state stays in the process's heap: a cgroup counts it until
    it is trimmed, and the evaluation after the fit needs that room.
    """
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        logger.debug("malloc_trim unavailable: the freed heap stays with the process")


def fit_lightgbm_stream(
    rows: ParquetRows,
    validation: tuple[np.ndarray, np.ndarray],
    config: ModelConfig,
    balanced: bool,
    seed: int,
) -> lightgbm.Booster:
    """:func:`fit_lightgbm` on rows streamed from Parquet (no feature matrix in memory).

    Above ``lightgbm.max_fit_rows`` rows the genuine rows are sampled
    (:meth:`ParquetRows.sample_genuines`: every fraud kept, genuine rows at rate r, weighted
    1/r, drawn from ``seed``); below it the fit is the in-memory one's. The binned dataset is
    built from the rows' ``sequences()`` (bins from a sample of ``bin_construct_sample_cnt``
    rows, then one row group at a time); the same parameters as the in-memory fit, but
    column-wise histograms, which need no second, row-wise copy of the bins. Returns a
    booster read back from the fitted model's text: the training state (per-row scores,
    gradients, the binned data) is freed with the training booster, and the heap trimmed.
    """
    params = config.lightgbm
    settings: dict[str, Any] = {
        "objective": "binary",
        "learning_rate": params.learning_rate,
        "num_leaves": params.num_leaves,
        "max_bin": params.max_bin,
        "seed": seed,
        "force_col_wise": True,
        "num_threads": 1,
        **LIGHTGBM_FIXED,
    }
    with rows.sample_genuines(params.max_fit_rows, seed) as fitting:
        labels = fitting.labels()
        weights = fitting.weights()
        if balanced:
            weights = balanced_weights(labels, weights)
        train = lightgbm.Dataset(
            fitting.sequences(), label=labels, weight=weights, params=settings, free_raw_data=True
        )
        del labels, weights
        valid = lightgbm.Dataset(validation[0], label=validation[1], reference=train)
        booster = lightgbm.train(
            settings,
            train,
            num_boost_round=params.n_estimators,
            valid_sets=[valid],
            callbacks=[lightgbm.early_stopping(LIGHTGBM_EARLY_STOPPING_ROUNDS, verbose=False)],
        )
    best = booster.best_iteration
    logger.info("LightGBM (streamed): best iteration %s", best)
    model = booster.model_to_string(num_iteration=best)
    del booster, train, valid
    release_heap()
    fitted = lightgbm.Booster(model_str=model)
    fitted.best_iteration = best
    return fitted
