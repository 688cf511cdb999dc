"""Distributed backfills: the offline feature build and batch scoring split into independent
buckets (entity hash x time slice) run on Dask distributed (ADR 0021)."""

from vigil.backfill.engines import DaskEngine, Engine, LocalEngine, make_engine
from vigil.backfill.run import (
    BackfillSummary,
    build_feature_table_distributed,
    predict_distributed,
)

__all__ = [
    "BackfillSummary",
    "DaskEngine",
    "Engine",
    "LocalEngine",
    "build_feature_table_distributed",
    "make_engine",
    "predict_distributed",
]
