"""The demo video's analyst scenes: the case queue, a verdict, the card's next payment scored.

The steps are those of the real-browser test (tests/unit/test_cases_browser.py): open
``vigil ui``'s Cases page, give verdicts with one key or one click, and score the card's next
payment. The demo's analyst knows the simulated truth: a case is ``t`` (fraud, terminal
compromised) when the card paid at a compromised terminal that day (the generator's scenario
2), ``f`` for any other fraud, ``l`` when none. The case shown is the first one in queue order,
newest replayed day first, whose card paid at a terminal compromised inside the label delay:
the delayed-label terminal risk cannot know it yet, the analyst's verdict can (ADR 0017).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pandas as pd

from vigil.data import schema
from vigil.reports.video import Recorder

COMPROMISED_TERMINAL = 2  # the generator's scenario: every payment at the terminal is a fraud
ANALYST = "ana"
NEXT_IDS = (990000011, 990000012)  # the card's payments before and after the verdict


@dataclass(frozen=True)
class Target:
    """The case the scenes review: the card, the day and the compromised terminal it paid at;
    ``before``: (card, key) of the open cases ranked above it, reviewed first."""

    day: date
    customer_id: int
    terminal_id: int
    amount: float
    compromised_days: int  # how long before the payment the terminal's first fraud was
    before: list[tuple[int, str]]


def verdict_key(rows: pd.DataFrame) -> str:
    """The key the analyst presses for a card's payments of the day (simulated truth)."""
    if (rows[schema.TX_FRAUD_SCENARIO] == COMPROMISED_TERMINAL).any():
        return "t"
    return "f" if rows[schema.TX_FRAUD].any() else "l"


def find_target(
    cases: Callable[[date], dict[str, Any]],
    truth: pd.DataFrame,
    days: Iterable[date],
    delay_days: int,
) -> Target:
    """The first open case of ``days``' queues (``cases``: ``GET /cases?day=``) whose card paid
    at a terminal compromised less than ``delay_days`` before."""
    compromised = truth[truth[schema.TX_FRAUD_SCENARIO] == COMPROMISED_TERMINAL]
    since = compromised.groupby(schema.TERMINAL_ID)[schema.TX_DATETIME].min()
    by_id = truth.set_index(schema.TRANSACTION_ID)
    for day in days:
        before: list[tuple[int, str]] = []
        for case in cases(day)["cases"]:
            if case["status"] != "open":
                continue
            # a payment the demo made up (the scored example) is no fraud of the simulation
            ids = [t["transaction_id"] for t in case["transactions"]]
            rows = by_id.reindex(ids).fillna({schema.TX_FRAUD: 0, schema.TX_FRAUD_SCENARIO: 0})
            fresh = rows[rows[schema.TX_FRAUD_SCENARIO] == COMPROMISED_TERMINAL]
            age = fresh[schema.TX_DATETIME] - fresh[schema.TERMINAL_ID].map(since)
            fresh = fresh[age < pd.Timedelta(days=delay_days)]
            if len(fresh):
                first = fresh.iloc[0]
                terminal, amount = int(first[schema.TERMINAL_ID]), float(first[schema.TX_AMOUNT])
                card, days_ago = int(case["customer_id"]), int(age.loc[fresh.index[0]].days)
                return Target(day, card, terminal, amount, days_ago, before)
            before.append((int(case["customer_id"]), verdict_key(rows)))
    raise RuntimeError("no queued card paid at a terminal compromised inside the label delay")


def _payment(target: Target, transaction_id: int, moment: datetime) -> dict[str, object]:
    return {
        "transaction_id": transaction_id,
        "tx_datetime": moment.isoformat(timespec="seconds"),
        "customer_id": target.customer_id,
        "terminal_id": target.terminal_id,
        "tx_amount": target.amount,
    }


def _scored(api: str, body: dict[str, object]) -> dict[str, Any]:
    response = httpx.post(f"{api}/predict", json=body, timeout=30)
    response.raise_for_status()
    decision: dict[str, Any] = response.json()
    return decision


def _decision_text(body: dict[str, object], decision: dict[str, Any]) -> str:
    shown = {
        "score": round(decision["score"], 4),
        "label": decision["label"],
        "reason_codes": [code["feature"] for code in decision["reason_codes"]],
    }
    command = f"$ curl -s -X POST /predict -d '{json.dumps(body)}' | jq '{{score, label, ...}}'"
    return f"{command}\n{json.dumps(shown, indent=1)}"


def _open_day(ui: str, day: date, first_card: int) -> Callable[[Any], None]:
    def action(page: Any) -> None:
        page.goto(f"{ui}/?page=cases")
        page.get_by_label("Analyst").fill(ANALYST)
        page.get_by_label("Analyst").press("Enter")
        page.get_by_label("Day").fill(day.isoformat())
        page.get_by_label("Day").press("Enter")
        page.get_by_text(f"Card {first_card} (#1,", exact=False).wait_for(timeout=60_000)
        page.wait_for_timeout(1500)

    return action


def _press_keys(target: Target) -> Callable[[Any], None]:
    def action(page: Any) -> None:
        keys = page.get_by_placeholder("f / t / l / n + Enter")
        following = [card for card, _ in target.before[1:]] + [target.customer_id]
        for (card, key), shown_next in zip(target.before, following, strict=True):
            keys.fill(key)
            keys.press("Enter")
            # the rerun is over once the verdict's message and the next case are drawn: a key
            # typed before that could be lost
            page.get_by_text(f"Card {card}: ", exact=False).wait_for(timeout=30_000)
            page.get_by_text(f"Card {shown_next} (#", exact=False).wait_for(timeout=30_000)
            page.wait_for_timeout(700)
        page.get_by_text(f"Card {target.customer_id} (#", exact=False).wait_for(timeout=30_000)
        page.wait_for_timeout(1500)

    return action


def _review(rec: Recorder, ui: str, target: Target) -> None:
    """The day's queue opened at its first case, then the cases above the target, one key each."""
    first = target.before[0][0] if target.before else target.customer_id
    rec.still(f"13. Case queue, {target.day}: the day's riskiest cards; each case: payments, "
              "scores, reasons, amount × habit, terminal frauds",
              seconds=8, action=_open_day(ui, target.day, first))  # fmt: skip
    ago = "that day" if target.compromised_days == 0 else f"{target.compromised_days} days before"
    rec.still(f"14. {len(target.before)} cases, one key each (f, t, l); card "
              f"{target.customer_id} paid at terminal {target.terminal_id}, compromised {ago}: "
              "inside the label delay", seconds=7, action=_press_keys(target))  # fmt: skip


def _next_payment(rec: Recorder, api: str, target: Target, after: datetime) -> None:
    """The card pays at the terminal again before and after the analyst's click on ``t``."""
    before = _payment(target, NEXT_IDS[0], after + timedelta(minutes=10))
    scored_before = _scored(api, before)
    rec.page.get_by_role("button", name="Fraud, terminal compromised [t]").click()
    rec.page.get_by_text(f"Card {target.customer_id}: ", exact=False).wait_for(timeout=30_000)
    later = _payment(target, NEXT_IDS[1], after + timedelta(minutes=25))
    scored_after = _scored(api, later)
    text = (
        f"# before the verdict\n{_decision_text(before, scored_before)}\n\n"
        "# the analyst clicks 'Fraud, terminal compromised [t]'; after the verdict\n"
        f"{_decision_text(later, scored_after)}\n\n"
        "# reason codes replace one feature, or one feature family (terminal_verdicts: every "
        "verdict feature of the terminal), at a time by its value in a typical genuine payment "
        "(the median of the genuine training rows)"
    )
    caption = (
        f"15. The card pays at terminal {target.terminal_id} again: score "
        f"{scored_before['score']:.2f} before the verdict, {scored_after['score']:.2f} after"
    )
    shown = f"# card {target.customer_id} pays {target.amount:.2f} at terminal {target.terminal_id}"
    rec.terminal(shown, text, caption, seconds=9)


def case_scenes(
    rec: Recorder,
    api: str,
    ui: str,
    api_key: str,
    truth: pd.DataFrame,
    after: datetime,
    delay_days: int,
) -> None:
    """The case queue of a replayed day, verdicts by key and by click, the card's next payment
    scored before and after the verdict (``after``: the newest stored event)."""

    def cases(day: date) -> dict[str, Any]:
        response = httpx.get(
            f"{api}/cases", params={"day": day.isoformat()}, headers={"X-API-Key": api_key}
        )
        response.raise_for_status()
        queue: dict[str, Any] = response.json()
        return queue

    newest = truth[schema.TX_DATETIME].max().date()
    days = [newest - timedelta(days=n) for n in range(7)]
    target = find_target(cases, truth, days, delay_days)
    _review(rec, ui, target)
    _next_payment(rec, api, target, after)
