"""Contracts of the scoring routes: /predict, /forward (classic), /forward_batch, /evaluate."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from api_support import (
    API_KEY,
    THRESHOLD,
    FakeWriter,
    api_settings,
    build_app,
    expected_score,
    transaction,
    write_model,
)
from vigil.config import Settings
from vigil.features import feature_names

BAD_REQUEST = b"bad request"
MODEL_FAILED = "модель не смогла обработать данные".encode()
BIAS = -5.0
MAX_ROWS = 5


@pytest.fixture
def writer() -> FakeWriter:
    return FakeWriter()


@pytest.fixture
def settings(small_settings: Settings) -> Settings:
    return api_settings(small_settings, max_batch_rows=MAX_ROWS, max_upload_bytes=4_000)


@pytest.fixture
def client(settings: Settings, tmp_path: Path, writer: FakeWriter) -> Iterator[TestClient]:
    model = write_model(settings, tmp_path / "a.onnx", "model-a", BIAS)
    with TestClient(build_app(settings, model, writer), raise_server_exceptions=False) as c:
        yield c


def _csv(rows: list[dict]) -> str:
    header = list(rows[0])
    return "\n".join([",".join(header), *(",".join(str(r[c]) for c in header) for r in rows)])


# /predict -------------------------------------------------------------------------------


def test_predict_scores_with_the_model_and_persists_before_answering(
    client: TestClient, writer: FakeWriter
) -> None:
    response = client.post("/predict", json=transaction(7, amount=250.0))
    assert response.status_code == 200
    body = response.json()
    assert body["transaction_id"] == 7
    assert body["score"] == pytest.approx(expected_score(250.0, BIAS), abs=1e-6)
    assert body["label"] == 1 and body["threshold"] == THRESHOLD
    assert body["model_version"] == "model-a"
    # Only the amount moves the score, so it is the one reason for a flagged payment.
    assert [r["feature"] for r in body["reason_codes"]] == ["tx_amount"]
    (record,) = writer.records
    assert (record.transaction_id, record.label, record.model_version) == (7, 1, "model-a")
    assert record.score == pytest.approx(body["score"])
    assert record.reason_codes == ["tx_amount"] and record.source == "api"


def test_predict_legitimate_payment_has_no_reason_codes(client: TestClient) -> None:
    body = client.post("/predict", json=transaction(8, amount=20.0)).json()
    assert body["score"] == pytest.approx(expected_score(20.0, BIAS), abs=1e-6)
    assert body["label"] == 0 and body["reason_codes"] == []


def test_predict_keeps_extra_fields_for_storage(client: TestClient, writer: FakeWriter) -> None:
    client.post("/predict", json=transaction(9, merchant="coffee"))
    assert writer.records[0].extra == {"merchant": "coffee"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({k: v for k, v in transaction().items() if k != "tx_amount"}, "tx_amount"),
        (transaction(amount=-1.0), "tx_amount"),
        (transaction(tx_datetime="yesterday"), "tx_datetime"),
        (transaction(customer_id="abc"), "customer_id"),
        (transaction(transaction_id=-5), "transaction_id"),
    ],
)
def test_predict_invalid_body_is_422_naming_the_field_and_writes_nothing(
    client: TestClient, writer: FakeWriter, body: dict, field: str
) -> None:
    response = client.post("/predict", json=body)
    assert response.status_code == 422
    assert ["body", field] in [problem["loc"] for problem in response.json()["detail"]]
    assert writer.records == []


def test_predict_malformed_json_is_422(client: TestClient, writer: FakeWriter) -> None:
    response = client.post(
        "/predict", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422 and writer.records == []


def test_predict_overloaded_writer_is_503_with_retry_after(
    client: TestClient, writer: FakeWriter
) -> None:
    writer.overloaded = True
    response = client.post("/predict", json=transaction(10))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["detail"] == "service overloaded, retry later"


def test_predict_database_down_is_503(client: TestClient, writer: FakeWriter) -> None:
    writer.healthy = False
    response = client.post("/predict", json=transaction(11))
    assert response.status_code == 503 and response.json()["detail"] == "database unavailable"


def test_predict_body_over_the_upload_limit_is_413(client: TestClient) -> None:
    response = client.post("/predict", json=transaction(12, note="x" * 5_000))
    assert response.status_code == 413
    assert "4000 bytes" in response.json()["detail"]


# /forward (classic contract) ------------------------------------------------------------


def _features(settings: Settings, amount: float) -> dict[str, float]:
    return {
        name: (amount if name == "tx_amount" else 0.0) for name in feature_names(settings.features)
    }


def test_forward_scores_features_by_name_or_in_order(
    client: TestClient, settings: Settings, writer: FakeWriter
) -> None:
    by_name = client.post("/forward", json={"features": _features(settings, 250.0)})
    in_order = client.post("/forward", json={"features": list(_features(settings, 250.0).values())})
    assert by_name.status_code == in_order.status_code == 200
    assert by_name.json()["score"] == pytest.approx(expected_score(250.0, BIAS), abs=1e-6)
    assert in_order.json() == by_name.json()
    assert writer.records == []  # model only: nothing is stored


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{not json", "application/json"),
        (b'{"features": "many"}', "application/json"),
        (b'{"rows": [1, 2]}', "application/json"),
        (b"[1, 2, 3]", "application/json"),
        (b'{"features": [1.0]}', "text/plain"),
        (b"", "application/json"),
    ],
)
def test_forward_malformed_request_is_400_bad_request(
    client: TestClient, content: bytes, content_type: str
) -> None:
    response = client.post("/forward", content=content, headers={"content-type": content_type})
    assert response.status_code == 400
    assert response.content == BAD_REQUEST


def test_forward_multipart_upload_is_400_bad_request(client: TestClient) -> None:
    response = client.post("/forward", files={"file": ("cat.png", b"\x89PNG....", "image/png")})
    assert response.status_code == 400
    assert response.content == BAD_REQUEST


@pytest.mark.parametrize(
    "features",
    [
        [1.0, 2.0],  # wrong number of values
        {"tx_amount": 3.0},  # features missing
        "extra",  # an unknown feature beside the right ones
        "overflow",  # finite in JSON, infinite in float32
    ],
)
def test_forward_data_the_model_cannot_process_is_403(
    client: TestClient, settings: Settings, features: object
) -> None:
    if features == "extra":
        features = {**_features(settings, 1.0), "shoe_size": 42.0}
    elif features == "overflow":
        features = _features(settings, 1e39)
    response = client.post("/forward", json={"features": features})
    assert response.status_code == 403
    assert response.content == MODEL_FAILED


# /forward_batch ---------------------------------------------------------------------------


def test_forward_batch_json_and_csv_give_the_same_results_in_order(
    client: TestClient, writer: FakeWriter
) -> None:
    rows = [transaction(i, amount=a) for i, a in [(30, 300.0), (31, 10.0), (32, 120.0)]]
    by_json = client.post("/forward_batch", json=rows)
    by_csv = client.post("/forward_batch", files={"file": ("batch.csv", _csv(rows), "text/csv")})
    raw_csv = client.post(
        "/forward_batch", content=_csv(rows), headers={"content-type": "text/csv"}
    )
    assert by_json.status_code == by_csv.status_code == raw_csv.status_code == 200
    results = by_json.json()["results"]
    assert [r["transaction_id"] for r in results] == [30, 31, 32]
    for result, row in zip(results, rows, strict=True):
        assert result["score"] == pytest.approx(expected_score(row["tx_amount"], BIAS), abs=1e-6)
    assert by_csv.json() == by_json.json() == raw_csv.json()
    assert writer.records == []


def test_forward_batch_reads_gzip_csv_uploads_like_plain_ones(client: TestClient) -> None:
    rows = [transaction(i, amount=a) for i, a in [(40, 300.0), (41, 10.0)]]
    plain = client.post("/forward_batch", content=_csv(rows), headers={"content-type": "text/csv"})
    packed = gzip.compress(_csv(rows).encode())
    raw_gz = client.post("/forward_batch", content=packed, headers={"content-type": "text/csv"})
    form_gz = client.post("/forward_batch", files={"file": ("b.csv.gz", packed, "text/csv")})
    assert plain.status_code == raw_gz.status_code == form_gz.status_code == 200
    assert raw_gz.json() == form_gz.json() == plain.json()


@pytest.mark.parametrize(
    ("content", "status", "says"),
    [
        (gzip.compress(b"transaction_id\n1\n")[:-12], 400, "truncated"),
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff\x07", 400, "corrupt"),  # bad block
        (gzip.compress(b"0" * 100_000), 413, "inflated gzip upload"),  # the limit is 4,000
    ],
    ids=["truncated", "corrupt", "inflated"],  # gzip stamps the time: the bytes are no id
)
def test_forward_batch_bad_gzip_uploads_are_refused(
    client: TestClient, content: bytes, status: int, says: str
) -> None:
    response = client.post("/forward_batch", content=content, headers={"content-type": "text/csv"})
    assert response.status_code == status and says in response.text


def test_forward_batch_accepts_the_handbooks_upper_case_columns(client: TestClient) -> None:
    csv = (
        "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT\n"
        "1,2018-04-01 00:00:31,5,9,20.5\n"
    )
    response = client.post("/forward_batch", content=csv, headers={"content-type": "text/csv"})
    assert response.status_code == 200 and len(response.json()["results"]) == 1


@pytest.mark.parametrize("path", ["/forward_batch", "/evaluate"])
@pytest.mark.parametrize("repeat", ["tx_amount", "TX_AMOUNT"])
def test_a_csv_naming_a_column_twice_is_400_not_a_guess(
    client: TestClient, path: str, repeat: str
) -> None:
    """Two amounts for one transaction: the last one was scored silently (PUT /add_data took
    the first); refused, naming the column."""
    row = {**transaction(1, amount=20.0), "tx_fraud": 0}
    header = f"{','.join(row)},{repeat}\n"
    body = header + ",".join(str(value) for value in row.values()) + ",9000.0\n"
    response = client.post(path, content=body, headers={"content-type": "text/csv"})
    assert response.status_code == 400, response.text
    assert "tx_amount" in response.json()["detail"]


def test_forward_batch_longer_than_the_limit_is_413(client: TestClient) -> None:
    rows = [transaction(i) for i in range(MAX_ROWS + 1)]
    response = client.post("/forward_batch", json=rows)
    assert response.status_code == 413
    assert response.json()["detail"] == f"batch exceeds the limit of {MAX_ROWS} rows"


def test_forward_batch_invalid_row_is_422_naming_row_and_field(client: TestClient) -> None:
    rows = [transaction(1), transaction(2, amount="lots")]
    response = client.post("/forward_batch", json=rows)
    assert response.status_code == 422
    assert ["body", 1, "tx_amount"] in [p["loc"] for p in response.json()["detail"]]


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"<xml/>", "application/xml", 415),
        (b'{"transaction_id": 1}', "application/json", 400),
        (b"[]", "application/json", 400),
        (b"\xff\xfe\x00", "text/csv", 400),
    ],
)
def test_forward_batch_unreadable_uploads_are_rejected(
    client: TestClient, content: bytes, content_type: str, status: int
) -> None:
    response = client.post(
        "/forward_batch", content=content, headers={"content-type": content_type}
    )
    assert response.status_code == status
    assert "Traceback" not in response.text


def test_forward_batch_duplicate_ids_are_rejected(client: TestClient) -> None:
    response = client.post("/forward_batch", json=[transaction(1), transaction(1)])
    assert response.status_code == 400
    assert "unique" in response.json()["detail"]


# /evaluate --------------------------------------------------------------------------------


def test_evaluate_returns_predictions_and_hand_checked_metrics(client: TestClient) -> None:
    rows = [
        {**transaction(40, amount=300.0, customer_id=1), "tx_fraud": 1},
        {**transaction(41, amount=10.0, customer_id=2), "tx_fraud": 0},
        {**transaction(42, amount=20.0, customer_id=3), "tx_fraud": 0},
        {**transaction(43, amount=150.0, customer_id=4), "tx_fraud": 0},
    ]
    response = client.post("/evaluate", files={"file": ("labelled.csv", _csv(rows), "text/csv")})
    assert response.status_code == 200
    body = response.json()
    metrics = body["metrics"]
    # Scores rank the one fraud first: perfect ranking. Flagged: 300 and 150 (score >= 0.5),
    # so precision 1/2, recall 1/1. One compromised card among the top k=100 cards of one day.
    assert metrics["n_transactions"] == 4 and metrics["n_frauds"] == 1
    assert metrics["auc_roc"] == pytest.approx(1.0)
    assert metrics["average_precision"] == pytest.approx(1.0)
    assert metrics["precision"] == pytest.approx(0.5) and metrics["recall"] == pytest.approx(1.0)
    assert metrics["k"] == 100 and metrics["card_precision_at_k"] == pytest.approx(0.01)
    assert [p["transaction_id"] for p in body["predictions"]] == [40, 41, 42, 43]
    assert body["model_version"] == "model-a"


def test_evaluate_single_class_reports_no_auc(client: TestClient) -> None:
    rows = [{**transaction(50), "tx_fraud": 0}]
    metrics = client.post(
        "/evaluate", content=_csv(rows), headers={"content-type": "text/csv"}
    ).json()["metrics"]
    assert metrics["auc_roc"] is None and metrics["average_precision"] is None


def test_evaluate_without_labels_is_422_naming_tx_fraud(client: TestClient) -> None:
    response = client.post(
        "/evaluate", content=_csv([transaction(60)]), headers={"content-type": "text/csv"}
    )
    assert response.status_code == 422
    assert ["body", 0, "tx_fraud"] in [p["loc"] for p in response.json()["detail"]]


@pytest.mark.parametrize(
    "path", ["/forward_batch", "/predict", "/admin/reload", "/admin/challenger", "/cases/1/verdict"]
)
def test_streamed_body_over_the_upload_limit_is_413(client: TestClient, path: str) -> None:
    """On every route: those whose body FastAPI parses answered 400 "There was an error
    parsing the body" when the limit was raised while it read."""
    chunks = iter([b"[" + b" " * 3_000, b" " * 3_000 + b"]"])  # no Content-Length: chunked
    headers = {"content-type": "application/json", "X-API-Key": API_KEY}
    response = client.post(path, content=chunks, headers=headers)
    assert response.status_code == 413, response.text
    assert response.json()["detail"] == "request body exceeds the limit of 4000 bytes"


@pytest.mark.parametrize("path", ["/forward_batch", "/admin/challenger"])
def test_a_streamed_body_within_the_limit_reaches_the_route(client: TestClient, path: str) -> None:
    body = [transaction(1)] if path == "/forward_batch" else {"model_path": None}
    chunks = iter([orjson.dumps(body)[:5], orjson.dumps(body)[5:]])
    headers = {"content-type": "application/json", "X-API-Key": API_KEY}
    assert client.post(path, content=chunks, headers=headers).status_code == 200
