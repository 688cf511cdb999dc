"""HTTP bodies of the case queue: cases out, an analyst's verdict in."""

from __future__ import annotations

import unicodedata
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)

from vigil.cases import Case, CaseQueue
from vigil.data.transaction import EventTime, Id, check_text

# Event-time days the queue can hold: the transaction contract's years.
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(9999, 12, 30)
MAX_FRAUD_IDS = 1000


# A time of the case bodies: naive UTC, as stored (the transaction contract's event time). The
# schema says so: JSON Schema's "date-time" demands an offset, which these values never carry.
UtcTime = Annotated[
    datetime,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?$",
            "description": "UTC, ISO 8601 without an offset.",
        }
    ),
]


def plain_text(allowed: str = "") -> AfterValidator:
    """An analyst's text as stored and shown: :func:`check_text`'s, and no control character
    (Unicode's Cc: C0, DEL, C1) but those ``allowed`` — an escape sequence would restyle a
    terminal showing it, a CR rewrite a log line; refused naming the field and the character."""

    def check(value: str, info: ValidationInfo) -> str:
        check_text(value, info.field_name or "text")
        for position, char in enumerate(value):
            if unicodedata.category(char) == "Cc" and char not in allowed:
                raise ValueError(
                    f"{info.field_name} holds the control character U+{ord(char):04X} at "
                    f"position {position}"
                )
        return value

    return AfterValidator(check)


Analyst = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        description="Who gave the verdict: one line, no control characters.",
    ),
    plain_text(),
]
Note = Annotated[str, Field(max_length=2000), plain_text(allowed="\n\t")]


class CaseTransactionOut(BaseModel):
    """One of the card's transactions of the day (or of the look-back)."""

    transaction_id: int
    tx_datetime: UtcTime
    terminal_id: int
    tx_amount: float
    score: float = Field(description="Fraud probability in [0, 1].")
    label: int = Field(description="1 = flagged by the model's threshold.")
    reason_codes: list[str] = Field(
        description="Features or feature families that raised the score most."
    )
    model_version: str
    amount_vs_habit: float | None = Field(
        description="Amount over the card's mean amount of the habit days; null: no history."
    )
    terminal_frauds: int = Field(description="Known frauds at the terminal, fraud-run window.")
    terminal_last_fraud: UtcTime | None
    terminal_compromised: bool = Field(description="An analyst marked the terminal compromised.")
    verdict: Literal["fraud", "legit"] | None
    reviewed_at: UtcTime | None
    analyst: str | None
    case_day: date | None = Field(
        description="The day of the case the verdict was given for; another day's (a later "
        "day's look-back labelled the transaction) does not review this day's case."
    )


class CaseOut(BaseModel):
    """A card's day: its transactions, rank in the queue (null: outside the budget), verdict."""

    customer_id: int
    day: date
    rank: int | None
    top_score: float
    status: Literal["open", "reviewed"] = Field(
        description="reviewed: every transaction of the day given a verdict for this day's "
        "case (a later day's look-back verdict does not count: a past day stays as worked)."
    )
    verdict: Literal["fraud", "legit"] | None = Field(
        description="fraud when a verdict given for this day's case is fraud."
    )
    alerts: int = Field(description="Transactions flagged by the model.")
    total_amount: float
    habit_mean: float | None = Field(description="The card's mean amount over the habit days.")
    habit_transactions: int
    transactions: list[CaseTransactionOut]

    @classmethod
    def of(cls, case: Case) -> CaseOut:
        """The body of a case."""
        return cls.model_validate(case, from_attributes=True)


class CardCaseOut(CaseOut):
    """One card's case: also its transactions of the look-back that the verdict labels too."""

    lookback: list[CaseTransactionOut] = Field(
        description="The card's transactions of the cases.lookback_days up to the day's end "
        "(the day excluded) without a label yet: a verdict labels them with the day's."
    )

    @classmethod
    def of(cls, case: Case) -> CardCaseOut:
        """The body of one card's case."""
        return cls.model_validate(case, from_attributes=True)


class CaseQueueOut(BaseModel):
    """The day's queue, as many cards as the review budget: those reviewed that day, then the
    top cards by score not known compromised in the ``cases.block_days`` before the day."""

    day: date
    budget: int
    size: int = Field(
        description="Cards in the day's queue: the budget; fewer when fewer cards can be "
        "offered, more when more were reviewed that day."
    )
    reviewed: int = Field(description="Cases of the queue with status reviewed.")
    frauds: int = Field(description="Reviewed cases with verdict fraud.")
    precision: float | None = Field(
        description="frauds / reviewed: the live card precision of the reviewed cards."
    )
    cases: list[CaseOut] = Field(description="The queue's cases of the asked status, by rank.")

    @classmethod
    def of(cls, queue: CaseQueue) -> CaseQueueOut:
        """The body of a queue."""
        return cls.model_validate(queue, from_attributes=True)


class VerdictIn(BaseModel):
    """An analyst's verdict on a card's day; its transactions' labels follow at once."""

    model_config = ConfigDict(extra="forbid")

    verdict: Literal["fraud", "legit"]
    analyst: Analyst
    terminal_compromised: bool = Field(
        False, description="The terminals of the fraudulent transactions are compromised."
    )
    note: Note | None = Field(
        None,
        description="Free text; may span lines: newline and tab allowed, no other control "
        "characters.",
    )
    day: date | None = Field(
        None, ge=FIRST_DAY, le=LAST_DAY, description="The case's day (default: today)."
    )
    fraud_transaction_ids: list[Id] | None = Field(
        None,
        max_length=MAX_FRAUD_IDS,
        description="With verdict fraud: only these transactions (of the day or the "
        "look-back) are fraud (default: all).",
    )
    reviewed_at: EventTime | None = Field(
        None, description="When the card was reviewed (default: now on the event clock)."
    )
    compromised_transaction_ids: list[Id] | None = Field(
        None,
        max_length=MAX_FRAUD_IDS,
        description="With terminal_compromised: only these fraudulent transactions' terminals "
        "are compromised (default: all of them), e.g. a terminal compromise beside a stolen "
        "card's other frauds.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> VerdictIn:
        """A terminal is compromised, and transactions are named, only in a fraud verdict;
        compromised transactions only with ``terminal_compromised``."""
        if self.verdict == "legit" and (self.terminal_compromised or self.fraud_transaction_ids):
            raise ValueError("terminal_compromised and fraud_transaction_ids need verdict fraud")
        if self.compromised_transaction_ids and not self.terminal_compromised:
            raise ValueError("compromised_transaction_ids needs terminal_compromised")
        return self


class VerdictOut(BaseModel):
    """What the verdict wrote, and the case as it is now."""

    customer_id: int
    day: date
    labelled: int = Field(description="Transactions labelled by this request (0: a repeat).")
    repeated: bool = Field(description="The same verdict had been given before: nothing new.")
    case: CardCaseOut
