"""The transaction contract: the one place that says what a valid transaction is.

Every entrance applies these rules identically: the HTTP body (``serving.schemas``), the broker
message (``streaming.messages``), the pandera data contract of uploads and datasets
(``data.contracts``) and the online state store (``features.state``). They build their models
from the types here instead of restating them.

- **Ids** (``transaction_id``, ``customer_id``, ``terminal_id``) and **labels** are exact
  integers: numbers with a decimal point (``5.9``, even ``5.0``), booleans and text
  (``"12\\x005"``, ``"12"``) are refused rather than truncated or coerced; a CSV cell of
  digits is read as an integer first (:func:`from_text`). Ids lie in ``[0, 2**63)``, what
  PostgreSQL ``BIGINT`` and SQLite ``INTEGER`` both store.
- **Amounts** are finite numbers (not booleans, not text) in ``[0, MAX_AMOUNT]`` (1e9: far
  above any card payment, and small enough that float32, the model's input type, keeps cents
  up to about 1e5 and units up to 1e7). NaN, infinities and ``1e309`` are refused.
- **Event time** is an ISO 8601 string (JSON, CSV) or a datetime, never a bare number (seconds and
  nanoseconds would be guessed differently by pydantic and pandas). Time zones are converted
  to naive UTC (:func:`naive_utc`), the form stored and used by the features. Times before
  ``MIN_EVENT_TIME`` (2000-01-01) are refused as clock or parsing mistakes; times later than
  the server clock plus a tolerance (:class:`EventTimePolicy`, the typed setting
  ``data.future_tolerance_seconds``) are refused, because a far-future event would evict every
  customer's history from the online state. Past events are legitimate (late arrivals,
  replays of the handbook's 2018 data, backfills) and accepted. The clock is re-read at most
  once a second (the hot path validates thousands of transactions a second).
- **Extra fields** beyond the five columns are kept (stored as JSON beside the transaction)
  when they are small and safe: JSON scalars, lists and objects nested at most
  ``MAX_EXTRA_DEPTH`` deep, strings without NUL and encodable as UTF-8, integers in the
  ``BIGINT`` range, finite floats, at most ``MAX_EXTRA_BYTES`` bytes of JSON per transaction.
  Anything else is refused with a message naming the field.
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, ValidationInfo

from vigil.config import DataConfig

TRANSACTION_ID = "transaction_id"
ID_MIN = 0
ID_LIMIT = 2**63  # exclusive: the largest BIGINT is 2**63 - 1
INT_MIN = -(2**63)  # extra integers: the BIGINT range
MAX_AMOUNT = 1e9
MIN_EVENT_TIME = datetime(2000, 1, 1)
DEFAULT_FUTURE_TOLERANCE_SECONDS = 300.0
MAX_EXTRA_BYTES = 4096
MAX_EXTRA_DEPTH = 3
LABEL_VALUES = (0, 1)

_DIGITS = re.compile(r"[0-9]{1,20}")


def naive_utc(moment: datetime) -> datetime:
    """``moment`` in naive UTC (naive datetimes are taken as UTC already), the stored form."""
    if moment.tzinfo is None:
        return moment
    try:
        return moment.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:
        raise ValueError("datetime out of range once converted to UTC") from None


class EventTimePolicy:
    """How far ahead of the server clock an event time may be (clock skew of producers)."""

    __slots__ = ("_latest", "_refresh_at", "future_tolerance")

    def __init__(
        self, future_tolerance: timedelta = timedelta(seconds=DEFAULT_FUTURE_TOLERANCE_SECONDS)
    ) -> None:
        self.future_tolerance = future_tolerance
        self._latest = MIN_EVENT_TIME
        self._refresh_at = -math.inf

    @classmethod
    def from_config(cls, data: DataConfig) -> EventTimePolicy:
        """The policy of the ``data.future_tolerance_seconds`` setting."""
        return cls(timedelta(seconds=data.future_tolerance_seconds))

    def latest(self) -> datetime:
        """The latest event time accepted now, naive UTC (the clock re-read once a second)."""
        now = time.monotonic()
        if now >= self._refresh_at:
            self._latest = datetime.now(UTC).replace(tzinfo=None) + self.future_tolerance
            self._refresh_at = now + 1.0
        return self._latest

    def check(self, moment: datetime) -> datetime:
        """``moment`` (naive UTC) when it is acceptable; ``ValueError`` saying why otherwise."""
        if moment < MIN_EVENT_TIME:
            raise ValueError(f"event time is before {MIN_EVENT_TIME.date().isoformat()}")
        if moment > self.latest():
            raise ValueError(
                "event time is in the future (more than "
                f"{self.future_tolerance.total_seconds():g} s after the server clock)"
            )
        return moment


DEFAULT_POLICY = EventTimePolicy()


def policy_of(info: ValidationInfo | None) -> EventTimePolicy:
    """The policy passed as validation context (``model_validate(..., context=policy)``)."""
    context = info.context if info is not None else None
    return context if isinstance(context, EventTimePolicy) else DEFAULT_POLICY


def check_ranges(ids: tuple[int, ...], amount: float, moment: datetime) -> None:
    """The contract's ranges over values already typed (a store's last line of defence)."""
    if not all(ID_MIN <= i < ID_LIMIT for i in ids):
        raise ValueError(f"ids {ids} outside [{ID_MIN}, 2**63)")
    if not 0 <= amount <= MAX_AMOUNT:  # false for NaN too
        raise ValueError(f"non-finite amount or outside [0, {MAX_AMOUNT:g}]: {amount!r}")
    if moment < MIN_EVENT_TIME:
        raise ValueError(f"event time {moment} before {MIN_EVENT_TIME.date().isoformat()}")


def exact_int(value: Any) -> int:
    """An id or label as an exact integer: an ``int``, nothing else (the rule of :data:`Id`
    for values from frames, :mod:`vigil.data.contracts`)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError("must be an integer (no decimal point, no boolean, no text)")


def _not_a_number(value: Any) -> Any:
    """Event time as a datetime or an ISO 8601 string, never a bare number of seconds."""
    if isinstance(value, int | float):
        raise ValueError("must be an ISO 8601 date-time, not a number")
    return value


def _checked_event_time(value: datetime, info: ValidationInfo) -> datetime:
    return policy_of(info).check(naive_utc(value))


# Strict types: a JSON integer, a JSON number, an ISO string and nothing looser. They keep the
# hot path in pydantic's own code (a Python validator per field costs microseconds) and say
# exactly what was wrong; text formats (CSV) convert their cells first (:func:`from_text`).
Id = Annotated[int, Field(strict=True, ge=ID_MIN, lt=ID_LIMIT)]
"""A transaction, customer or terminal id: an integer in [0, 2**63)."""
FraudLabel = Annotated[int, Field(strict=True, ge=0, le=1)]
"""1 = fraud, 0 = genuine."""
Amount = Annotated[
    float,
    Field(
        strict=True,
        ge=0,
        le=MAX_AMOUNT,
        allow_inf_nan=False,
        description=f"Amount, at most {MAX_AMOUNT:g}.",
    ),
]
"""A transaction amount (a JSON integer is a number too)."""
EventTime = Annotated[datetime, BeforeValidator(_not_a_number), AfterValidator(_checked_event_time)]
"""When the transaction happened (an ISO 8601 string in JSON), naive UTC, within the policy."""
_TEXT_INTEGERS = frozenset(("transaction_id", "customer_id", "terminal_id", "tx_fraud"))


def from_text(column: str, text: str) -> Any:
    """A CSV cell as the value the contract takes: digits to ``int``, amounts to ``float``,
    ISO 8601 to ``datetime``; anything else stays text, for the contract to refuse."""
    try:
        if column in _TEXT_INTEGERS:
            return int(text) if _DIGITS.fullmatch(text) else text
        if column == "tx_amount":
            return float(text)
        if column == "tx_datetime":
            return datetime.fromisoformat(text)
    except ValueError:
        return text
    return text


def _check_extra_value(value: Any, where: str, depth: int) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if not INT_MIN <= value < ID_LIMIT:
            raise ValueError(f"extra field {where}: integer outside the 64-bit range")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"extra field {where}: number must be finite")
    elif isinstance(value, str):
        check_text(value, f"extra field {where}")
    elif isinstance(value, list | dict):
        if depth >= MAX_EXTRA_DEPTH:
            raise ValueError(f"extra field {where}: nested deeper than {MAX_EXTRA_DEPTH}")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str):
                check_text(key, f"extra field {where}: key")
            _check_extra_value(item, f"{where}.{key}", depth + 1)
    else:
        raise ValueError(f"extra field {where}: unsupported type {type(value).__name__}")


def check_text(text: str, what: str) -> None:
    """A string the databases store: no NUL, valid UTF-8 (no lone surrogate)."""
    if "\x00" in text:
        raise ValueError(f"{what} contains a NUL character")
    try:
        text.encode()
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid Unicode text") from None


def check_extras(extras: dict[str, Any]) -> dict[str, Any]:
    """``extras`` when every value is safe to store and their JSON fits ``MAX_EXTRA_BYTES``."""
    for key, value in extras.items():
        check_text(key, "extra field name")
        _check_extra_value(value, repr(key), 1)
    size = len(orjson.dumps(extras))
    if size > MAX_EXTRA_BYTES:
        raise ValueError(
            f"extra fields take {size} bytes of JSON; the limit is {MAX_EXTRA_BYTES} bytes"
        )
    return extras


Extras = Annotated[dict[str, Any], AfterValidator(check_extras)]
"""Fields beyond the contract's columns, kept as JSON when small and safe."""


class TransactionFields(BaseModel):
    """The five columns of a transaction, as every entrance's model declares them."""

    transaction_id: Id
    tx_datetime: EventTime
    customer_id: Id
    terminal_id: Id
    tx_amount: Amount

    def extra_fields(self) -> dict[str, Any] | None:
        """The fields beyond the contract's columns, to store beside it (None: none)."""
        return None
