"""Distributed backfills: buckets on a local Dask cluster equal the single-node build."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from onnx_factory import make_metadata, mlp_model, save
from vigil.backfill import (
    DaskEngine,
    Engine,
    LocalEngine,
    build_feature_table_distributed,
    make_engine,
    predict_distributed,
)
from vigil.backfill.buckets import plan, read_bucket_input, side_columns
from vigil.config import Settings
from vigil.data.simulate import simulate_transactions
from vigil.features import definitions as fd
from vigil.features.offline import build_feature_table
from vigil.inference.batch import predict_file

ORDER = ["tx_datetime", "transaction_id"]
# Every value equal, bit for bit: the offline engine's window sums are exact sums rounded once,
# so a bucket with its look-back margin computes what the whole history does.
SAME_VALUES = {"check_exact": True}


@pytest.fixture(scope="module")
def dask_engine() -> Iterator[Engine]:
    """A real local Dask cluster: a scheduler and two worker processes."""
    engine = DaskEngine(workers=2)
    yield engine
    engine.close()


@pytest.fixture
def source(small_settings: Settings, tmp_path: Path) -> Path:
    """80 days of a small simulated world in tie order, as one Parquet file."""
    data = small_settings.data.model_copy(update={"n_days": 80})
    frame = simulate_transactions(data).sort_values(ORDER, ignore_index=True)
    path = tmp_path / "raw.parquet"
    frame.to_parquet(path, index=False)
    return path


def single_node(settings: Settings, source: Path, tmp_path: Path) -> pd.DataFrame:
    build_feature_table(settings.features, source, tmp_path / "single.parquet", progress=False)
    return pd.read_parquet(tmp_path / "single.parquet")


def test_plan_covers_both_sides_every_hash_bucket_and_whole_days(source: Path) -> None:
    buckets = plan(source, hash_buckets=3, slices=4)
    assert len(buckets) == 2 * 3 * 4
    slices = sorted({b.time_slice for b in buckets}, key=lambda s: s.index)
    assert [s.index for s in slices] == [0, 1, 2, 3]
    assert all(a.hi == b.lo for a, b in itertools.pairwise(slices))
    assert all(s.lo.time() == s.hi.time() == s.lo.min.time() for s in slices)
    assert (slices[-1].hi - slices[0].lo).days == 80


def test_a_bucket_reads_its_entities_with_the_look_back_margin(
    small_settings: Settings, source: Path
) -> None:
    margin = fd.feature_lookback_days(small_settings.features)
    bucket = plan(source, hash_buckets=2, slices=4)[-1]  # last slice, terminal side
    rows = read_bucket_input(source, bucket, margin).to_pandas()
    assert rows["tx_datetime"].min() >= bucket.time_slice.lo - timedelta(days=margin)
    assert rows["tx_datetime"].min() < bucket.time_slice.lo  # the margin is read
    other = plan(source, hash_buckets=2, slices=4)[-2]  # same slice, other hash bucket
    others = read_bucket_input(source, other, margin).to_pandas()
    assert set(rows["terminal_id"]).isdisjoint(others["terminal_id"])


def test_every_feature_belongs_to_one_side(small_settings: Settings) -> None:
    customer = side_columns(small_settings.features, "customer")
    terminal = side_columns(small_settings.features, "terminal")
    assert sorted(customer + terminal) == sorted(fd.feature_names(small_settings.features))


@pytest.mark.parametrize("engine_name", ["local", "dask"])
def test_distributed_build_equals_the_single_node_build_exactly(
    engine_name: str,
    dask_engine: Engine,
    small_settings: Settings,
    source: Path,
    tmp_path: Path,
) -> None:
    engine = dask_engine if engine_name == "dask" else LocalEngine()
    out = tmp_path / "distributed.parquet"
    summary = build_feature_table_distributed(
        small_settings.features, source, out, engine, hash_buckets=3, slices=4
    )
    expected = single_node(small_settings, source, tmp_path)
    assert summary.rows == len(expected) and summary.buckets == 24 and summary.slices == 4
    pd.testing.assert_frame_equal(pd.read_parquet(out), expected, **SAME_VALUES)


def test_distributed_scoring_equals_vigil_predict_exactly(
    dask_engine: Engine, small_settings: Settings, source: Path, tmp_path: Path
) -> None:
    names = fd.feature_names(small_settings.features)
    features = single_node(small_settings, source, tmp_path)[names]
    metadata = make_metadata(names, feature_means=features.mean().tolist(), threshold=0.5)
    scales = (features.std() + 1e-6).tolist()
    model = save(mlp_model(metadata, feature_scales=scales), tmp_path / "m" / "model.onnx")
    single = tmp_path / "scores.parquet"
    predict_file(small_settings, source, single, model_path=model, progress=False)
    out = tmp_path / "distributed.parquet"
    summary = predict_distributed(
        small_settings, source, out, dask_engine, model_path=model, hash_buckets=2, slices=3
    )
    expected = pd.read_parquet(single)
    assert summary.rows == len(expected) and expected["score"].nunique() > len(expected) // 2
    pd.testing.assert_frame_equal(pd.read_parquet(out), expected, **SAME_VALUES)


def test_unknown_scheduler_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown scheduler"):
        make_engine("yarn", 2)


def test_cli_backfill_features_writes_the_single_node_table(
    small_settings: Settings, source: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from vigil.cli import app

    out = tmp_path / "cli.parquet"
    args = ["backfill", "features", "-i", str(source), "-o", str(out), "--scheduler", "local"]
    result = CliRunner().invoke(app, [*args, "--hash-buckets", "2", "--time-slices", "3"])
    assert result.exit_code == 0, result.output
    assert "from 12 buckets and 3 slices" in result.output
    expected = single_node(small_settings, source, tmp_path)
    pd.testing.assert_frame_equal(pd.read_parquet(out), expected, **SAME_VALUES)
