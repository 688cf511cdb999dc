"""Offline == online: the same stream through DuckDB and through the in-memory state store."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from vigil.config import FeaturesConfig, Settings
from vigil.data.simulate import simulate_transactions
from vigil.features import definitions as fd
from vigil.features.offline import compute_features_frame
from vigil.features.online import OnlineFeatureComputer
from vigil.features.replay import replay
from vigil.features.state import InMemoryStateStore

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


def replay_in_memory(config: FeaturesConfig, frame: pd.DataFrame) -> np.ndarray:
    return replay(OnlineFeatureComputer(config, InMemoryStateStore(), dtype=np.float64), frame)


@pytest.mark.parametrize(
    "config",
    [
        FeaturesConfig(),
        FeaturesConfig(
            windows_days=[2, 5], label_delay_days=3, night_end_hour=4, amount_max_window_days=9
        ),
        FeaturesConfig(windows_days=[1, 7], extended=False),
    ],
    ids=["default", "other-windows", "handbook-only"],
)
def test_replay_matches_offline_on_edge_heavy_stream(config: FeaturesConfig) -> None:
    frame = edge_heavy_stream()
    offline = compute_features_frame(config, frame)
    online = replay_in_memory(config, frame)
    assert (
        offline["transaction_id"].tolist()
        == frame.sort_values(["tx_datetime", "transaction_id"])["transaction_id"].tolist()
    )
    assert_parity(config, offline, online)


def test_replay_matches_offline_on_simulated_data(small_settings: Settings) -> None:
    data = small_settings.data.model_copy(update={"n_days": 15})
    frame = simulate_transactions(data)
    config = small_settings.features
    assert_parity(config, compute_features_frame(config, frame), replay_in_memory(config, frame))
