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
from vigil.training.stream import ParquetRows, genuine_rate
from vigil.training.stream_eval import epoch_days, score_test_stream
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
    train = _in_memory(settings, path)[0]
    rows = _stream(settings, path)
    assert len(rows.groups) > 10 and len(rows) == len(train)
    streamed = np.concatenate([rows.features_of(g) for g in rows.groups])
    assert np.array_equal(streamed, train.features)
    assert np.array_equal(rows.labels(), train.labels)
    rows.close()


def test_the_stream_s_moments_are_those_of_the_transformed_rows(table: tuple[Path, Path]) -> None:
    root, path = table
    settings = _settings(root, "mlp")
    train = _in_memory(settings, path)[0]
    with _stream(settings, path) as rows:
        mean, std = rows.moments(np.log1p)
    logged = np.log1p(train.features.astype(np.float64))
    np.testing.assert_allclose(mean, logged.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(std, logged.std(axis=0), rtol=1e-4)


def test_the_streamed_test_set_is_the_split_s_and_scores_the_same(
    table: tuple[Path, Path], tmp_path: Path
) -> None:
    root, path = table
    settings = _settings(root, "lightgbm")
    train, validation, _, _ = _in_memory(settings, path)
    model, _ = fit_model(settings, train, validation, tmp_path)
    periods = Periods.from_config(settings.train)
    names = tuple(feature_names(settings.features))
    streamed = score_test_stream(path, names, periods, lambda x: predict_scores(model, x), 50)
    split_test = handbook_split(load_feature_table(settings).frame, settings.train).test
    got = streamed.scored
    assert np.array_equal(got.labels, split_test["tx_fraud"].to_numpy())
    assert np.array_equal(got.cards, split_test["customer_id"].to_numpy())
    assert np.array_equal(got.days, epoch_days(split_test["tx_datetime"].to_numpy()))
    assert np.array_equal(got.scores, predict_scores(model, feature_matrix(split_test, settings)))
    assert len(streamed.sample) == 50
    assert np.array_equal(streamed.sample["transaction_id"], split_test["transaction_id"][:50])


def _test_scoring_peak(
    path: Path, settings: Settings, copies: int, tmp_path: Path
) -> tuple[int, int]:
    """(test days' rows, traced peak bytes less the result arrays) of scoring the test set of
    ``copies`` times the table's rows.

    Each copy's rows are repeated inside every row group (same days), so the test set grows
    ``copies`` times while the row groups stay of ROW_GROUP rows.
    """
    original = pq.read_table(path)
    bigger = tmp_path / f"test-x{copies}.parquet"
    pq.write_table(pa.concat_tables([original] * copies).sort_by("tx_datetime"), bigger, ROW_GROUP)
    periods = Periods.from_config(settings.train)
    names = tuple(feature_names(settings.features))
    tracemalloc.start()
    with ParquetRows(bigger, names, periods.test_start, periods.test_end) as days:
        test_days = len(days)
    score_test_stream(bigger, names, periods, lambda x: x[:, 0].copy(), 10)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return test_days, peak - 21 * test_days  # the result: labels, scores, days, cards


def test_scoring_the_test_set_holds_a_row_group_not_the_test_set(
    table: tuple[Path, Path], tmp_path: Path
) -> None:
    root, path = table
    settings = _settings(root, "lightgbm")
    rows_1, peak_1 = _test_scoring_peak(path, settings, 1, tmp_path)
    rows_8, peak_8 = _test_scoring_peak(path, settings, 8, tmp_path)
    # What grows with the rows is per row group (its footer entry, its mask): a few bytes a
    # row, against 96 for the test week's float32 feature matrix, were it held.
    per_row = (peak_8 - peak_1) / (rows_8 - rows_1)
    assert per_row < 96 / 4


@pytest.mark.parametrize(
    ("genuines", "frauds", "max_rows", "rate"),
    [(900, 100, 1000, 1.0), (900, 100, 5000, 1.0), (900, 100, 550, 0.5), (1000, 0, 10, 0.01)],
)
def test_the_genuine_rate_keeps_the_fitting_rows_within_the_budget(
    genuines: int, frauds: int, max_rows: int, rate: float
) -> None:
    assert genuine_rate(genuines, frauds, max_rows) == pytest.approx(rate)


def test_the_frauds_alone_over_the_budget_are_refused() -> None:
    with pytest.raises(ValueError, match="frauds alone"):
        genuine_rate(900, 100, 100)


def test_sampling_keeps_every_fraud_and_weights_genuines_by_the_inverse_rate(
    table: tuple[Path, Path],
) -> None:
    root, path = table
    settings = _settings(root, "lightgbm")
    with _stream(settings, path) as rows:
        labels = rows.labels()
        frauds = int(labels.sum())
        budget = frauds + (len(labels) - frauds) // 4
        with (
            rows.sample_genuines(budget, seed=7) as sampled,
            rows.sample_genuines(budget, seed=7) as again,
            rows.sample_genuines(budget, seed=8) as other,
        ):
            kept = sampled.labels()
            rate = sampled.rate
            assert rate == pytest.approx(0.25, abs=1e-3)
            assert int(kept.sum()) == frauds  # every fraud
            assert abs(len(kept) - budget) < 0.1 * budget
            weights = sampled.weights()
            assert weights is not None
            assert np.all(weights[kept == 1] == 1)
            assert np.all(weights[kept == 0] == np.float32(1 / rate))
            features = np.concatenate([sampled.features_of(g) for g in sampled.groups])
            assert len(features) == len(kept)
            # Deterministic by seed: the same rows again, other rows with another seed.
            same = np.concatenate([again.features_of(g) for g in again.groups])
            assert np.array_equal(features, same)
            assert len(other) != len(sampled) or not np.array_equal(
                features, np.concatenate([other.features_of(g) for g in other.groups])
            )
        # Every row a weight of one: the in-memory fit's rows.
        with rows.sample_genuines(len(labels), seed=7) as whole:
            assert whole.rate == 1 and whole.weights() is None and len(whole) == len(labels)


def test_a_sampled_lightgbm_fit_stays_close_to_the_whole_fit(
    table: tuple[Path, Path], tmp_path: Path
) -> None:
    root, path = table
    settings = _settings(root, "lightgbm")
    _, validation, test, labels = _in_memory(settings, path)
    with _stream(settings, path) as rows:
        whole, _ = fit_model(settings, rows, validation, tmp_path / "whole")
        budget = int(rows.labels().sum()) + (len(rows) // 2)
    lightgbm = settings.model.lightgbm.model_copy(update={"max_fit_rows": budget})
    sampled_settings = settings.model_copy(
        update={"model": settings.model.model_copy(update={"lightgbm": lightgbm})}
    )
    with _stream(settings, path) as rows:
        sampled, _ = fit_model(sampled_settings, rows, validation, tmp_path / "sampled")
    ap_whole = average_precision(labels, predict_scores(whole, test))
    ap_sampled = average_precision(labels, predict_scores(sampled, test))
    assert not np.array_equal(predict_scores(sampled, test), predict_scores(whole, test))
    assert abs(ap_sampled - ap_whole) < 0.1 and ap_sampled > 2 * labels.mean()


def test_the_stream_closes_its_file(table: tuple[Path, Path]) -> None:
    root, path = table
    settings = _settings(root, "lightgbm")
    with _stream(settings, path) as rows:
        rows.labels()
    with pytest.raises(ValueError, match="closed file"):
        rows.labels()


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
    assert scorer.metadata.reason_baseline is None  # not computed when streamed: means instead
    _, _, test, _ = _in_memory(settings, path)
    booster_scores = predict_scores(
        fit_model(settings, _stream(settings, path), _in_memory(settings, path)[1], root / "x")[0],
        test,
    )
    np.testing.assert_allclose(scorer.score(test), booster_scores, atol=1e-5)
    assert 0 < result.metrics["test"]["average_precision"] <= 1


def test_a_zero_sample_keeps_no_rows_and_a_negative_one_is_refused(
    table: tuple[Path, Path],
) -> None:
    root, path = table
    settings = _settings(root, "lightgbm")
    periods = Periods.from_config(settings.train)
    names = tuple(feature_names(settings.features))

    def score(x: np.ndarray) -> np.ndarray:
        return x[:, 0].copy()

    full = score_test_stream(path, names, periods, score, 10)
    none = score_test_stream(path, names, periods, score, 0)
    assert none.sample.empty
    assert list(none.sample.columns) == list(full.sample.columns)
    assert np.array_equal(none.scored.scores, full.scored.scores)
    with pytest.raises(ValueError, match="sample_rows"):
        score_test_stream(path, names, periods, score, -1)
