"""Batch scoring of a file (``vigil predict``, ``python -m vigil.predict``, the daily pipeline).

Loads only the ONNX model with ONNX Runtime (no torch), computes features for the input
transactions (or takes precomputed feature columns), scores them in chunks and writes
``transaction_id, score, label`` as CSV or Parquet. Every check runs before the output is
written, and the output appears atomically (temp file, then rename), so a bad input leaves
nothing behind.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from vigil.config import Settings
from vigil.data.contracts import DataContractError, validate_transactions
from vigil.data.io import (
    CSV_SUFFIXES,
    PARQUET_SUFFIXES,
    DataFormatError,
    file_suffix,
    read_table,
    read_transactions,
)
from vigil.data.schema import TRANSACTION_ID, TX_DATETIME, TX_FRAUD
from vigil.features.definitions import feature_lookback_days
from vigil.features.offline import compute_features_frame
from vigil.inference.decision import label_scores, validate_scores
from vigil.inference.scorer import OnnxScorer

logger = logging.getLogger(__name__)

SCORE = "score"
LABEL = "label"


class PredictionInputError(ValueError):
    """The input file or the requested output cannot be scored as asked; nothing was written."""


@dataclass(frozen=True)
class PredictionSummary:
    """What one batch-scoring run wrote."""

    output_path: Path
    rows: int
    flagged: int
    model_version: str
    seconds: float


def _output_format(path: Path) -> str:
    suffix = file_suffix(path)
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    raise PredictionInputError(
        f"output {path} must end in .csv, .csv.gz, .parquet or .pq (got {suffix or 'no suffix'!r})"
    )


def _read_table(path: Path) -> pd.DataFrame:
    """A CSV or Parquet file (or Parquet directory) of precomputed features, as written."""
    if not path.exists():
        raise PredictionInputError(f"input {path} does not exist")
    table = read_table(path)
    if table is None:
        raise PredictionInputError(
            f"input {path} must be a .csv, .csv.gz, .parquet or .pq file or a Parquet directory"
        )
    return table


def _with_history(transactions: pd.DataFrame, history_path: Path) -> pd.DataFrame:
    """Input transactions preceded by the labelled history that their windows look back on.

    History rows that are also in the input, or later than the input's last transaction, are
    dropped; input rows without a label count as not (yet) known fraud, as online.
    """
    history = validate_transactions(read_transactions(history_path), require_labels=True)
    is_context = ~history[TRANSACTION_ID].isin(transactions[TRANSACTION_ID]) & (
        history[TX_DATETIME] <= transactions[TX_DATETIME].max()
    )
    scored = transactions if TX_FRAUD in transactions else transactions.assign(**{TX_FRAUD: 0})
    columns = [*transactions.columns.drop(TX_FRAUD, errors="ignore"), TX_FRAUD]
    return pd.concat([history.loc[is_context, columns], scored[columns]], ignore_index=True)


def _own_history_days(transactions: pd.DataFrame) -> float:
    """Days of labelled past the input carries itself (0 without a ``tx_fraud`` column)."""
    if TX_FRAUD not in transactions or transactions.empty:
        return 0.0
    span = transactions[TX_DATETIME].max() - transactions[TX_DATETIME].min()
    return float(span / pd.Timedelta(days=1))


def _context(
    settings: Settings,
    transactions: pd.DataFrame,
    history_path: Path | None,
    cold_features: bool,
) -> pd.DataFrame:
    """The transactions the feature windows see: history plus input, or the input alone when
    it is its own history (labelled and at least the lookback long) or cold features are
    accepted explicitly."""
    if history_path is not None:
        return _with_history(transactions, history_path)
    lookback = feature_lookback_days(settings.features)
    own = _own_history_days(transactions)
    if own >= lookback or cold_features:
        if own < lookback:
            logger.warning("scoring without history (--cold-features): windows start empty")
        return transactions
    has = "is unlabelled" if TX_FRAUD not in transactions else f"spans {own:.1f} days"
    raise PredictionInputError(
        f"the features look back {lookback} days (longest window plus label delay) but the "
        f"input {has}, so customer and terminal history would be missing: pass --history "
        "PATH (labelled transactions before the input, e.g. data/raw), or --cold-features to "
        "score without history"
    )


def load_feature_frame(
    settings: Settings,
    input_path: Path,
    features_precomputed: bool,
    history_path: Path | None = None,
    cold_features: bool = False,
) -> pd.DataFrame:
    """Read the input and return ``transaction_id`` plus feature columns, in input order.

    ``history_path`` (labelled transactions) gives the feature windows the past they need.
    Without it the input must be its own history (labelled, at least the features' lookback
    long) unless ``cold_features`` accepts empty windows; otherwise
    :class:`PredictionInputError`.
    """
    try:
        if features_precomputed:
            return _read_table(input_path)
        transactions = validate_transactions(read_transactions(input_path))
        context = _context(settings, transactions, history_path, cold_features)
    except (DataFormatError, DataContractError, PredictionInputError) as error:
        raise PredictionInputError(f"input {input_path}: {error}") from error
    except (OSError, ValueError) as error:  # unreadable: parser, Arrow or encoding errors
        raise PredictionInputError(f"input {input_path} is not readable: {error}") from error
    features = compute_features_frame(settings.features, context)
    # DuckDB returns rows in its own order; answer in the caller's.
    return features.set_index(TRANSACTION_ID).loc[transactions[TRANSACTION_ID]].reset_index()


def feature_matrix(frame: pd.DataFrame, feature_names: Sequence[str]) -> np.ndarray:
    """The model's feature columns, in the model's order, as float32 [N, F]."""
    names = list(feature_names)
    missing = [c for c in [TRANSACTION_ID, *names] if c not in frame.columns]
    if missing:
        raise PredictionInputError(f"the model needs column(s) missing from the input: {missing}")
    if not frame[TRANSACTION_ID].is_unique:
        raise PredictionInputError(f"column {TRANSACTION_ID!r} has duplicate values")
    non_numeric = [c for c in names if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        raise PredictionInputError(f"feature column(s) are not numeric: {non_numeric}")
    with_nan = [c for c in names if frame[c].isna().any()]
    if with_nan:
        raise PredictionInputError(f"feature column(s) have missing values: {with_nan}")
    return frame[names].to_numpy(dtype=np.float32)


def score_in_chunks(
    scorer: OnnxScorer, features: np.ndarray, batch_size: int, progress: bool = True
) -> np.ndarray:
    """Validated scores [N], running the model on ``batch_size`` rows at a time."""
    scores = np.empty(len(features), dtype=np.float32)
    with tqdm(total=len(features), unit="row", desc="scoring", disable=not progress) as bar:
        for start in range(0, len(features), batch_size):
            stop = min(start + batch_size, len(features))
            scores[start:stop] = scorer.score(features[start:stop])
            bar.update(stop - start)
    return validate_scores(scores)


def write_atomically(frame: pd.DataFrame, path: Path) -> None:
    """Write CSV or Parquet (by suffix) to a temp file beside ``path``, then rename it."""
    output_format = _output_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    temp_path = Path(temp_name)
    try:
        if output_format == "csv":
            gzip = file_suffix(path) == ".csv.gz"
            frame.to_csv(temp_path, index=False, compression="gzip" if gzip else None)
        else:
            frame.to_parquet(temp_path, index=False)
        os.replace(temp_path, path)
    finally:
        temp_path.unlink(missing_ok=True)


def predict_file(
    settings: Settings,
    input_path: Path,
    output_path: Path,
    model_path: Path | None = None,
    features_precomputed: bool = False,
    threads: int = 1,
    progress: bool = True,
    history_path: Path | None = None,
    cold_features: bool = False,
) -> PredictionSummary:
    """Score every transaction of ``input_path`` and write the decisions to ``output_path``."""
    started = time.perf_counter()
    _output_format(output_path)
    scorer = OnnxScorer.load(model_path or settings.inference.model_path, threads)
    frame = load_feature_frame(
        settings, input_path, features_precomputed, history_path, cold_features
    )
    features = feature_matrix(frame, scorer.feature_names)
    scores = score_in_chunks(scorer, features, settings.inference.batch_size, progress)
    labels = label_scores(scores, scorer.metadata.threshold)
    result = pd.DataFrame({TRANSACTION_ID: frame[TRANSACTION_ID], SCORE: scores, LABEL: labels})
    write_atomically(result, output_path)
    summary = PredictionSummary(
        output_path=output_path,
        rows=len(result),
        flagged=int(labels.sum()),
        model_version=scorer.model_version,
        seconds=time.perf_counter() - started,
    )
    logger.info(
        "scored %d transactions (%d flagged) with %s in %.2f s -> %s",
        summary.rows,
        summary.flagged,
        summary.model_version,
        summary.seconds,
        output_path,
    )
    return summary
