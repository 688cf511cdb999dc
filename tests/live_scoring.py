"""Scoring a stream as production does after a warm-up: labels fed as they fall due."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from vigil.config import FeaturesConfig
from vigil.data import schema
from vigil.features import definitions as fd
from vigil.features.offline import compute_features_frame
from vigil.features.online import OnlineFeatureComputer
from vigil.features.state import StateStore


def score_from(
    store: StateStore, frame: pd.DataFrame, since: datetime, config: FeaturesConfig
) -> np.ndarray:
    """Features of the transactions from ``since`` on, in event order.

    Before each transaction, every label due by its time (transaction time plus the label
    delay) and not due by ``since`` is fed: those due by ``since`` are the warm-up's job.
    """
    computer = OnlineFeatureComputer(config, store, dtype=np.float64)
    ordered = frame.sort_values([schema.TX_DATETIME, schema.TRANSACTION_ID])
    delay = timedelta(days=config.label_delay_days)
    due = ordered.assign(due=ordered[schema.TX_DATETIME] + delay).sort_values("due")
    due = due[due["due"] > since]
    fed, rows = 0, []
    for row in ordered[ordered[schema.TX_DATETIME] >= since].itertuples(index=False):
        while fed < len(due) and due["due"].iloc[fed] <= row.tx_datetime:
            label = due.iloc[fed]
            computer.add_label(
                int(label.transaction_id),
                int(label.customer_id),
                int(label.terminal_id),
                label.tx_datetime.to_pydatetime(),
                bool(label.tx_fraud),
            )
            fed += 1
        rows.append(computer.features_for(row._asdict()))
    return np.vstack(rows)


def offline_from(frame: pd.DataFrame, since: datetime, config: FeaturesConfig) -> np.ndarray:
    """The offline features of the same transactions, in the same order."""
    from vigil.features import definitions as fd
    from vigil.features.offline import compute_features_frame

    table = compute_features_frame(config, frame).set_index(schema.TRANSACTION_ID)
    ordered = frame.sort_values([schema.TX_DATETIME, schema.TRANSACTION_ID])
    ids = ordered[ordered[schema.TX_DATETIME] >= since][schema.TRANSACTION_ID]
    return table.loc[ids, fd.feature_names(config)].to_numpy()


def assert_matches_offline(online: np.ndarray, frame: pd.DataFrame, config: FeaturesConfig) -> None:
    """Replayed online features equal the offline SQL's: counts exactly, the rest to 1e-9."""
    names = fd.feature_names(config)
    offline = compute_features_frame(config, frame)[names].to_numpy()
    counts = [j for j, name in enumerate(names) if "_nb_" in name]
    np.testing.assert_array_equal(online[:, counts], offline[:, counts])
    np.testing.assert_allclose(online, offline, rtol=1e-9)
    assert offline[:, names.index(fd.terminal_risk(7))].max() > 0  # labels took part
    for name in fd.extra_feature_names(config):  # every extra feature took non-trivial values
        assert len(np.unique(offline[:, names.index(name)])) > 2, name
