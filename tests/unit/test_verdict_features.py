"""Verdict features: offline (DuckDB over a verdict log) == online (state store), point in time."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from feature_support import (
    VERDICTS as CONFIG,
)
from feature_support import (
    assert_parity,
    edge_heavy_stream,
    offline_with_verdicts,
    verdict_log,
)
from vigil.config import FeaturesConfig
from vigil.features import definitions as fd
from vigil.features.offline import compute_features_frame
from vigil.features.online import OnlineFeatureComputer
from vigil.features.replay import replay
from vigil.features.state import InMemoryStateStore, StateStore, Transaction
from vigil.features.verdict_sql import (
    verdict_features_frame,
    verdict_log_frame,
)
from vigil.features.verdicts import Verdict


@pytest.mark.parametrize(
    "config",
    [CONFIG, FeaturesConfig(verdicts=True, windows_days=[2, 5], label_delay_days=3, extra=[])],
    ids=["default-groups", "other-windows"],
)
def test_replay_with_verdicts_matches_offline(config: FeaturesConfig) -> None:
    frame = edge_heavy_stream()
    log = verdict_log(frame)
    offline = offline_with_verdicts(config, frame, log)
    computer = OnlineFeatureComputer(config, InMemoryStateStore(), dtype=np.float64)
    online = replay(computer, frame, log)
    assert_parity(config, offline, online)
    for name in fd.verdict_feature_names(config):  # every verdict feature took several values
        assert offline[name].nunique() > 2, name


def test_verdicts_off_leaves_the_stream_features_unchanged() -> None:
    frame = edge_heavy_stream(n=600)
    plain = compute_features_frame(FeaturesConfig(), frame)
    with_group = compute_features_frame(FeaturesConfig(verdicts=True), frame)
    names = fd.feature_names(FeaturesConfig())
    assert fd.feature_names(FeaturesConfig(verdicts=True))[: len(names)] == names
    pd.testing.assert_frame_equal(plain, with_group)


T = datetime(2018, 5, 1, 12, 0, 0)


def one_verdict(reviewed_at: datetime, fraud: bool = True, tx_id: int = 1) -> Verdict:
    return Verdict(tx_id, 7, 9, T - timedelta(days=1), fraud, True, reviewed_at)


@pytest.mark.parametrize(
    ("reviewed_at", "seen"),
    [
        (T - timedelta(microseconds=1), True),
        (T, False),  # strictly before t: a verdict given at t is not known at t
        (T + timedelta(hours=1), False),
    ],
)
def test_a_verdict_counts_only_once_reviewed_before_the_transaction(
    reviewed_at: datetime, seen: bool
) -> None:
    verdicts = [one_verdict(reviewed_at)]
    tx = Transaction(2, T, 7, 9, 10.0)
    store: StateStore = InMemoryStateStore()
    computer = OnlineFeatureComputer(CONFIG, store, dtype=np.float64)
    computer.add_verdicts(verdicts)
    online = computer.features_for(tx)[-8:]
    transactions = pd.DataFrame(
        {"transaction_id": [2], "customer_id": [7], "terminal_id": [9], "tx_datetime": [T]}
    )
    offline = verdict_features_frame(CONFIG, transactions, verdict_log_frame(verdicts))
    expected = [1.0] * 8 if seen else [0.0] * 8
    np.testing.assert_array_equal(online, expected)
    np.testing.assert_array_equal(offline[fd.verdict_feature_names(CONFIG)].to_numpy()[0], expected)


def test_the_latest_verdict_of_a_transaction_replaces_the_earlier_one() -> None:
    computer = OnlineFeatureComputer(CONFIG, InMemoryStateStore(), dtype=np.float64)
    computer.add_verdicts([one_verdict(T - timedelta(hours=5), fraud=True)])
    computer.add_verdicts([one_verdict(T - timedelta(hours=2), fraud=False)])
    computer.add_verdicts([one_verdict(T - timedelta(hours=9), fraud=True)])  # older: ignored
    values = computer.features_for(Transaction(2, T, 7, 9, 10.0))[-8:]
    np.testing.assert_array_equal(values, [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0])


def test_verdict_log_must_have_its_columns() -> None:
    frame = edge_heavy_stream(n=10)
    with pytest.raises(ValueError, match="lacks columns"):
        verdict_features_frame(CONFIG, frame, pd.DataFrame({"transaction_id": [1]}))
