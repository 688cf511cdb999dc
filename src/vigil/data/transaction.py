"""The transaction contract: the one place that says what a valid transaction is.

Every entrance applies these rules identically: the HTTP body (``serving.schemas``), the broker
message (``streaming.messages``), the pandera data contract of uploads and datasets
(``data.contracts``) and the online state store (``features.state``). They build their models
from the types here instead of restating them.

- **Ids** (``transaction_id``, ``customer_id``, ``terminal_id``) and **labels** are exact
  integers: an ``int``, an integral float (``5.0``) or a string of ASCII digits. Fractions
  (``5.9``), booleans and any other string (``"12\\x005"``, ``" 12"``) are refused rather
  than truncated or coerced. Ids lie in ``[0, 2**63)``, what PostgreSQL ``BIGINT`` and SQLite
  ``INTEGER`` both store.
- **Amounts** are finite floats in ``[0, MAX_AMOUNT]`` (1e9: far above any card payment, and
  small enough that float32, the model's input type, keeps cents up to about 1e5 and units up
  to 1e7). NaN, infinities and ``1e309`` are refused; booleans are not numbers here.
- **Event time** is an ISO 8601 string or a datetime, never a bare number (seconds and
  nanoseconds would be guessed differently by pydantic and pandas). Time zones are converted
  to naive UTC (:func:`naive_utc`), the form stored and used by the features. Times before
  ``MIN_EVENT_TIME`` (2000-01-01) are refused as clock or parsing mistakes; times later than
  the server clock plus a tolerance (:class:`EventTimePolicy`, the typed setting
  ``data.future_tolerance_seconds``) are refused, because a far-future event would evict every
  customer's history from the online state. Past events are legitimate (late arrivals,
  replays of the handbook's 2018 data, backfills) and accepted.
- **Extra fields** beyond the five columns are kept (stored as JSON beside the transaction)
  when they are small and safe: JSON scalars, lists and objects nested at most
  ``MAX_EXTRA_DEPTH`` deep, strings without NUL and encodable as UTF-8, integers in the
  ``BIGINT`` range, finite floats, at most ``MAX_EXTRA_BYTES`` bytes of JSON per transaction.
  Anything else is refused with a message naming the field.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class EventTimePolicy:
    """How far ahead of the server clock an event time may be (clock skew of producers)."""

    future_tolerance: timedelta = timedelta(seconds=DEFAULT_FUTURE_TOLERANCE_SECONDS)

    @classmethod
    def from_config(cls, data: DataConfig) -> EventTimePolicy:
        """The policy of the ``data.future_tolerance_seconds`` setting."""
        return cls(timedelta(seconds=data.future_tolerance_seconds))

    def latest(self) -> datetime:
        """The latest event time accepted now, naive UTC."""
        return datetime.now(UTC).replace(tzinfo=None) + self.future_tolerance

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


def exact_int(value: Any) -> Any:
    """An id or label as an exact integer: no bool, no fraction, no loose string."""
    if isinstance(value, bool):
        raise ValueError("must be an integer, not a boolean")
    if isinstance(value, str):
        if not _DIGITS.fullmatch(value):
            raise ValueError("must be an integer written with digits only")
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise ValueError("must be an exact integer (no fraction, finite)")
        return int(value)
    return value


def plain_number(value: Any) -> Any:
    """An amount: a finite number or numeric string, not a boolean (ranges checked after)."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    if isinstance(value, str | float):
        try:
            number = float(value)
        except ValueError:
            return value  # pydantic reports the parsing error
        if not math.isfinite(number):
            raise ValueError("must be a finite number")
    return value


def event_time_value(value: Any) -> Any:
    """Event time as a datetime or ISO 8601 string, never a bare number."""
    if isinstance(value, int | float):
        raise ValueError("must be an ISO 8601 date-time string, not a number")
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must be an ISO 8601 date-time string")
    return value


def _checked_event_time(value: datetime, info: ValidationInfo) -> datetime:
    return policy_of(info).check(naive_utc(value))


Id = Annotated[int, BeforeValidator(exact_int), Field(ge=ID_MIN, lt=ID_LIMIT)]
"""A transaction, customer or terminal id."""
FraudLabel = Annotated[int, BeforeValidator(exact_int), Field(ge=0, le=1)]
"""1 = fraud, 0 = genuine."""
Amount = Annotated[
    float,
    BeforeValidator(plain_number),
    Field(ge=0, le=MAX_AMOUNT, allow_inf_nan=False, description=f"At most {MAX_AMOUNT:g}."),
]
"""A transaction amount."""
EventTime = Annotated[
    datetime, BeforeValidator(event_time_value), AfterValidator(_checked_event_time)
]
"""When the transaction happened, naive UTC, within the event-time policy."""


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
