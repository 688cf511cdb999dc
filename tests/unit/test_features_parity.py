"""Offline == online: the same stream through DuckDB and through the in-memory state store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from feature_support import assert_parity, edge_heavy_stream
from vigil.config import FeaturesConfig, Settings
from vigil.data.simulate import simulate_transactions
from vigil.features.offline import compute_features_frame
from vigil.features.online import OnlineFeatureComputer
from vigil.features.replay import replay
from vigil.features.state import InMemoryStateStore


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
