"""The DVC evaluate/hold-out steps: plot series computed by hand, hold-out cut by date."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vigil.training.evaluate import precision_recall_points, write_holdout


def test_precision_recall_points_by_hand() -> None:
    labels = np.array([1, 0, 1, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.1])
    # Flag the top 1, 2, 3, 4: TP 1, 1, 2, 2 of 2 frauds.
    curve = precision_recall_points(labels, scores, points=4)
    assert curve["recall"].tolist() == [0.5, 0.5, 1.0, 1.0]
    assert curve["precision"].tolist() == pytest.approx([1.0, 0.5, 2 / 3, 0.5])


def test_holdout_keeps_rows_from_the_start_day(tmp_path: Path) -> None:
    features = tmp_path / "features.parquet"
    frame = pd.DataFrame(
        {
            "transaction_id": [1, 2, 3],
            "tx_datetime": pd.to_datetime(
                ["2018-06-23 23:59", "2018-06-24 00:00", "2018-06-25 00:00"]
            ),
        }
    )
    frame.to_parquet(features)
    out = tmp_path / "holdout.parquet"
    assert write_holdout(features, date(2018, 6, 24), out) == 2
    assert pd.read_parquet(out)["transaction_id"].tolist() == [2, 3]
    with pytest.raises(ValueError, match="no transaction"):
        write_holdout(features, date(2019, 1, 1), out)
