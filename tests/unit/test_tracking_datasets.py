"""The datasets a run logs to MLflow: a head of the rows, but the whole dataset's identity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vigil.training.tracking import ROWS_TAG, TRACKED_ROWS, RunDataset, _log_datasets


def _frame(rows: int) -> pd.DataFrame:
    ids = np.arange(rows)
    return pd.DataFrame({"transaction_id": ids, "x": ids * 0.5, "tx_fraud": ids % 2})


def test_datasets_sharing_their_head_but_not_their_length_get_other_digests(
    tmp_path: Path,
) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"file:{tmp_path / 'mlruns'}")
    run_id = client.create_run(client.create_experiment("datasets")).info.run_id
    shorter, longer = _frame(TRACKED_ROWS + 10), _frame(TRACKED_ROWS + 20)
    datasets = [
        RunDataset("training-a", "training", "features.parquet", shorter),
        RunDataset("testing-a", "testing", "features.parquet", longer),
        RunDataset("testing-b", "testing", "features.parquet", longer.head(50), rows=123),
    ]
    _log_datasets(client, run_id, datasets)
    inputs = client.get_run(run_id).inputs.dataset_inputs
    by_name = {i.dataset.name: i for i in inputs}
    rows = {name: {t.key: t.value for t in i.tags}[ROWS_TAG] for name, i in by_name.items()}
    assert rows == {
        "training-a": str(TRACKED_ROWS + 10),
        "testing-a": str(TRACKED_ROWS + 20),
        "testing-b": "123",
    }
    # The first TRACKED_ROWS rows are the same: the digest must still tell the datasets apart
    # (MLflow's own digest counts every row; a head of 10,000 rows alone would not).
    assert by_name["training-a"].dataset.digest != by_name["testing-a"].dataset.digest
