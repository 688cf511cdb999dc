"""One transaction contract: the API, the broker message and the data contract agree on it.

Each edge value goes to ``POST /predict`` (TestClient), to :class:`TransactionMessage` and to
the pandera contract (:func:`validate_transactions`); all three must accept it or all three
refuse it, and none may answer a 500. A Hypothesis property checks the same agreement on
generated values, and that whatever is accepted lies in the contract's ranges.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import ValidationError

from api_support import FakeWriter, api_settings, build_app, write_model
from vigil.config import Settings
from vigil.data import transaction as contract
from vigil.data.contracts import DataContractError, validate_transactions
from vigil.streaming.messages import TransactionMessage

BASE: dict[str, Any] = {
    "transaction_id": 1,
    "tx_datetime": "2018-09-30T23:56:36",
    "customer_id": 2513,
    "terminal_id": 7438,
    "tx_amount": 57.16,
}


@dataclass(frozen=True)
class Raw:
    """A JSON literal that Python's json module cannot write (``1e309``)."""

    text: str

    def value(self) -> float:
        """What a frame holds for it."""
        return float(self.text)


def _now(offset: timedelta) -> str:
    return (datetime.now(UTC).replace(tzinfo=None) + offset).isoformat()


@dataclass(frozen=True)
class Case:
    """A transaction differing from ``BASE`` in one field (or carrying extras)."""

    name: str
    accepted: bool
    changes: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """The transaction as JSON fields (extras at the top level, as the API takes them)."""
        return {**BASE, **self.changes, **self.extras}


CASES = [
    Case("valid", True),
    Case("id 0", True, {"transaction_id": 0}),
    Case("id 2**63-1", True, {"transaction_id": 2**63 - 1}),
    Case("id 2**63", False, {"transaction_id": 2**63}),
    Case("customer 2**63", False, {"customer_id": 2**63}),
    Case("id -1", False, {"transaction_id": -1}),
    Case("id 4000520804.7", False, {"transaction_id": 4000520804.7}),
    Case("id 5.9", False, {"transaction_id": 5.9}),
    Case("id 0.5", False, {"transaction_id": 0.5}),
    Case("id 5.0 (a decimal point)", False, {"transaction_id": 5.0}),
    Case("id True", False, {"transaction_id": True}),
    Case("terminal True", False, {"terminal_id": True}),
    Case("id '12\\x005'", False, {"transaction_id": "12\x005"}),
    Case("id ' 12'", False, {"transaction_id": " 12"}),
    Case("id '12' (text)", False, {"transaction_id": "12"}),
    Case("amount NaN", False, {"tx_amount": math.nan}),
    Case("amount inf", False, {"tx_amount": math.inf}),
    Case("amount -inf", False, {"tx_amount": -math.inf}),
    Case("amount 1e309", False, {"tx_amount": Raw("1e309")}),
    Case("amount 1e308", False, {"tx_amount": 1e308}),
    Case("amount 1e13", False, {"tx_amount": 1e13}),
    Case("amount max", True, {"tx_amount": contract.MAX_AMOUNT}),
    Case("amount negative", False, {"tx_amount": -0.01}),
    Case("amount 0", True, {"tx_amount": 0.0}),
    Case("amount True", False, {"tx_amount": True}),
    Case("amount '57.16' (text)", False, {"tx_amount": "57.16"}),
    Case("amount 57 (an integer)", True, {"tx_amount": 57}),
    Case("time tz-aware", True, {"tx_datetime": "2018-10-01T01:56:36+02:00"}),
    Case("time handbook 2018", True, {"tx_datetime": "2018-04-01T00:00:00"}),
    Case("time yesterday", True, {"tx_datetime": _now(-timedelta(days=1))}),
    Case("time within tolerance", True, {"tx_datetime": _now(timedelta(seconds=30))}),
    Case("time tomorrow", False, {"tx_datetime": _now(timedelta(days=1))}),
    Case("time 2100", False, {"tx_datetime": "2100-01-01T00:00:00"}),
    Case("time 2999", False, {"tx_datetime": "2999-01-01T00:00:00"}),
    Case("time 1999", False, {"tx_datetime": "1999-12-31T23:59:59"}),
    Case("time 1970", False, {"tx_datetime": "1970-01-01T00:00:00"}),
    Case("time as a number", False, {"tx_datetime": 1538351796}),
    Case("time not a date", False, {"tx_datetime": "not a date"}),
    Case("extra string", True, extras={"channel": "pos"}),
    Case("extra null", True, extras={"channel": None}),
    Case("extra BIGINT bounds", True, extras={"low": -(2**63), "high": 2**63 - 1}),
    Case("extra nested", True, extras={"device": {"os": "ios", "seen": [1, 2]}}),
    Case("extra 10**30", False, extras={"n": 10**30}),
    Case("extra 2**64", False, extras={"n": 2**64}),
    Case("extra NUL string", False, extras={"note": "a\x00b"}),
    Case("extra infinity", False, extras={"x": math.inf}),
    Case("extra too large", False, extras={"blob": "x" * (contract.MAX_EXTRA_BYTES + 1)}),
    Case("extra name with NUL", False, extras={"a\x00b": 1}),
]


def json_text(fields: dict[str, Any]) -> bytes:
    """JSON with NaN/Infinity literals (as clients send them) and raw literals spliced in."""
    raws = {
        f"__raw_{name}__": value.text for name, value in fields.items() if isinstance(value, Raw)
    }
    plain = {
        name: f"__raw_{name}__" if isinstance(value, Raw) else value
        for name, value in fields.items()
    }
    text = json.dumps(plain)
    for marker, literal in raws.items():
        text = text.replace(f'"{marker}"', literal)
    return text.encode()


def message_accepts(case: Case) -> bool:
    fields = {**BASE, **case.changes}
    if case.extras:
        fields["extra"] = case.extras
    try:
        TransactionMessage.model_validate_json(json_text(fields))
    except ValidationError:
        return False
    return True


def frame_of(fields: dict[str, Any]) -> pd.DataFrame:
    """One labelled row; each field a column, as a CSV or Parquet upload would give."""
    row = {k: v.value() if isinstance(v, Raw) else v for k, v in fields.items()}
    return pd.DataFrame({k: [v] for k, v in {**row, "tx_fraud": 0}.items()})


def contract_accepts(fields: dict[str, Any]) -> bool:
    try:
        validate_transactions(frame_of(fields), require_labels=True)
    except DataContractError:
        return False
    return True


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, FakeWriter]]:
    root: Path = tmp_path_factory.mktemp("contract")
    settings = api_settings(Settings())
    writer = FakeWriter()
    app = build_app(settings, write_model(settings, root / "model.onnx", "v1"), writer)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, writer


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_api_message_and_data_contract_agree(
    case: Case, api: tuple[TestClient, FakeWriter]
) -> None:
    client, writer = api
    stored_before = len(writer.records)
    answer = client.post(
        "/predict", content=json_text(case.body()), headers={"content-type": "application/json"}
    )
    assert answer.status_code in (200, 422), answer.text  # never a 500
    assert (answer.status_code == 200) is case.accepted, answer.text
    assert len(writer.records) == stored_before + case.accepted  # a refusal stores nothing
    if not case.accepted:
        assert answer.json()["detail"], "the 422 names the problem"
    assert message_accepts(case) is case.accepted
    assert contract_accepts(case.body()) is case.accepted


def test_tz_aware_times_become_the_same_naive_utc_everywhere(
    api: tuple[TestClient, FakeWriter],
) -> None:
    client, writer = api
    fields = {**BASE, "transaction_id": 77, "tx_datetime": "2018-10-01T01:56:36+02:00"}
    assert client.post("/predict", json=fields).status_code == 200
    expected = datetime(2018, 9, 30, 23, 56, 36)
    assert writer.records[-1].tx_datetime == expected
    assert TransactionMessage.model_validate(fields).tx_datetime == expected
    frame = validate_transactions(frame_of(fields), require_labels=True)
    assert frame["tx_datetime"].iloc[0] == pd.Timestamp(expected)


def test_future_tolerance_is_the_typed_setting() -> None:
    soon = {**BASE, "tx_datetime": _now(timedelta(minutes=30))}
    strict = contract.EventTimePolicy.from_config(Settings().data)  # 300 s by default
    lenient = contract.EventTimePolicy.from_config(
        Settings().data.model_copy(update={"future_tolerance_seconds": 3600.0})
    )
    with pytest.raises(ValidationError, match="in the future"):
        TransactionMessage.model_validate(soon, context=strict)
    assert TransactionMessage.model_validate(soon, context=lenient).transaction_id == 1
    with pytest.raises(DataContractError, match="not_in_future"):
        validate_transactions(frame_of(soon), require_labels=True, policy=strict)
    assert len(validate_transactions(frame_of(soon), require_labels=True, policy=lenient)) == 1


@pytest.mark.parametrize(
    "body",
    [
        b'{"transaction_id": 1, "tx_amount": NaN}',
        b"\xff\xfe\x00\x01binary",
        bytes(range(256)),
        b'{"transaction_id": 1e309}',
        b"[1, 2",
    ],
)
def test_invalid_bodies_get_one_clear_422_shape(
    body: bytes, api: tuple[TestClient, FakeWriter]
) -> None:
    client, _ = api
    answer = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 422
    payload = answer.json()
    assert set(payload) == {"detail", "request_id"}
    assert all({"type", "loc", "msg"} <= set(problem) for problem in payload["detail"])


# Values of every kind the contract must sort out, for the property test.
_INTEGERS = st.integers(min_value=-(2**64), max_value=2**64)
_ID_VALUES = st.one_of(
    _INTEGERS,
    st.integers(min_value=0, max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(alphabet="0123456789 .-\x00a", max_size=6),
)
_AMOUNTS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0, max_value=2e9),
    st.booleans(),
    st.integers(min_value=-10, max_value=10**13),
)
_TIMES = st.datetimes(min_value=datetime(1960, 1, 1), max_value=datetime(2200, 1, 1)).map(
    datetime.isoformat
)


@hypothesis_settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    transaction_id=_ID_VALUES,
    customer_id=_ID_VALUES,
    tx_amount=_AMOUNTS,
    tx_datetime=_TIMES,
)
def test_contract_property(
    transaction_id: Any, customer_id: Any, tx_amount: Any, tx_datetime: str
) -> None:
    fields = {
        **BASE,
        "transaction_id": transaction_id,
        "customer_id": customer_id,
        "tx_amount": tx_amount,
        "tx_datetime": tx_datetime,
    }
    try:
        message = TransactionMessage.model_validate(fields)
    except ValidationError:
        message = None
    assert contract_accepts(fields) is (message is not None)
    if message is not None:
        for value in (message.transaction_id, message.customer_id):
            assert contract.ID_MIN <= value < contract.ID_LIMIT
        assert 0 <= message.tx_amount <= contract.MAX_AMOUNT
        assert contract.MIN_EVENT_TIME <= message.tx_datetime <= contract.DEFAULT_POLICY.latest()
        assert not isinstance(transaction_id, bool) and not isinstance(tx_amount, bool)
        assert not isinstance(transaction_id, float)  # ids are integers, never truncated
