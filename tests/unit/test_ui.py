"""The Streamlit UI run headless with AppTest: each page against a tiny ONNX model and SQLite."""

from __future__ import annotations

import dataclasses
import os
import sys
from datetime import UTC, date, datetime, time
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from streamlit.testing.v1 import AppTest

from api_support import serve_in_thread
from onnx_factory import logistic_model, make_metadata, save
from storage_support import prediction_record
from vigil.config import Settings, build_settings
from vigil.data import schema
from vigil.data.simulate import simulate_transactions
from vigil.features import InMemoryStateStore, OnlineFeatureComputer, feature_names
from vigil.features.offline import compute_features_frame
from vigil.inference.metadata import ModelMetadata
from vigil.inference.scorer import OnnxScorer
from vigil.serving import create_app
from vigil.storage import (
    LabelRecord,
    PredictionRecord,
    create_db_engine,
    insert_labels,
    insert_prediction_records,
    upgrade_database,
)
from vigil.storage.analytics import (
    AnalyticsFilter,
    HistoryFilter,
    daily_summary,
    prediction_history,
    score_histogram,
)
from vigil.ui import app as ui_app

APP = Path(ui_app.__file__)
THRESHOLD = 0.5
VERSION = "ui-test-1"


def default_settings() -> Settings:
    return build_settings({})


def tiny_model(path: Path) -> Path:
    """score = sigmoid(0.02 * amount - 3): 57.16 -> 0.135, 300 -> 0.953 (threshold 0.5)."""
    names = feature_names(default_settings().features)
    weights = [0.02 if name == schema.TX_AMOUNT else 0.0 for name in names]
    metadata = make_metadata(names, threshold=THRESHOLD, model_version=VERSION)
    metadata = ModelMetadata.model_validate(
        {**metadata.model_dump(), "metrics": {"auc_roc": 0.91, "average_precision": 0.62}}
    )
    return save(logistic_model(weights, -3.0, metadata), path)


@pytest.fixture
def paths(tmp_path: Path) -> dict[str, Path]:
    return {
        "model": tmp_path / "models" / "model.onnx",
        "db": tmp_path / "vigil.db",
        "config": tmp_path / "vigil.yaml",
    }


def app_test(
    monkeypatch: pytest.MonkeyPatch, paths: dict[str, Path], *extra: str, page: str = "score"
) -> AppTest:
    """The UI with its settings passed as ``vigil ui`` passes them (script arguments)."""
    paths["config"].write_text(yaml.safe_dump({"inference": {"model_path": str(paths["model"])}}))
    for name in [n for n in os.environ if n.startswith("VIGIL_")]:
        monkeypatch.delenv(name)
    argv = [
        str(APP),
        "--config",
        str(paths["config"]),
        "--set",
        f"storage.database_url=sqlite:///{paths['db']}",
        *extra,
    ]
    monkeypatch.setattr(sys, "argv", argv)
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params["page"] = page
    return at.run()


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]


# --- Score -----------------------------------------------------------------------------


def submit(at: AppTest, amount: float, customer: int = 7, terminal: int = 3) -> AppTest:
    at.number_input(key="customer_id").set_value(customer)
    at.number_input(key="terminal_id").set_value(terminal)
    at.number_input(key="tx_amount").set_value(amount)
    at.date_input(key="tx_date").set_value(date(2018, 4, 2))
    at.time_input(key="tx_time").set_value(time(3, 30))
    at.button[0].click()
    return at.run()


def test_score_page_shows_the_models_decision_for_the_entered_transaction(
    monkeypatch: pytest.MonkeyPatch, paths: dict[str, Path]
) -> None:
    """No ``--api-url``: the page scores through the API started inside the UI process."""
    tiny_model(paths["model"])
    at = app_test(monkeypatch, paths)
    no_exception(at)
    assert at.radio(key="score_mode").value == "This process (in-process API)"
    scorer = OnnxScorer.load(paths["model"])
    computer = OnlineFeatureComputer(default_settings().features, InMemoryStateStore())
    expected, reasons = [], []
    for tx_id, amount in enumerate([300.0, 57.16]):
        at = submit(at, amount)
        no_exception(at)
        vector = computer.features_for(
            {
                schema.TRANSACTION_ID: tx_id,
                schema.TX_DATETIME: datetime(2018, 4, 2, 3, 30),
                schema.CUSTOMER_ID: 7,
                schema.TERMINAL_ID: 3,
                schema.TX_AMOUNT: amount,
            }
        )
        expected.append(float(scorer.score(vector[np.newaxis])[0]))
        shown = metrics(at)
        assert shown["Score"] == f"{expected[-1]:.4f}"
        assert shown["Threshold"] == "0.5000"
        assert shown["Model version"] == VERSION
        assert shown["Decision"] == ("FRAUD" if expected[-1] >= THRESHOLD else "legitimate")
        reasons.append(at.dataframe[0].value if at.dataframe else None)
    # 300 is flagged, and the only feature with weight is the amount: it is the reason.
    assert expected[0] == pytest.approx(1 / (1 + np.exp(-(0.02 * 300 - 3))), abs=1e-6)
    assert expected[1] == pytest.approx(1 / (1 + np.exp(-(0.02 * 57.16 - 3))), abs=1e-6)
    assert list(reasons[0]["feature"]) == [schema.TX_AMOUNT]
    assert reasons[0]["contribution"][0] == pytest.approx(
        expected[0] - 1 / (1 + np.exp(3)), abs=1e-5
    )
    assert reasons[1] is None  # the API explains flagged decisions only
    # The in-process API stored both decisions, as `vigil serve` would.
    engine = create_db_engine(f"sqlite:///{paths['db']}")
    with engine.connect() as connection:
        stored = prediction_history(connection, HistoryFilter())
    engine.dispose()
    assert sorted(stored["score"]) == pytest.approx(sorted(expected), abs=1e-6)
    assert set(stored["model_version"]) == {VERSION}


def test_score_page_scores_through_a_running_api(
    monkeypatch: pytest.MonkeyPatch, paths: dict[str, Path], tmp_path: Path
) -> None:
    """``--api-url``: the page calls the running API over HTTP; the UI loads no model."""
    settings = build_settings(
        {
            "inference": {"model_path": str(tmp_path / "served.onnx")},
            "storage": {"database_url": f"sqlite:///{tmp_path / 'served.db'}"},
        }
    )
    tiny_model(settings.inference.model_path)
    with serve_in_thread(create_app(settings)) as url:
        at = app_test(monkeypatch, paths, "--api-url", url)
        assert at.radio(key="score_mode").value == "The API"
        at = submit(at, 300.0)
        no_exception(at)
        shown = metrics(at)
        assert shown["Score"] == f"{1 / (1 + np.exp(-(0.02 * 300 - 3))):.4f}"
        assert shown["Decision"] == "FRAUD"
        at = app_test(monkeypatch, paths, "--api-url", url, page="models")
        no_exception(at)
        assert at.subheader[0].value == f"Serving model: {VERSION}"
        assert f"As served by the API at {url}" in at.caption[0].value
    assert not paths["model"].exists()  # the UI's own model path was never needed


def test_score_page_says_when_there_is_no_model(
    monkeypatch: pytest.MonkeyPatch, paths: dict[str, Path]
) -> None:
    at = submit(app_test(monkeypatch, paths), 10.0)
    no_exception(at)
    assert f"No model at {paths['model']} yet" in at.warning[0].value
    assert "vigil train --promote" in at.warning[0].value
    assert not at.metric


def test_score_page_reports_an_unreachable_api(
    monkeypatch: pytest.MonkeyPatch, paths: dict[str, Path]
) -> None:
    at = app_test(monkeypatch, paths, "--api-url", "http://127.0.0.1:9/")
    assert at.radio(key="score_mode").value == "The API"
    assert at.text_input(key="api_url").value == "http://127.0.0.1:9"
    at = submit(at, 10.0)
    no_exception(at)
    assert "could not reach the API at http://127.0.0.1:9" in at.error[0].value


# --- Simulate ---------------------------------------------------------------------------


def test_simulate_page_shows_the_worlds_fraud_rate_and_flagged_amount(
    monkeypatch: pytest.MonkeyPatch, paths: dict[str, Path]
) -> None:
    tiny_model(paths["model"])
    at = app_test(monkeypatch, paths, page="simulate")
    at.number_input(key="n_customers").set_value(40)
    at.number_input(key="n_terminals").set_value(80)
    at.number_input(key="n_days").set_value(4)
    at.number_input(key="seed").set_value(3)
    at.button[0].click()
    at = at.run()
    no_exception(at)
    settings = default_settings()
    data = settings.data.model_copy(
        update={"n_customers": 40, "n_terminals": 80, "n_days": 4, "seed": 3}
    )
    world = simulate_transactions(data)
    features = compute_features_frame(settings.features, world).set_index(schema.TRANSACTION_ID)
    amounts = features.loc[world[schema.TRANSACTION_ID], schema.TX_AMOUNT].to_numpy()
    flagged = 1 / (1 + np.exp(-(0.02 * amounts - 3))) >= THRESHOLD
    shown = metrics(at)
    assert shown["Transactions"] == f"{len(world):,}"
    assert shown["Fraud rate"] == f"{world[schema.TX_FRAUD].mean():.2%}"
    assert shown["Flagged"] == f"{flagged.mean():.2%}"
    assert shown["Flagged amount"] == f"{amounts[flagged].sum():,.2f}"


# --- History and Analytics --------------------------------------------------------------


def record(tx_id: int, day: int, amount: float, score: float, version: str) -> PredictionRecord:
    return prediction_record(
        tx_id,
        tx_datetime=datetime(2018, 4, day, 10, 0),
        customer_id=tx_id % 2,
        terminal_id=5,
        tx_amount=amount,
        score=score,
        threshold=THRESHOLD,
        reason_codes=["tx_amount"] if score >= THRESHOLD else [],
        model_version=version,
        latency_ms=1.0,
        created_at=datetime(2026, 11, 23, 12, tx_id, tzinfo=UTC),
    )


@pytest.fixture
def database(paths: dict[str, Path]) -> Path:
    """Four predictions on two days (two flagged), one confirmed fraud, one confirmed genuine."""
    url = f"sqlite:///{paths['db']}"
    upgrade_database(url)
    engine = create_db_engine(url)
    with engine.begin() as connection:
        insert_prediction_records(
            connection,
            [
                record(1, 1, 10.0, 0.10, "m-1"),
                record(2, 1, 300.0, 0.90, "m-1"),
                record(3, 2, 250.0, 0.55, "m-2"),
                record(4, 2, 20.0, 0.05, "m-2"),
            ],
        )
        insert_labels(
            connection,
            [
                LabelRecord(2, 1, datetime(2018, 4, 5)),
                LabelRecord(4, 0, datetime(2018, 4, 6)),
            ],
        )
    engine.dispose()
    return paths["db"]


def test_history_page_lists_and_filters_stored_predictions(
    monkeypatch: pytest.MonkeyPatch, paths: dict[str, Path], database: Path
) -> None:
    at = app_test(monkeypatch, paths, page="history")
    no_exception(at)
    table = at.dataframe[0].value
    assert list(table["transaction_id"]) == [4, 3, 2, 1]  # newest first
    assert list(table["tx_fraud"].fillna(-1)) == [0, -1, 1, -1]
    at.selectbox(key="decision").set_value("Flagged")
    at.selectbox(key="model_version").set_value("m-2")
    at = at.run()
    assert list(at.dataframe[0].value["transaction_id"]) == [3]
    at.selectbox(key="model_version").set_value("All")
    at.slider(key="min_score").set_value(0.95)
    at = at.run()
    assert not at.dataframe and "No stored predictions match" in at.info[0].value


def test_history_filters_by_card_with_every_stored_decision(
    monkeypatch: pytest.MonkeyPatch, paths: dict[str, Path], database: Path
) -> None:
    """The card filter reads the case queue's copy, which the page brings up to date first:
    rows stored after the copy was last checked are listed too."""
    at = app_test(monkeypatch, paths, page="history")
    at.text_input(key="customer").set_value("1")
    at = at.run()
    no_exception(at)
    assert list(at.dataframe[0].value["transaction_id"]) == [3, 1]
    engine = create_db_engine(f"sqlite:///{database}")
    with engine.begin() as connection:
        insert_prediction_records(connection, [record(5, 2, 40.0, 0.2, "m-2")])
    engine.dispose()
    at = at.run()
    table = at.dataframe[0].value
    assert list(table["transaction_id"]) == [5, 3, 1]
    assert set(table["customer_id"]) == {1}


def test_analytics_page_shows_the_business_figures(
    monkeypatch: pytest.MonkeyPatch, paths: dict[str, Path], database: Path
) -> None:
    at = app_test(monkeypatch, paths, page="analytics")
    no_exception(at)
    assert metrics(at) == {
        "Transactions": "4",
        "Flagged": "50.00%",
        "Flagged amount": "550.00",
        "Confirmed fraud rate": "25.00%",
        "Precision (labelled)": "100.00%",  # the one labelled flag (tx 2) was a fraud
        "Recall (labelled)": "100.00%",
        "Prevented loss": "300.00",
        "Missed loss": "0.00",
    }
    assert "1 flagged ones await review" in at.caption[0].value  # tx 3: flagged, no label
    daily = at.dataframe[0].value
    assert list(daily["flagged"]) == [1, 1]
    assert list(daily["flagged_amount"]) == [300.0, 250.0]
    assert list(daily["confirmed_frauds"]) == [1, 0]
    assert list(daily["labelled"]) == [1, 1]
    assert list(daily["awaiting_review"]) == [0, 1]


@pytest.mark.parametrize(
    ("key", "value", "transactions", "flagged"),
    [
        ("decision", "Approved", "2", "0.00%"),
        ("amount_band", "≥ 220", "2", "100.00%"),
        ("version", "m-2", "2", "50.00%"),
        ("days", (date(2018, 4, 1), date(2018, 4, 1)), "2", "50.00%"),
    ],
)
def test_analytics_filters_narrow_every_figure(
    monkeypatch: pytest.MonkeyPatch,
    paths: dict[str, Path],
    database: Path,
    key: str,
    value: object,
    transactions: str,
    flagged: str,
) -> None:
    at = app_test(monkeypatch, paths, page="analytics")
    widget = at.date_input(key=key) if key == "days" else at.selectbox(key=key)
    widget.set_value(value)
    at = at.run()
    no_exception(at)
    shown = metrics(at)
    assert (shown["Transactions"], shown["Flagged"]) == (transactions, flagged)


def test_daily_summary_counts_missed_loss_and_filters_by_scenario(database: Path) -> None:
    engine = create_db_engine(f"sqlite:///{database}")
    with engine.begin() as connection:
        insert_labels(connection, [LabelRecord(1, 1, datetime(2018, 4, 7))])  # approved fraud
        scenario = record(5, 1, 500.0, 0.95, "m-1")
        insert_prediction_records(
            connection, [dataclasses.replace(scenario, extra={"tx_fraud_scenario": 1})]
        )
        daily = daily_summary(connection)
        only_scenario = daily_summary(connection, AnalyticsFilter(scenario=1))
    engine.dispose()
    first = daily.iloc[0]
    assert (first["missed_loss"], first["prevented_loss"]) == (10.0, 300.0)
    assert first["recall"] == pytest.approx(0.5) and first["precision"] == 1.0
    assert list(only_scenario["transactions"]) == [1]
    assert list(only_scenario["flagged_amount"]) == [500.0]


def test_history_explains_the_chosen_decision_with_its_reason_codes(
    monkeypatch: pytest.MonkeyPatch, paths: dict[str, Path], database: Path
) -> None:
    at = app_test(monkeypatch, paths, page="history")
    at.selectbox(key="explain").set_value(2)
    at = at.run()
    no_exception(at)
    shown = metrics(at)
    assert (shown["Score"], shown["Decision"], shown["Label"]) == ("0.9000", "Flagged", "fraud")
    assert "`tx_amount`" in at.markdown[-1].value


@pytest.mark.parametrize("page", ["history", "analytics"])
def test_database_pages_say_when_there_is_no_database_and_create_none(
    monkeypatch: pytest.MonkeyPatch, paths: dict[str, Path], page: str
) -> None:
    at = app_test(monkeypatch, paths, page=page)
    no_exception(at)
    assert f"No database at {paths['db']} yet" in at.warning[0].value
    assert not paths["db"].exists()


def test_database_pages_say_when_the_schema_is_missing(
    monkeypatch: pytest.MonkeyPatch, paths: dict[str, Path]
) -> None:
    create_db_engine(f"sqlite:///{paths['db']}").connect().close()
    at = app_test(monkeypatch, paths, page="history")
    no_exception(at)
    assert "has no Vigil tables yet: run `vigil db upgrade`" in at.warning[0].value


# --- Models -----------------------------------------------------------------------------


def test_models_page_shows_the_serving_models_metadata(
    monkeypatch: pytest.MonkeyPatch, paths: dict[str, Path]
) -> None:
    tiny_model(paths["model"])
    at = app_test(monkeypatch, paths, page="models")
    no_exception(at)
    assert at.subheader[0].value == f"Serving model: {VERSION}"
    assert metrics(at) == {
        "Kind": "logistic",
        "Threshold": "0.5000",
        "Features": str(len(feature_names(default_settings().features))),
        "Git commit": "0000000",
    }
    assert "saved at 2026-11-23 12:00 UTC, commit 0000000" in at.caption[1].value
    shown_metrics = at.dataframe[0].value
    assert dict(zip(shown_metrics["metric"], shown_metrics["value"], strict=True)) == {
        "auc_roc": 0.91,
        "average_precision": 0.62,
    }
    assert list(at.dataframe[1].value["feature"]) == feature_names(default_settings().features)


def test_models_page_says_when_there_is_no_model(
    monkeypatch: pytest.MonkeyPatch, paths: dict[str, Path]
) -> None:
    at = app_test(monkeypatch, paths, page="models")
    no_exception(at)
    assert f"No model at {paths['model']} yet" in at.warning[0].value


def test_a_bad_configuration_is_a_message_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, paths: dict[str, Path]
) -> None:
    at = app_test(monkeypatch, paths, "--set", "serving.port=0")
    no_exception(at)
    assert "Configuration error" in at.error[0].value and "serving.port" in at.error[0].value


def test_score_histogram_counts_each_prediction_in_its_bin(database: Path) -> None:
    engine = create_db_engine(f"sqlite:///{database}")
    with engine.connect() as connection:
        histogram = score_histogram(connection)
    engine.dispose()
    assert len(histogram) == 20 and histogram["score_from"][11] == pytest.approx(0.55)
    # scores 0.05, 0.10, 0.55, 0.90 fall in bins 1, 2, 11 and 18 (width 0.05)
    assert {i: n for i, n in enumerate(histogram["predictions"]) if n} == {1: 1, 2: 1, 11: 1, 18: 1}


# --- Cases -------------------------------------------------------------------------------


def test_cases_page_takes_a_verdict_from_the_keyboard_and_moves_on(
    monkeypatch: pytest.MonkeyPatch, paths: dict[str, Path], tmp_path: Path
) -> None:
    """Type ``l`` + Enter in the key box: the current card is labelled, the next one shown."""
    key = "ui-cases-key"
    settings = build_settings(
        {
            "inference": {"model_path": str(tmp_path / "served.onnx")},
            "storage": {"database_url": f"sqlite:///{tmp_path / 'served.db'}"},
            "serving": {"api_key": key},
            "cases": {"queue_refresh_seconds": 0},  # every read builds the queue afresh
        }
    )
    tiny_model(settings.inference.model_path)
    with serve_in_thread(create_app(settings)) as url:
        for tid, card, amount in ((1, 5, 300.0), (2, 6, 120.0)):
            body = {
                "transaction_id": tid,
                "tx_datetime": "2018-09-30T10:00:00",
                "customer_id": card,
                "terminal_id": 9,
                "tx_amount": amount,
            }
            assert httpx.post(f"{url}/predict", json=body).status_code == 200
        extra = ("--api-url", url, "--set", f"serving.api_key={key}")
        at = app_test(monkeypatch, paths, *extra, page="cases")
        no_exception(at)
        assert metrics(at)["Reviewed"] == "0 / 2"
        assert at.subheader[0].value.startswith("Card 5 (#1")
        at.text_input(key="case_keys").set_value("l").run()
        assert "Enter your name as analyst first." in at.warning[0].value
        at.text_input(key="case_analyst").set_value("ana").run()
        at.text_input(key="case_keys").set_value("l").run()
        no_exception(at)
        assert at.success[0].value == "Card 5: 1 transaction(s) labelled legit."
        assert at.subheader[0].value.startswith("Card 6 (#2")
        assert metrics(at)["Reviewed"] == "1 / 2"
        case = httpx.get(f"{url}/cases/5", headers={"X-API-Key": key}).json()
        assert (case["status"], case["verdict"]) == ("reviewed", "legit")
        # the next day's verdict on card 6 labels its payment of Sep 30 too (the look-back):
        # Sep 30 read again is the day worked, card 6 open there, its payment's verdict dated
        body = {**body, "transaction_id": 3, "tx_datetime": "2018-10-01T09:00:00"}
        assert httpx.post(f"{url}/predict", json=body).status_code == 200
        verdict = {"verdict": "fraud", "analyst": "bob", "day": "2018-10-01"}
        answer = httpx.post(f"{url}/cases/6/verdict", json=verdict, headers={"X-API-Key": key})
        assert answer.json()["labelled"] == 2
        at.text_input(key="case_day").set_value("2018-09-30").run()
        no_exception(at)
        assert metrics(at)["Reviewed"] == "1 / 2" and metrics(at)["Found fraud"] == "0"
        assert at.subheader[0].value.startswith("Card 6 (#2")
        assert "status open" in at.caption[0].value
        assert list(at.table[0].value["verdict"]) == ["fraud (for 2018-10-01)"]
