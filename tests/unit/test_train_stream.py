"""Training streamed from the feature Parquet equals training on the same rows in memory.

A tiny world's feature table written in row groups of 100 rows: LightGBM from the stream is
the in-memory fit (same bins, same trees, same scores); the MLP sees another row order, so
its test AP must lie within 0.1 of the in-memory fit's; the loader never holds more than one
buffer, whatever the number of rows.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from training_support import tiny_world
from vigil.config import Settings, build_settings
from vigil.data.simulate import simulate_transactions
from vigil.features.definitions import feature_names
from vigil.fraud_metrics import average_precision
from vigil.inference.scorer import OnnxScorer
from vigil.models.kinds import predict_scores
from vigil.training.data import feature_matrix, load_feature_table
from vigil.training.run import fit_model, run_streamed_training
from vigil.training.splits import Periods, handbook_split
from vigil.training.stream import ParquetRows, read_protocol_frame
from vigil.training.trainer import Dataset

ROW_GROUP = 100


def _settings(root: Path, kind: str) -> Settings:
    tree = tiny_world(customers=150)
    tree["data"]["raw_dir"] = str(root / "raw.parquet")
    tree["train"]["runs_dir"] = str(root / "runs")
    tree["model"]["kind"] = kind
    tree["tracking"] = {"mlflow_uri": f"file:{root / 'mlruns'}"}
    return build_settings(tree)


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(root, feature Parquet in row groups of ROW_GROUP rows)."""
    root = tmp_path_factory.mktemp("stream")
    settings = _settings(root, "mlp")
    simulate_transactions(settings.data).to_parquet(settings.data.raw_dir)
    frame = load_feature_table(settings).frame
    path = root / "features.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, ROW_GROUP)
    return root, path


def _in_memory(settings: Settings, path: Path) -> tuple[Dataset, Dataset, np.ndarray, np.ndarray]:
    split = handbook_split(load_feature_table(settings).frame, settings.train)
    train, validation = (
        Dataset(feature_matrix(f, settings), f["tx_fraud"].to_numpy(np.int8))
        for f in (split.train, split.validation)
    )
    return (
        train,
        validation,
        feature_matrix(split.test, settings),
        split.test["tx_fraud"].to_numpy(),
    )


def _stream(settings: Settings, path: Path) -> ParquetRows:
    periods = Periods.from_config(settings.train)
    names = tuple(feature_names(settings.features))
    return ParquetRows(path, names, periods.fit_start, periods.validation_start, buffer_rows=600)


def test_the_stream_reads_the_split_rows(table: tuple[Path, Path]) -> None:
    root, path = table
    settings = _settings(root, "mlp")
    train, _, test, _ = _in_memory(settings, path)
    rows = _stream(settings, path)
    assert len(rows.groups) > 10 and len(rows) == len(train)
    streamed = np.concatenate([rows.features_of(g) for g in rows.groups])
    assert np.array_equal(streamed, train.features)
    assert np.array_equal(rows.labels(), train.labels)
    periods = Periods.from_config(settings.train)
    names = feature_names(settings.features)
    protocol = handbook_split(read_protocol_frame(path, names, periods), settings.train)
    assert np.array_equal(feature_matrix(protocol.test, settings), test)


def test_lightgbm_from_the_stream_is_the_in_memory_fit(
    table: tuple[Path, Path], tmp_path: Path
) -> None:
    root, path = table
    settings = _settings(root, "lightgbm")
    train, validation, test, _ = _in_memory(settings, path)
    in_memory, _ = fit_model(settings, train, validation, tmp_path / "memory")
    streamed, _ = fit_model(settings, _stream(settings, path), validation, tmp_path / "stream")
    assert np.array_equal(predict_scores(streamed, test), predict_scores(in_memory, test))


def test_the_mlp_from_the_stream_matches_the_in_memory_fit(
    table: tuple[Path, Path], tmp_path: Path
) -> None:
    root, path = table
    settings = _settings(root, "mlp")
    train, validation, test, labels = _in_memory(settings, path)
    in_memory, _ = fit_model(settings, train, validation, tmp_path / "memory")
    streamed, history = fit_model(settings, _stream(settings, path), validation, tmp_path / "s")
    assert 1 <= len(history) <= settings.train.epochs
    # Same scaler (float64 sums against numpy's float32 pairwise sums) ...
    np.testing.assert_allclose(streamed.feature_mean, in_memory.feature_mean, rtol=1e-4)
    np.testing.assert_allclose(streamed.feature_scale, in_memory.feature_scale, rtol=1e-3)
    # ... and, another row order, a model as good within 0.1 of test AP (and not random).
    ap_stream = average_precision(labels, predict_scores(streamed, test))
    ap_memory = average_precision(labels, predict_scores(in_memory, test))
    assert abs(ap_stream - ap_memory) < 0.1 and ap_stream > 2 * labels.mean()


def _epoch_peak(path: Path, settings: Settings, copies: int, tmp_path: Path) -> tuple[int, int]:
    """(rows, traced peak bytes of one streamed epoch) on ``copies`` times the table."""
    original = pq.read_table(path)
    bigger = tmp_path / f"x{copies}.parquet"
    pq.write_table(pa.concat_tables([original] * copies), bigger, ROW_GROUP)
    rows = _stream(settings, bigger)
    tracemalloc.start()
    for _ in rows.batches(256, np.random.default_rng(0)):
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert rows.largest_read < rows.buffer_rows + ROW_GROUP
    return len(rows), peak


def test_the_loader_holds_one_buffer_whatever_the_rows(
    table: tuple[Path, Path], tmp_path: Path
) -> None:
    root, path = table
    settings = _settings(root, "mlp")
    rows_1, peak_1 = _epoch_peak(path, settings, 1, tmp_path)
    rows_4, peak_4 = _epoch_peak(path, settings, 4, tmp_path)
    assert rows_4 == 4 * rows_1
    assert peak_4 < 1.5 * peak_1


def test_a_streamed_run_records_what_an_in_memory_run_does(table: tuple[Path, Path]) -> None:
    root, path = table
    settings = _settings(root, "lightgbm")
    result = run_streamed_training(settings, path)
    assert result.metrics["streamed"] is True and result.metrics["dataset"]["path"] == str(path)
    scorer = OnnxScorer.load(result.run_dir / "model.onnx")
    assert scorer.metadata.model_kind == "lightgbm"
    _, _, test, _ = _in_memory(settings, path)
    booster_scores = predict_scores(
        fit_model(settings, _stream(settings, path), _in_memory(settings, path)[1], root / "x")[0],
        test,
    )
    np.testing.assert_allclose(scorer.score(test), booster_scores, atol=1e-5)
    assert 0 < result.metrics["test"]["average_precision"] <= 1
