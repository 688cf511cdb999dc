"""Verdict labels for a retrain (issue 17 item 5): the rows chosen, their labels, and the
retrain job reading them from the ``verdicts`` table."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from vigil.config import Settings
from vigil.data.io import write_partitioned
from vigil.data.simulate import simulate_transactions
from vigil.features.verdict_sql import verdict_log_frame
from vigil.features.verdicts import Verdict
from vigil.storage import create_db_engine, upgrade_database
from vigil.storage.cases import VerdictRecord, fetch_verdicts, insert_verdicts
from vigil.training.challenger import train_challenger
from vigil.training.splits import Periods
from vigil.training.verdict_labels import (
    stored_verdict_log,
    verdict_labelled_rows,
    with_verdict_labels,
)

T0 = datetime(2018, 5, 1)


def _rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "transaction_id": [1, 2, 3, 4, 5],
            "customer_id": [10, 10, 11, 12, 13],
            "terminal_id": [5, 6, 5, 7, 8],
            "tx_datetime": [T0 + timedelta(hours=h) for h in range(5)],
            "tx_fraud": pd.Series([0, 0, 1, 0, 1], dtype="int8"),
        }
    )


def _verdict(transaction_id: int, fraud: bool, reviewed_at: datetime) -> Verdict:
    return Verdict(transaction_id, 10, 5, T0, fraud, False, reviewed_at)


def test_reviewed_rows_are_kept_with_their_verdicts_and_the_rest_left_out() -> None:
    until = T0 + timedelta(days=1)
    log = verdict_log_frame(
        [
            _verdict(3, False, T0 + timedelta(hours=6)),  # the verdict, not the row's label
            _verdict(1, True, until),  # reviewed at the retrain: known
            _verdict(1, False, until),  # a label is final: the first verdict counts
            _verdict(4, True, until + timedelta(microseconds=1)),  # after the retrain
            _verdict(99, True, T0),  # not one of the rows
        ]
    )
    picked = verdict_labelled_rows(_rows(), log, until)
    assert picked["transaction_id"].tolist() == [1, 3]  # the rows' order
    assert picked["tx_fraud"].tolist() == [1, 0]
    assert picked["tx_fraud"].dtype == "int8"
    assert picked.index.tolist() == [0, 2]  # the rows' own index (feature rows stay aligned)


def test_the_delay_rows_reviewed_by_the_test_start_follow_the_fitting_rows() -> None:
    periods = Periods.from_config(
        Settings().train.model_copy(update={"train_start": (T0 - timedelta(days=14)).date()})
    )
    test_start = datetime.combine(periods.test_start, datetime.min.time())
    fitting = _rows().iloc[:2]
    delay = _rows().iloc[2:]
    log = verdict_log_frame(
        [_verdict(5, False, test_start), _verdict(4, True, test_start + timedelta(hours=1))]
    )
    rows = with_verdict_labels(fitting, delay, log, periods)
    assert rows["transaction_id"].tolist() == [1, 2, 5]
    assert rows["tx_fraud"].tolist() == [0, 0, 0]


def test_the_verdicts_table_reads_back_as_the_same_log(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'v.db'}"
    upgrade_database(url)
    engine = create_db_engine(url)
    records = [
        VerdictRecord(7, 10, 5, T0, True, True, T0 + timedelta(hours=2), "ana", T0.date()),
        VerdictRecord(8, 11, 6, T0, False, False, T0 + timedelta(hours=1), "ana", T0.date()),
    ]
    with engine.begin() as connection:
        insert_verdicts(connection, records)
    with engine.connect() as connection:
        log = stored_verdict_log(fetch_verdicts(connection))
    engine.dispose()
    expected = verdict_log_frame(
        [
            Verdict(8, 11, 6, T0, False, False, T0 + timedelta(hours=1)),
            Verdict(7, 10, 5, T0, True, True, T0 + timedelta(hours=2)),
        ]
    )
    pd.testing.assert_frame_equal(log, expected)


def test_the_retrain_job_fits_on_the_delay_days_reviewed_transactions(
    small_settings: Settings,
) -> None:
    """``retrain.verdict_labels``: the verdicts table's delay-period verdicts given by the
    test period's start join the fitting rows; other verdicts do not."""
    settings = small_settings.model_copy(
        update={"model": small_settings.model.model_copy(update={"kind": "logistic"})}
    )
    frame = simulate_transactions(settings.data)
    write_partitioned(frame, settings.data.raw_dir)
    url = settings.storage.database_url
    upgrade_database(url)
    periods = Periods.from_config(settings.train)
    day = frame["tx_datetime"].dt.date
    delay = frame[(day >= periods.delay_start) & (day < periods.test_start)]
    test_start = datetime.combine(periods.test_start, datetime.min.time())

    def record(row: pd.Series, reviewed_at: datetime) -> VerdictRecord:
        return VerdictRecord(
            int(row["transaction_id"]),
            int(row["customer_id"]),
            int(row["terminal_id"]),
            row["tx_datetime"].to_pydatetime(),
            not bool(row["tx_fraud"]),  # a verdict the delayed label would contradict
            False,
            reviewed_at,
            "ana",
            row["tx_datetime"].date(),
        )

    known = [record(row, test_start) for _, row in delay.iloc[:12].iterrows()]
    late = [record(delay.iloc[12], test_start + timedelta(hours=1))]
    training_day = frame[day < periods.validation_start].iloc[0]
    test_day = frame[day >= periods.test_start].iloc[0]
    others = [record(training_day, test_start), record(test_day, test_start)]
    engine = create_db_engine(url)
    with engine.begin() as connection:
        insert_verdicts(connection, known + late + others)
    engine.dispose()

    def fitted(verdict_labels: bool) -> dict[str, int]:
        retrain = settings.retrain.model_copy(update={"verdict_labels": verdict_labels})
        challenger = train_challenger(settings.model_copy(update={"retrain": retrain}))
        summary = json.loads((challenger.model.parent / "metrics.json").read_text())
        return {k: summary[k] for k in ("fitting_rows", "verdict_labelled_rows")}

    plain, with_verdicts = fitted(False), fitted(True)
    assert plain["verdict_labelled_rows"] == 0
    assert with_verdicts["verdict_labelled_rows"] == len(known)
    assert with_verdicts["fitting_rows"] == plain["fitting_rows"] + len(known)
