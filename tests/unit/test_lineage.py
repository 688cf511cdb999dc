"""Lineage names the data trained on: the world its files record, else its content hash."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from vigil.cli import app
from vigil.config import DataConfig, Settings
from vigil.data.io import read_transactions, write_partitioned
from vigil.data.origin import SimulatedWorld, recorded_world
from vigil.tracking.lineage import TAG_DATA_SHA256, TAG_DATASET_VERSION, lineage_tags
from vigil.training.provenance import dataset_hash

# The demo's way: a smaller world than configs/vigil.yaml's 5,000 customers.
WORLD = ["--set", "data.n_customers=1000", "--set", "data.n_terminals=2000"]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world") / "raw"
    args = ["generate", *WORLD, "--set", "data.n_days=3", "--out", str(out), "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


def version(data: Path) -> str:
    return lineage_tags(data, dataset_hash(data))[TAG_DATASET_VERSION]


def test_a_generated_world_is_named_by_its_files_not_by_the_config(generated: Path) -> None:
    assert Settings().data.n_customers == 5000  # what a later `vigil train` is configured with
    assert version(generated) == "sim-1000c-2000t-3d-s0-base"
    world = recorded_world(generated)
    assert world is not None and (world.n_terminals, world.seed) == (2000, 0)


@pytest.mark.parametrize(
    ("drift", "expected"),
    [
        ({}, "sim-1000c-10000t-90d-s0-base"),
        (
            {"scenario": "amount_inflation", "start_day": 60},
            "sim-1000c-10000t-90d-s0-drift-amount_inflation-d60",
        ),
    ],
)
def test_world_name_shows_size_seed_and_drift(drift: dict, expected: str) -> None:
    config = DataConfig.model_validate({"n_customers": 1000, "n_days": 90, "drift": drift})
    assert SimulatedWorld.of(config).name == expected


def test_data_without_a_recorded_world_is_named_by_its_bytes(
    generated: Path, tmp_path: Path
) -> None:
    published = tmp_path / "published.parquet"
    read_transactions(generated).to_parquet(published)  # as the handbook's file: no world
    tags = lineage_tags(published, dataset_hash(published))
    assert tags[TAG_DATASET_VERSION] == f"external-{tags[TAG_DATA_SHA256][:12]}"

    copy = tmp_path / "elsewhere" / "renamed.parquet"
    copy.parent.mkdir()
    shutil.copyfile(published, copy)
    assert version(copy) == tags[TAG_DATASET_VERSION]  # the same bytes, the same name
    read_transactions(generated).head(10).to_parquet(copy)
    assert version(copy) != tags[TAG_DATASET_VERSION]


def test_rows_added_to_a_world_make_it_external_and_still_read(
    generated: Path, tmp_path: Path
) -> None:
    grown = tmp_path / "raw"
    shutil.copytree(generated, grown)
    first = read_transactions(generated)
    new_ids = first["transaction_id"].max() + 1 + pd.RangeIndex(5)
    added = first.head(5).assign(transaction_id=new_ids)
    write_partitioned(added, grown, part="part-added")  # as PUT /add_data: no world recorded
    assert recorded_world(grown) is None
    assert version(grown).startswith("external-")
    assert len(read_transactions(grown)) == len(first) + 5


def test_a_csv_or_missing_data(tmp_path: Path) -> None:
    csv = tmp_path / "tx.csv"
    csv.write_text("x\n1\n")
    assert version(csv) == f"external-{dataset_hash(csv)[:12]}"
    with pytest.raises(FileNotFoundError):
        lineage_tags(tmp_path / "absent", "0" * 64)
