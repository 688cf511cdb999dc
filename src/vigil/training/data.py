"""The feature table a run trains on: raw transactions in, point-in-time features out."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from vigil.config import Settings
from vigil.data.io import read_transactions
from vigil.data.schema import TX_DATETIME, TX_FRAUD
from vigil.features.definitions import feature_names
from vigil.features.offline import compute_features_frame
from vigil.training.provenance import dataset_hash
from vigil.training.splits import Periods

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeatureTable:
    """Features for the protocol's periods, and where the raw data came from."""

    frame: pd.DataFrame
    source: Path
    source_sha256: str


def history_start(settings: Settings) -> pd.Timestamp:
    """The earliest transaction any feature of the first training day can look at.

    Customer windows reach back the longest window; terminal and customer risk reach back
    the longest window plus the label delay (one more day for safety) from the first
    fitting day.
    """
    lookback = max(settings.features.windows_days) + settings.features.label_delay_days + 1
    return pd.Timestamp(Periods.from_config(settings.train).fit_start - timedelta(days=lookback))


def load_feature_table(settings: Settings, source: Path | None = None) -> FeatureTable:
    """Read raw transactions (file or directory), keep the needed days, compute features."""
    path = Path(source or settings.data.raw_dir)
    transactions = read_transactions(path)
    end = pd.Timestamp(Periods.from_config(settings.train).test_end)
    times = transactions[TX_DATETIME]
    needed = transactions[(times >= history_start(settings)) & (times < end)]
    if TX_FRAUD not in needed.columns:
        raise ValueError(f"{path} has no {TX_FRAUD} column: training needs labelled data")
    logger.info("computing features for %d of %d transactions", len(needed), len(transactions))
    frame = compute_features_frame(settings.features, needed.reset_index(drop=True))
    return FeatureTable(frame=frame, source=path, source_sha256=dataset_hash(path))


def feature_matrix(frame: pd.DataFrame, settings: Settings) -> np.ndarray:
    """Raw features as float32 [N, F] in the served order; raises on missing columns."""
    names = feature_names(settings.features)
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise ValueError(f"feature table lacks columns {missing}")
    return np.ascontiguousarray(frame[names].to_numpy(dtype=np.float32))
