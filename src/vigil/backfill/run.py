"""Distributed feature backfill and batch scoring over :mod:`vigil.backfill.buckets`.

Both run in three waves of independent tasks on an :class:`~vigil.backfill.engines.Engine`:
every bucket (entity side x hash bucket x time slice), then per time slice the join of its
parts (and for scoring, the scores of its rows), then the slices are concatenated in time
order into one Parquet file: the same rows, columns and order as the single-node build
(:func:`vigil.features.offline.build_feature_table`) or scoring (``vigil predict``).
"""

from __future__ import annotations

import functools
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from vigil.backfill.buckets import TimeSlice, assemble_slice, plan, run_bucket
from vigil.backfill.engines import Engine
from vigil.config import FeaturesConfig, Settings
from vigil.data.schema import TRANSACTION_ID


@dataclass(frozen=True)
class BackfillSummary:
    """What a distributed run wrote."""

    output_path: Path
    rows: int
    buckets: int
    slices: int
    seconds: float


def _concatenate(parts: Sequence[Path], output_path: Path) -> int:
    """Copy the parts' row groups, in order, into one Parquet file; the rows written."""
    rows = 0
    writer: pq.ParquetWriter | None = None
    try:
        for part in parts:
            table = pq.read_table(part)
            if writer is None:
                writer = pq.ParquetWriter(output_path, table.schema)
            writer.write_table(table)
            rows += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    return rows


def _feature_slices(
    config: FeaturesConfig,
    source: Path,
    engine: Engine,
    work: Path,
    hash_buckets: int,
    slices: int,
) -> tuple[list[TimeSlice], list[Path], int]:
    """Run every bucket, then join each slice; (slices, slice files, buckets run)."""
    buckets = plan(source, hash_buckets, slices)
    engine.map(functools.partial(run_bucket, config, source, work=work), buckets)
    time_slices = sorted({b.time_slice for b in buckets}, key=lambda s: s.index)
    paths = engine.map(functools.partial(assemble_slice, config, work), time_slices)
    return time_slices, paths, len(buckets)


def build_feature_table_distributed(
    config: FeaturesConfig,
    source: Path,
    output_path: Path,
    engine: Engine,
    hash_buckets: int = 4,
    slices: int = 4,
) -> BackfillSummary:
    """The feature table of ``source`` built from independent buckets on ``engine``.

    The work folder is created beside ``output_path``: on a cluster it must be a path every
    worker reaches (a shared volume), as ``source`` must.
    """
    started = time.perf_counter()
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vigil-backfill-", dir=output_path.parent) as tmp:
        time_slices, paths, buckets = _feature_slices(
            config, source, engine, Path(tmp), hash_buckets, slices
        )
        rows = _concatenate(paths, output_path)
    return BackfillSummary(
        output_path, rows, buckets, len(time_slices), time.perf_counter() - started
    )


def score_slice(settings: Settings, model_path: Path, features_path: Path) -> Path:
    """``transaction_id, score, label`` of one slice's feature rows, as ``vigil predict``."""
    from vigil.inference.batch import LABEL, SCORE, feature_matrix, score_in_chunks
    from vigil.inference.decision import label_scores
    from vigil.inference.scorer import OnnxScorer

    scorer = OnnxScorer.load(model_path, 1)
    frame = pd.read_parquet(features_path)
    features = feature_matrix(frame, scorer.feature_names)
    scores = score_in_chunks(scorer, features, settings.inference.batch_size, progress=False)
    labels = label_scores(scores, scorer.metadata.threshold)
    path = features_path.with_name(f"scores-{features_path.name}")
    result = pd.DataFrame({TRANSACTION_ID: frame[TRANSACTION_ID], SCORE: scores, LABEL: labels})
    result.to_parquet(path, index=False)
    return path


def predict_distributed(
    settings: Settings,
    source: Path,
    output_path: Path,
    engine: Engine,
    model_path: Path | None = None,
    hash_buckets: int = 4,
    slices: int = 4,
) -> BackfillSummary:
    """Batch scores of every transaction of a labelled ``source`` (its own history), from
    independent feature buckets and per-slice scoring on ``engine``, in tie order."""
    started = time.perf_counter()
    model = model_path or settings.inference.model_path
    if not model.exists():
        raise FileNotFoundError(f"no model at {model}")
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vigil-backfill-", dir=output_path.parent) as tmp:
        time_slices, paths, buckets = _feature_slices(
            settings.features, source, engine, Path(tmp), hash_buckets, slices
        )
        scored = engine.map(functools.partial(score_slice, settings, model), paths)
        rows = _concatenate(scored, output_path)
    return BackfillSummary(
        output_path, rows, buckets, len(time_slices), time.perf_counter() - started
    )
