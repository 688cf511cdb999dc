"""Warming a state store from a dataset: afterwards it scores like a store live all along."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from live_scoring import offline_from, score_from
from vigil.cli import app
from vigil.config import FeaturesConfig, Settings
from vigil.data import schema
from vigil.data.simulate import simulate_transactions
from vigil.features.online import OnlineFeatureComputer
from vigil.features.replay import as_transactions, in_event_order
from vigil.features.state import InMemoryStateStore
from vigil.features.warmup import plan_warmup, warm_state

CONFIG = FeaturesConfig()
UNTIL = datetime(2018, 5, 21)  # day 50 of the world below; the tail is the next 5 days


@pytest.fixture(scope="module")
def world() -> pd.DataFrame:
    settings = Settings().data.model_copy(
        update={"n_customers": 60, "n_terminals": 60, "n_days": 55, "seed": 5}
    )
    return simulate_transactions(settings)


def test_a_warmed_store_scores_the_tail_like_offline(world: pd.DataFrame) -> None:
    expected = offline_from(world, UNTIL, CONFIG)

    warmed = InMemoryStateStore()
    computer = OnlineFeatureComputer(CONFIG, warmed, dtype=np.float64)
    done = warm_state(computer, world[world[schema.TX_DATETIME] < UNTIL], UNTIL, batch_size=64)
    np.testing.assert_allclose(score_from(warmed, world, UNTIL, CONFIG), expected, rtol=1e-9)

    # the warm-up looked back exactly its horizon, and that was needed: a cold store differs
    assert done.since == UNTIL - timedelta(days=30 + 7)
    assert 0 < done.labels < done.transactions
    cold = score_from(InMemoryStateStore(), world, UNTIL, CONFIG)
    assert not np.allclose(cold, expected)


def test_pending_labels_stand_for_the_labels_arriving_during_a_replay(
    world: pd.DataFrame,
) -> None:
    # The tail (5 days) is shorter than the label delay: a replay of it brings no label due
    # within it, so only the warm-up's pending labels can make its features match offline.
    expected = offline_from(world, UNTIL, CONFIG)
    computer = OnlineFeatureComputer(CONFIG, InMemoryStateStore(), dtype=np.float64)
    before = world[world[schema.TX_DATETIME] < UNTIL]
    done = warm_state(computer, before, UNTIL, pending_labels=True)
    assert done.labels == done.transactions
    tail = as_transactions(in_event_order(world[world[schema.TX_DATETIME] >= UNTIL]))
    np.testing.assert_allclose(computer.features_for_batch(tail), expected, rtol=1e-9)
    due_only = OnlineFeatureComputer(CONFIG, InMemoryStateStore(), dtype=np.float64)
    warm_state(due_only, before, UNTIL)
    assert not np.allclose(due_only.features_for_batch(tail), expected)


def test_plan_counts_the_horizon_only(world: pd.DataFrame) -> None:
    computer = OnlineFeatureComputer(CONFIG, InMemoryStateStore())
    plan = plan_warmup(computer, world, UNTIL)
    times = world[schema.TX_DATETIME]
    assert plan.transactions == int(((times > plan.since) & (times < UNTIL)).sum())
    delay = timedelta(days=7)
    assert plan.labels == int(((times > plan.since) & (times + delay <= UNTIL)).sum())
    default = plan_warmup(computer, world)  # until defaults to just after the last row
    assert default.until == times.max().to_pydatetime() + timedelta(microseconds=1)


def test_data_without_labels_warms_transactions_only(world: pd.DataFrame) -> None:
    computer = OnlineFeatureComputer(CONFIG, InMemoryStateStore())
    done = warm_state(computer, world.drop(columns=[schema.TX_FRAUD]), UNTIL)
    assert done.labels == 0
    assert done.transactions == plan_warmup(computer, world, UNTIL).transactions > 0


def test_cli_refuses_an_in_process_store(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["warm-state", "--input", str(tmp_path), "--set", "storage.state_url=memory://"]
    )
    assert result.exit_code == 1
    assert "storage.state_url is memory://" in result.output


def test_cli_names_an_unreachable_store_without_its_password(
    world: pd.DataFrame, tmp_path: Path
) -> None:
    world.to_parquet(tmp_path / "history.parquet")
    result = CliRunner().invoke(
        app,
        [
            "warm-state", "--input", str(tmp_path / "history.parquet"),
            "--set", "storage.state_url=redis://:hunter2@127.0.0.1:1/0",
        ],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "state store unreachable at redis://:**********@127.0.0.1:1/0" in result.output
    assert "hunter2" not in result.output


def _store_traffic(url: str, traffic: pd.DataFrame) -> None:
    """What the services stored of ``traffic``: its transactions and their labels."""
    from sqlalchemy import insert

    from vigil.storage.engine import create_db_engine
    from vigil.storage.tables import labels, metadata, transactions

    engine = create_db_engine(url)
    metadata.create_all(engine, tables=[transactions, labels])
    now = datetime(2030, 1, 1)
    columns = [
        schema.TRANSACTION_ID, schema.TX_DATETIME, schema.CUSTOMER_ID, schema.TERMINAL_ID,
        schema.TX_AMOUNT,
    ]  # fmt: skip
    rows = traffic[columns].to_dict("records")
    with engine.begin() as connection:
        connection.execute(insert(transactions), [{**r, "received_at": now} for r in rows])
        connection.execute(
            insert(labels),
            [
                {
                    "transaction_id": int(i), "tx_fraud": int(f), "labelled_at": now,
                    "received_at": now,
                }
                for i, f in zip(traffic[schema.TRANSACTION_ID], traffic[schema.TX_FRAUD],
                                strict=True)
            ],
        )  # fmt: skip
    engine.dispose()


def test_a_store_warmed_with_the_stored_traffic_scores_like_offline(
    world: pd.DataFrame, tmp_path: Path
) -> None:
    """After a Redis loss the dataset (the history before the traffic) is not enough: the
    warm-up adds what the services stored since, and then scores like a store live all along."""
    from vigil.features.warmup import stored_transactions, with_stored

    traffic_start = UNTIL - timedelta(days=20)
    times = world[schema.TX_DATETIME]
    history = world[times < traffic_start]
    url = f"sqlite:///{tmp_path / 'vigil.db'}"
    _store_traffic(url, world[(times >= traffic_start) & (times < UNTIL)])
    expected = offline_from(world, UNTIL, CONFIG)

    horizon_us = OnlineFeatureComputer(CONFIG, InMemoryStateStore()).spec.horizon_us
    stored = stored_transactions(url, horizon_us)
    assert stored[schema.TX_DATETIME].min() >= traffic_start
    warmed = InMemoryStateStore()
    computer = OnlineFeatureComputer(CONFIG, warmed, dtype=np.float64)
    done = warm_state(computer, with_stored(history, stored), UNTIL)
    assert done.since == UNTIL - timedelta(days=30 + 7)
    np.testing.assert_allclose(score_from(warmed, world, UNTIL, CONFIG), expected, rtol=1e-9)

    history_only = InMemoryStateStore()
    warm_state(OnlineFeatureComputer(CONFIG, history_only), history, UNTIL)
    assert not np.allclose(score_from(history_only, world, UNTIL, CONFIG), expected)


def test_a_stored_transaction_without_a_label_keeps_the_input_s_label() -> None:
    """The input and the database can hold the same transaction (a world replayed through the
    API); labels reach the database late, so a stored row without one keeps the input's, and
    a stored label wins over the input's."""
    from vigil.features.warmup import with_stored

    def frame(ids: list[int], labels: list[object]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                schema.TRANSACTION_ID: ids,
                schema.TX_DATETIME: pd.to_datetime([f"2018-04-0{i}" for i in ids]),
                schema.CUSTOMER_ID: 1,
                schema.TERMINAL_ID: 2,
                schema.TX_AMOUNT: [float(i) for i in ids],
                schema.TX_FRAUD: pd.array(labels, dtype="Int8"),
            }
        )

    merged = with_stored(frame([1, 2, 3], [1, 1, 0]), frame([2, 3, 4], [pd.NA, 1, pd.NA]))
    by_id = merged.set_index(schema.TRANSACTION_ID)[schema.TX_FRAUD]
    assert by_id.fillna(-1).to_dict() == {1: 1, 2: 1, 3: 1, 4: -1}  # -1: no label yet


def test_serve_warm_from_holds_the_dataset_and_the_stored_traffic(
    world: pd.DataFrame, tmp_path: Path
) -> None:
    """``vigil serve --warm-from``: its in-process store scores like a store live all along."""
    from vigil.cli.serve_commands import warmed_store
    from vigil.config import build_settings

    traffic_start = UNTIL - timedelta(days=20)
    times = world[schema.TX_DATETIME]
    world[times < traffic_start].to_parquet(tmp_path / "history.parquet")
    url = f"sqlite:///{tmp_path / 'vigil.db'}"
    _store_traffic(url, world[(times >= traffic_start) & (times < UNTIL)])
    settings = build_settings({"storage": {"database_url": url}})
    store = warmed_store(settings, tmp_path / "history.parquet")
    # warmed as of just after the newest transaction it knows (the last one before UNTIL)
    since = times[times < UNTIL].max().to_pydatetime() + timedelta(microseconds=1)
    expected = offline_from(world, since, CONFIG)
    np.testing.assert_allclose(score_from(store, world, since, CONFIG), expected, rtol=1e-9)
    cold = score_from(InMemoryStateStore(), world, since, CONFIG)
    assert not np.allclose(cold, expected)


@pytest.mark.parametrize(
    "arguments",
    [["--workers", "2"], ["--set", "storage.state_url=redis://127.0.0.1:1/0"]],
)
def test_serve_warms_only_the_in_process_store_of_one_worker(
    tmp_path: Path, arguments: list[str]
) -> None:
    result = CliRunner().invoke(app, ["serve", "--warm-from", str(tmp_path), *arguments])
    assert result.exit_code == 1
    assert "with `vigil warm-state` instead" in result.output
