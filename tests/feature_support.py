"""Feature-test helpers: an edge-heavy stream, a verdict log on it, the offline==online check."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from vigil.config import FeaturesConfig
from vigil.features import definitions as fd
from vigil.features.offline import compute_features_frame
from vigil.features.verdict_sql import with_verdict_features
from vigil.features.verdicts import REVIEWED_AT, TERMINAL_COMPROMISED

VERDICTS = FeaturesConfig(verdicts=True, verdict_window_days=10)

COUNT_PREFIXES = ("customer_id_nb_tx", "terminal_id_nb_tx", "terminal_id_nb_fraud")


def edge_heavy_stream(n: int = 2500, seed: int = 3) -> pd.DataFrame:
    """Random transactions on a 3-hour grid: many exact window edges and same-instant ties."""
    rng = np.random.default_rng(seed)
    slots = rng.integers(0, 60 * 8, n)  # 60 days of 3-hour slots
    jitter = rng.choice([0, 0, 0, 1, 59], n)  # mostly exactly on the grid
    return pd.DataFrame(
        {
            "transaction_id": rng.permutation(n) + 1,  # ids not in time order
            "tx_datetime": pd.Timestamp(datetime(2018, 4, 1))
            + pd.to_timedelta(slots * 10_800 + jitter, unit="s"),
            "customer_id": rng.integers(0, 40, n),
            "terminal_id": rng.integers(0, 25, n),
            "tx_amount": np.round(rng.lognormal(3.5, 1.0, n), 2),
            "tx_fraud": (rng.random(n) < 0.15).astype("int8"),
        }
    )


def assert_parity(config: FeaturesConfig, offline: pd.DataFrame, online: np.ndarray) -> None:
    """Counts exactly equal, every other feature within rtol 1e-9."""
    names = fd.feature_names(config)
    expected = offline[names].to_numpy()
    assert online.shape == expected.shape
    for j, name in enumerate(names):
        if name.startswith(COUNT_PREFIXES):
            np.testing.assert_array_equal(online[:, j], expected[:, j], err_msg=name)
        else:
            np.testing.assert_allclose(online[:, j], expected[:, j], rtol=1e-9, err_msg=name)
    for name in fd.extra_feature_names(config):  # the extra groups took non-trivial values
        assert len(np.unique(expected[:, names.index(name)])) > 2, name


def verdict_log(frame: pd.DataFrame, seed: int = 5) -> pd.DataFrame:
    """Verdicts on a third of the transactions, reviewed on the stream's 3-hour grid or just off it.

    Some transactions get a second, later verdict that flips the first (the latest counts).
    """
    rng = np.random.default_rng(seed)
    picked = frame.sample(frac=0.35, random_state=seed).reset_index(drop=True)
    hours = rng.choice([0, 3, 6, 27, 24 * 9], len(picked))
    seconds = rng.choice([0, 0, 1, 59, 3600], len(picked))
    log = pd.DataFrame(
        {
            "transaction_id": picked["transaction_id"],
            "customer_id": picked["customer_id"],
            "terminal_id": picked["terminal_id"],
            "tx_datetime": picked["tx_datetime"],
            "tx_fraud": (rng.random(len(picked)) < 0.5).astype("int8"),
            TERMINAL_COMPROMISED: (rng.random(len(picked)) < 0.5).astype("int8"),
            REVIEWED_AT: picked["tx_datetime"]
            + pd.to_timedelta(hours * 3600 + seconds + 1, unit="s"),
        }
    )
    again = log.sample(frac=0.2, random_state=seed + 1).copy()
    again["tx_fraud"] = 1 - again["tx_fraud"]
    again[REVIEWED_AT] += pd.to_timedelta(rng.choice([0, 10_800, 86_400], len(again)), unit="s")
    return pd.concat([log, again], ignore_index=True)


def offline_with_verdicts(
    config: FeaturesConfig, frame: pd.DataFrame, log: pd.DataFrame
) -> pd.DataFrame:
    return with_verdict_features(config, compute_features_frame(config, frame), log)
