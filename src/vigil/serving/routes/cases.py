"""The analysts' case queue (API key): the day's cases, one card's case, a verdict.

A verdict is a label at once: it goes through the one label path
(:func:`vigil.decisions.labels.record_verdict`), which logs it in ``verdicts``, writes the
labels of the card's transactions of the day and of its unlabelled ones of the look-back
(``cases.lookback_days``, shown in the card's case) and feeds the online state.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status

from vigil.cases import CaseStatus
from vigil.decisions.labels import CaseVerdict
from vigil.serving.case_schemas import (
    FIRST_DAY,
    LAST_DAY,
    CardCaseOut,
    CaseQueueOut,
    VerdictIn,
    VerdictOut,
)
from vigil.serving.deps import ServicesDep
from vigil.serving.schemas import UNREADABLE_BODY, ErrorOut
from vigil.serving.security import ApiKeyDep

router = APIRouter(prefix="/cases", tags=["cases"], dependencies=[ApiKeyDep])

_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Missing X-API-Key."},
    403: {"model": ErrorOut, "description": "Wrong X-API-Key."},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "The card has no scored transaction that day."}
}
CustomerId = Annotated[int, Path(ge=0, lt=2**63, description="The card (customer id).")]
Day = Annotated[
    date | None,
    Query(ge=FIRST_DAY, le=LAST_DAY, description="Event-time day (default: today)."),
]


@router.get(
    "",
    response_model=CaseQueueOut,
    responses=_AUTH,
    summary="The day's case queue: cards ranked by their highest score, review budget long, "
    "without the cards known compromised in the block days before the day",
)
async def cases(
    services: ServicesDep,
    day: Day = None,
    budget: Annotated[
        int | None, Query(ge=1, le=10_000, description="Cards (default: cases.review_budget).")
    ] = None,
    status: Annotated[CaseStatus | None, Query(description="Only open or reviewed cases.")] = None,
) -> CaseQueueOut:
    """Each case: the card's scored transactions of the day, reasons, habit, terminal run.

    The cards reviewed that day (a verdict given for their case of the day) keep their places;
    the others are the best cards without a fraud
    verdict or fraud label known in the ``cases.block_days`` before the day's start (the review
    rule of ``vigil evaluate --feedback``'s investigator, :mod:`vigil.cases.rule`).
    """
    return CaseQueueOut.of(await services.cases.queue(day, budget, status))


@router.get(
    "/{customer_id}",
    response_model=CardCaseOut,
    responses={**_AUTH, **_NOT_FOUND},
    summary="One card's case of the day (also outside the queue), with its look-back",
)
async def case(customer_id: CustomerId, services: ServicesDep, day: Day = None) -> CardCaseOut:
    """404 when the card has no scored transaction that day."""
    return CardCaseOut.of(await services.cases.case(customer_id, day))


@router.post(
    "/{customer_id}/verdict",
    response_model=VerdictOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        **_AUTH,
        **_NOT_FOUND,
        200: {"model": VerdictOut, "description": "The same verdict again: nothing written."},
        409: {"model": ErrorOut, "description": "Already reviewed with another verdict."},
        **UNREADABLE_BODY,
        422: {"description": "Invalid verdict, or one not fitting the case: names the field."},
    },
    summary="An analyst's verdict: labels the card's transactions of the day and its "
    "unlabelled ones of the look-back at once",
)
async def verdict(
    customer_id: CustomerId, body: VerdictIn, services: ServicesDep, response: Response
) -> VerdictOut:
    """201 with the labels written; 200 when the same verdict was given before (idempotent)."""
    given = CaseVerdict(
        customer_id=customer_id,
        day=body.day,
        fraud=body.verdict == "fraud",
        analyst=body.analyst,
        terminal_compromised=body.terminal_compromised,
        note=body.note,
        fraud_transaction_ids=(
            frozenset(body.fraud_transaction_ids) if body.fraud_transaction_ids else None
        ),
        reviewed_at=body.reviewed_at,
        compromised_transaction_ids=(
            frozenset(body.compromised_transaction_ids)
            if body.compromised_transaction_ids
            else None
        ),
    )
    outcome, now = await services.cases.give_verdict(given)
    if outcome.repeated:
        response.status_code = status.HTTP_200_OK
    return VerdictOut(
        customer_id=customer_id,
        day=outcome.day,
        labelled=len(outcome.stored),
        repeated=outcome.repeated,
        case=CardCaseOut.of(now),
    )
