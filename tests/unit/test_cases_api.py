"""The case queue over the API: transactions scored by POST /predict into SQLite, the day's
queue read back, and verdicts that become labels at once (database, online state, metrics)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import Engine, select

from api_support import API_KEY, api_settings, make_manager, transaction, write_model
from vigil.config import Settings
from vigil.features import InMemoryStateStore
from vigil.serving import create_app
from vigil.storage import LabelRecord, create_db_engine, insert_labels
from vigil.storage.cases import fetch_verdicts
from vigil.storage.tables import labels

KEY = {"X-API-Key": API_KEY}
DAY = "2018-09-30"
# (transaction id, card, terminal, time, amount): the test model's score grows with the amount.
TODAY = [
    (1, 10, 100, "2018-09-30T08:00:00", 20.0),
    (2, 10, 101, "2018-09-30T09:00:00", 210.0),  # card 10: top score 0.9945
    (3, 11, 100, "2018-09-30T10:00:00", 150.0),  # card 11: 0.924
    (4, 12, 102, "2018-09-30T11:00:00", 120.0),  # card 12: 0.731
    (5, 13, 103, "2018-09-30T12:00:00", 30.0),  # card 13: 0.076, outside a budget of 3
    (6, 14, 106, "2018-09-30T12:00:00", 10.0),  # card 14: the lowest score
]
HABIT = [(90 + i, 10, 100, f"2018-09-{20 + i}T08:00:00", 70.0) for i in range(3)]
# card 14's earlier days: a verdict on DAY also covers [09-24, 09-30) (look-back 7, the default)
LOOKBACK = [
    (60, 14, 104, "2018-09-23T23:00:00", 40.0),  # outside the look-back
    (61, 14, 104, "2018-09-24T00:00:00", 50.0),  # its first moment
    (62, 14, 105, "2018-09-28T10:00:00", 60.0),  # inside, but labelled before the verdict
]


@pytest.fixture
def client(small_settings: Settings, tmp_path: Path) -> Iterator[TestClient]:
    settings = api_settings(small_settings)
    settings = settings.model_copy(
        update={"cases": settings.cases.model_copy(update={"review_budget": 3})}
    )
    model = make_manager(settings, write_model(settings, tmp_path / "m.onnx", "cases-1"))
    app = create_app(settings, model_manager=model, state_store=InMemoryStateStore())
    with TestClient(app, raise_server_exceptions=False) as test_client:
        for tid, card, terminal, moment, amount in HABIT + LOOKBACK + TODAY:
            body = transaction(tid, amount, customer_id=card, terminal_id=terminal)
            response = test_client.post("/predict", json={**body, "tx_datetime": moment})
            assert response.status_code == 200, response.text
        yield test_client


@pytest.fixture
def engine(client: TestClient) -> Iterator[Engine]:
    settings = client.app.state.settings  # type: ignore[attr-defined]
    db = create_db_engine(settings.storage.database_url)
    yield db
    db.dispose()


def _labels(engine: Engine) -> dict[int, int]:
    with engine.connect() as connection:
        return dict(connection.execute(select(labels.c.transaction_id, labels.c.tx_fraud)).all())


def _verdict(client: TestClient, card: int, **body: Any) -> Any:
    payload = {"verdict": "fraud", "analyst": "ana", **body}
    return client.post(f"/cases/{card}/verdict", json=payload, headers=KEY)


def test_the_queue_ranks_cards_by_top_score_within_the_budget(client: TestClient) -> None:
    body = client.get("/cases", headers=KEY).json()  # default day: the newest event's
    assert (body["day"], body["budget"], body["size"], body["reviewed"]) == (DAY, 3, 3, 0)
    assert body["precision"] is None
    assert [c["customer_id"] for c in body["cases"]] == [10, 11, 12]
    assert [c["rank"] for c in body["cases"]] == [1, 2, 3]
    top = body["cases"][0]
    assert top["status"] == "open" and top["verdict"] is None
    assert [t["transaction_id"] for t in top["transactions"]] == [1, 2]  # the day only
    assert top["top_score"] == pytest.approx(top["transactions"][1]["score"])
    assert top["alerts"] == 1 and top["total_amount"] == pytest.approx(230.0)
    # habit: the card's mean amount over the 30 days before the day (70.0)
    assert (top["habit_mean"], top["habit_transactions"]) == (70.0, 3)
    assert top["transactions"][1]["amount_vs_habit"] == pytest.approx(3.0)
    assert client.get("/cases?budget=1", headers=KEY).json()["size"] == 1
    assert client.get("/cases?day=2018-09-29", headers=KEY).json()["cases"] == []


def test_every_case_route_needs_the_key(client: TestClient) -> None:
    assert client.get("/cases").status_code == 401
    assert client.get("/cases/10", headers={"X-API-Key": "wrong"}).status_code == 403
    anonymous = client.post("/cases/10/verdict", json={"verdict": "legit", "analyst": "a"})
    assert anonymous.status_code == 401


def test_one_card_outside_the_queue_and_an_unknown_card(client: TestClient) -> None:
    case = client.get(f"/cases/13?day={DAY}", headers=KEY).json()
    assert (case["customer_id"], case["rank"], len(case["transactions"])) == (13, None, 1)
    missing = client.get("/cases/999", headers=KEY)
    assert missing.status_code == 404 and "999" in missing.json()["detail"]
    assert client.get("/cases/10?day=1999-12-31", headers=KEY).status_code == 422
    assert client.get("/cases/-1", headers=KEY).status_code == 422


def test_a_fraud_verdict_labels_the_cards_day_at_once(client: TestClient, engine: Engine) -> None:
    response = _verdict(client, 10, terminal_compromised=True, note="two in an hour")
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["labelled"], body["repeated"], body["case"]["status"]) == (2, False, "reviewed")
    assert body["case"]["verdict"] == "fraud"
    assert {t["terminal_compromised"] for t in body["case"]["transactions"]} == {True}
    assert _labels(engine) == {1: 1, 2: 1}  # the habit days keep no label
    with engine.connect() as connection:
        log = fetch_verdicts(connection)
    assert [(v["transaction_id"], v["is_fraud"], v["terminal_compromised"]) for v in log] == [
        (1, 1, 1),
        (2, 1, 1),
    ]
    # reviewed "now" on the event clock: the newest stored event, after the case's transactions
    assert {v["reviewed_at"].isoformat() for v in log} == {"2018-09-30T12:00:00"}
    assert {(v["analyst"], v["note"]) for v in log} == {("ana", "two in an hour")}
    store = client.app.state.services.store  # type: ignore[attr-defined]
    assert store._customers[10].frauds == {1: 1, 2: 1}
    assert store._terminals[101].frauds == {2: 1}
    queue = client.get("/cases", headers=KEY).json()
    assert (queue["reviewed"], queue["frauds"], queue["precision"]) == (1, 1, 1.0)
    still_open = client.get("/cases?status=open", headers=KEY).json()["cases"]
    assert [c["customer_id"] for c in still_open] == [11, 12]
    # the terminal's known fraud run now shows on the other card's case at terminal 100
    other = client.get("/cases/11", headers=KEY).json()["transactions"][0]
    assert (other["terminal_frauds"], other["terminal_compromised"]) == (1, True)
    metrics = client.get("/metrics").text
    assert 'vigil_case_verdicts_total{verdict="fraud"} 1.0' in metrics
    assert "vigil_case_queue_reviewed 1.0" in metrics and "vigil_case_queue_frauds 1.0" in metrics
    assert "vigil_case_time_to_verdict_seconds_count 1.0" in metrics


def test_a_repeat_is_idempotent_and_another_verdict_conflicts(
    client: TestClient, engine: Engine
) -> None:
    assert _verdict(client, 11, verdict="legit").status_code == 201
    again = _verdict(client, 11, verdict="legit", note="retry")
    assert again.status_code == 200 and again.json()["repeated"] is True
    assert again.json()["labelled"] == 0
    conflict = _verdict(client, 11)
    assert conflict.status_code == 409 and "already reviewed" in conflict.json()["detail"]
    assert _labels(engine) == {3: 0}
    with engine.connect() as connection:
        assert [(v["is_fraud"], v["note"]) for v in fetch_verdicts(connection)] == [(0, None)]


def test_named_fraud_transactions_leave_the_others_legitimate(
    client: TestClient, engine: Engine
) -> None:
    assert _verdict(client, 10, fraud_transaction_ids=[2]).status_code == 201
    assert _labels(engine) == {1: 0, 2: 1}


def test_a_terminal_mark_can_name_the_compromised_transactions(
    client: TestClient, engine: Engine
) -> None:
    # card 10's two frauds, only the one at terminal 101 a terminal compromise
    marked = {"terminal_compromised": True, "compromised_transaction_ids": [2]}
    response = _verdict(client, 10, **marked)
    assert response.status_code == 201, response.text
    with engine.connect() as connection:
        log = {v["transaction_id"]: v["terminal_compromised"] for v in fetch_verdicts(connection)}
    assert log == {1: 0, 2: 1} and _labels(engine) == {1: 1, 2: 1}
    assert _verdict(client, 10, **marked).json()["repeated"] is True
    assert _verdict(client, 10, terminal_compromised=True).status_code == 409  # marks both


@pytest.mark.parametrize(
    ("card", "body", "status"),
    [
        (10, {"fraud_transaction_ids": [3]}, 422),  # not the card's transaction
        (10, {"verdict": "legit", "terminal_compromised": True}, 422),
        (10, {"compromised_transaction_ids": [2]}, 422),  # without terminal_compromised
        (10, {"terminal_compromised": True, "compromised_transaction_ids": [3]}, 422),
        (  # a compromised transaction not named fraud
            10,
            {
                "terminal_compromised": True,
                "fraud_transaction_ids": [2],
                "compromised_transaction_ids": [1],
            },
            422,
        ),
        (10, {"reviewed_at": "2018-09-30T08:30:00"}, 422),  # before transaction 2
        (10, {"reviewed_at": "2999-01-01T00:00:00"}, 422),
        (10, {"analyst": ""}, 422),
        (10, {"analyst": "a\u0000b"}, 422),
        (10, {"verdict": "maybe"}, 422),
        (10, {"surprise": 1}, 422),
        (10, {"day": "2018-09-29"}, 404),  # no transaction that day
        (999, {}, 404),
    ],
)
def test_a_refused_verdict_writes_nothing(
    client: TestClient, engine: Engine, card: int, body: dict[str, Any], status: int
) -> None:
    response = _verdict(client, card, **body)
    assert response.status_code == status, response.text
    assert _labels(engine) == {}
    store = client.app.state.services.store  # type: ignore[attr-defined]
    assert all(not history.frauds for history in store._customers.values())


@pytest.mark.parametrize(
    ("field", "text", "control"),
    [
        ("analyst", "ana\x1b[31m", "U+001B"),  # an escape sequence: recolours a terminal
        ("analyst", "ana\r\nINFO forged log line", "U+000D"),
        ("analyst", "ana\nbob", "U+000A"),  # a name is one line
        ("analyst", "ana\tbob", "U+0009"),
        ("analyst", "ana\x85", "U+0085"),  # C1
        ("note", "seen\x1b[2J", "U+001B"),
        ("note", "line one\r\nline two", "U+000D"),
        ("note", "a\x7f", "U+007F"),
        ("note", "a\x00b", "NUL"),
    ],
)
def test_a_control_character_in_the_analysts_text_is_422_naming_the_field(
    client: TestClient, engine: Engine, field: str, text: str, control: str
) -> None:
    response = _verdict(client, 10, **{field: text})
    assert response.status_code == 422, response.text
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["body", field]
    assert field in problem["msg"] and control in problem["msg"]
    assert _labels(engine) == {}
    with engine.connect() as connection:
        assert fetch_verdicts(connection) == []


def test_a_note_may_span_lines_and_a_name_hold_spaces(client: TestClient, engine: Engine) -> None:
    note = "called the customer:\n\tnot their purchase"
    assert _verdict(client, 10, analyst="Ana María", note=note).status_code == 201
    with engine.connect() as connection:
        stored = fetch_verdicts(connection)
    assert {(row["analyst"], row["note"]) for row in stored} == {("Ana María", note)}


def test_an_explicit_review_time_is_logged(client: TestClient, engine: Engine) -> None:
    assert _verdict(client, 12, reviewed_at="2018-09-30T13:15:00+02:00").status_code == 201
    with engine.connect() as connection:
        (verdict,) = fetch_verdicts(connection)
    assert verdict["reviewed_at"].isoformat() == "2018-09-30T11:15:00"  # naive UTC


def test_a_retry_after_a_state_store_failure_completes_the_state(
    client: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = client.app.state.services.store  # type: ignore[attr-defined]
    working = store.aadd_label

    async def unreachable(label: object) -> None:
        raise RedisConnectionError("state store down (test)")

    monkeypatch.setattr(store, "aadd_label", unreachable)
    assert _verdict(client, 10).status_code == 503  # stored, but the state missed it
    assert _labels(engine) == {1: 1, 2: 1}
    monkeypatch.setattr(store, "aadd_label", working)
    retry = _verdict(client, 10)
    assert retry.status_code == 200 and retry.json()["repeated"] is True
    assert store._customers[10].frauds == {1: 1, 2: 1}


def test_a_verdict_also_labels_the_cards_unlabelled_look_back(
    client: TestClient, engine: Engine
) -> None:
    with engine.begin() as connection:
        insert_labels(connection, [LabelRecord(62, 0, datetime(2018, 9, 29))])
    case = client.get("/cases/14", headers=KEY).json()
    assert [t["transaction_id"] for t in case["transactions"]] == [6]
    assert [t["transaction_id"] for t in case["lookback"]] == [61]  # what the verdict labels
    assert "lookback" not in client.get("/cases", headers=KEY).json()["cases"][0]
    response = _verdict(client, 14, fraud_transaction_ids=[61], terminal_compromised=True)
    assert response.status_code == 201, response.text
    assert (response.json()["labelled"], response.json()["case"]["lookback"]) == (2, [])
    assert _labels(engine) == {6: 0, 61: 1, 62: 0}  # 60 outside; 62 keeps its label
    with engine.connect() as connection:
        log = {v["transaction_id"]: v["terminal_compromised"] for v in fetch_verdicts(connection)}
    assert log == {6: 0, 61: 1}
    store = client.app.state.services.store  # type: ignore[attr-defined]
    assert store._customers[14].frauds == {61: 1, 6: 0}  # the state sees the earlier fraud
    assert store._terminals[104].frauds == {61: 1}
    again = _verdict(client, 14, fraud_transaction_ids=[61], terminal_compromised=True)
    assert again.status_code == 200 and again.json()["repeated"] is True
    assert _verdict(client, 14).status_code == 409  # all fraud: the day's 6 was legitimate
    assert _labels(engine) == {6: 0, 61: 1, 62: 0}


def test_a_verdict_labels_what_is_stored_not_what_the_queue_last_copied(
    client: TestClient,
) -> None:
    # The card's read copied its days for the queue (vigil.storage.case_copy) and a late
    # transaction of its look-back arrives after: the card's case may not show it until the
    # ranking refreshes (30 s), but the verdict covers what is stored.
    assert [t["transaction_id"] for t in client.get("/cases/14", headers=KEY).json()["lookback"]]
    late = transaction(63, 45.0, customer_id=14, terminal_id=104)
    stored = client.post("/predict", json={**late, "tx_datetime": "2018-09-27T10:00:00"})
    assert stored.status_code == 200, stored.text
    response = _verdict(client, 14, fraud_transaction_ids=[63])
    assert response.status_code == 201, response.text
    assert {t["transaction_id"] for t in response.json()["case"]["transactions"]} == {6}
    assert response.json()["labelled"] == 4  # 6 of the day; 61, 62, 63 of the look-back
