"""Page: the analysts' case queue. One case at a time, a verdict in one click or one key.

The queue comes from ``GET /cases`` (the day's riskiest cards, as many as the team reviews);
a verdict is ``POST /cases/{card}/verdict``, which labels the card's transactions at once:
the day's and, shown below them, its earlier ones of the look-back without a label yet.
Keyboard: type ``f`` (fraud), ``t`` (fraud, terminal compromised), ``l`` (legitimate) or
``n`` (next case) in the key box and press Enter; the next open case follows a verdict.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
import streamlit as st

from vigil.serving.case_schemas import CardCaseOut, CaseQueueOut, CaseTransactionOut, VerdictIn
from vigil.ui.client import ApiClient, ApiError
from vigil.ui.options import UiOptions
from vigil.ui.views.common import api_or_warning

# key -> (button label, verdict body fields); "n" moves on without a verdict
ACTIONS: dict[str, tuple[str, dict[str, Any] | None]] = {
    "f": ("Fraud [f]", {"verdict": "fraud"}),
    "t": ("Fraud, terminal compromised [t]", {"verdict": "fraud", "terminal_compromised": True}),
    "l": ("Legitimate [l]", {"verdict": "legit"}),
    "n": ("Next case [n]", None),
}
CURRENT, MESSAGE, KEYS = "case_current", "case_message", "case_keys"


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip()) if text.strip() else None
    except ValueError:
        st.error(f"Not a day: {text!r} (YYYY-MM-DD, or empty for today)")
        return None


def _next_open(queue: CaseQueueOut, after: int | None) -> int | None:
    """The first open case after card ``after`` in queue order (wrapping), else None."""
    cards = [case.customer_id for case in queue.cases]
    start = cards.index(after) + 1 if after in cards else 0
    for case in queue.cases[start:] + queue.cases[:start]:
        if case.status == "open" and case.customer_id != after:
            return case.customer_id
    return None


def _act(api: ApiClient, queue: CaseQueueOut, key: str, analyst: str) -> None:
    """Give the verdict of ``key`` on the current case (or move on), then pick the next."""
    current = st.session_state.get(CURRENT)
    if key not in ACTIONS or current is None:
        st.session_state[MESSAGE] = ("warning", f"Unknown key {key!r}: use f, t, l or n.")
        return
    _, fields = ACTIONS[key]
    if fields is not None:
        if not analyst.strip():
            st.session_state[MESSAGE] = ("warning", "Enter your name as analyst first.")
            return
        try:
            verdict = VerdictIn.model_validate({**fields, "analyst": analyst, "day": queue.day})
            answer = api.verdict(current, verdict)
        except (ApiError, ValueError) as error:
            st.session_state[MESSAGE] = ("error", str(error))
            return
        done = (
            "the same verdict was already recorded"
            if answer.repeated
            else (f"{answer.labelled} transaction(s) labelled {fields['verdict']}")
        )
        st.session_state[MESSAGE] = ("success", f"Card {current}: {done}.")
    following = _next_open(queue, current)
    st.session_state[CURRENT] = current if following is None else following


def _on_keys(api: ApiClient, queue: CaseQueueOut, analyst: str) -> None:
    typed = str(st.session_state.get(KEYS, "")).strip().lower()
    st.session_state[KEYS] = ""
    if typed:
        _act(api, queue, typed[0], analyst)


def _verdict_text(row: CaseTransactionOut, day: date) -> str:
    """The transaction's verdict, with the day it was given for when that is another day's
    case (a later day's look-back labelled it; this day's case is not reviewed by it)."""
    if row.verdict is None:
        return ""
    if row.case_day is None or row.case_day == day:
        return row.verdict
    return f"{row.verdict} (for {row.case_day.isoformat()})"


def _transactions(rows: list[CaseTransactionOut], day: date) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "time": [t.tx_datetime for t in rows],
            "transaction": [t.transaction_id for t in rows],
            "terminal": [t.terminal_id for t in rows],
            "amount": [f"{t.tx_amount:.2f}" for t in rows],
            "× habit": [
                "" if t.amount_vs_habit is None else f"{t.amount_vs_habit:.2f}" for t in rows
            ],
            "score": [f"{t.score:.4f}" for t in rows],
            "flagged": ["yes" if t.label else "" for t in rows],
            "reasons": [", ".join(t.reason_codes) for t in rows],
            "terminal frauds": [t.terminal_frauds for t in rows],
            "terminal compromised": ["yes" if t.terminal_compromised else "" for t in rows],
            "verdict": [_verdict_text(t, day) for t in rows],
        }
    )


def _queue_table(queue: CaseQueueOut) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "rank": [c.rank for c in queue.cases],
            "card": [c.customer_id for c in queue.cases],
            "top score": [round(c.top_score, 4) for c in queue.cases],
            "alerts": [c.alerts for c in queue.cases],
            "transactions": [len(c.transactions) for c in queue.cases],
            "amount": [round(c.total_amount, 2) for c in queue.cases],
            "status": [c.status for c in queue.cases],
            "verdict": [c.verdict or "" for c in queue.cases],
        }
    )


def _show_case(case: CardCaseOut) -> None:
    habit = (
        "no history"
        if case.habit_mean is None
        else (f"mean {case.habit_mean:.2f} over {case.habit_transactions} transaction(s)")
    )
    rank = f"#{case.rank}" if case.rank is not None else "outside the queue"
    st.subheader(f"Card {case.customer_id} ({rank}, top score {case.top_score:.4f})")
    st.caption(
        f"{case.day.isoformat()}: {len(case.transactions)} transaction(s), {case.alerts} "
        f"flagged, {case.total_amount:.2f} in all; habit {habit}; status {case.status}"
        + (f", verdict {case.verdict}" if case.verdict else "")
    )
    st.table(_transactions(case.transactions, case.day))  # a handful of rows, as plain text
    if case.lookback:
        st.caption(
            f"{len(case.lookback)} earlier transaction(s) of the look-back without a label: "
            "the verdict labels them too"
        )
        st.table(_transactions(case.lookback, case.day))


def _verdict_bar(api: ApiClient, queue: CaseQueueOut, analyst: str) -> None:
    columns = st.columns(len(ACTIONS) + 1)
    for column, (key, (label, _)) in zip(columns, ACTIONS.items(), strict=False):
        column.button(
            label,
            key=f"case_action_{key}",
            on_click=_act,
            args=(api, queue, key, analyst),
            type="primary" if key != "n" else "secondary",
            use_container_width=True,
        )
    columns[-1].text_input(
        "Keys (f, t, l, n + Enter)",
        key=KEYS,
        on_change=_on_keys,
        args=(api, queue, analyst),
        label_visibility="collapsed",
        placeholder="f / t / l / n + Enter",
    )


def render(options: UiOptions) -> None:
    """Draw the page."""
    st.header("Cases")
    api = api_or_warning(options, options.api_url)
    if api is None:
        return
    left, right = st.columns([1, 1])
    analyst = left.text_input("Analyst", key="case_analyst", placeholder="your name")
    day = _day(right.text_input("Day", key="case_day", placeholder="YYYY-MM-DD (empty: today)"))
    try:
        queue = api.cases(day)
    except ApiError as error:
        st.error(str(error))
        return
    precision = "–" if queue.precision is None else f"{queue.precision:.0%}"
    figures = st.columns(4)
    figures[0].metric("Day", queue.day.isoformat())
    figures[1].metric("Reviewed", f"{queue.reviewed} / {queue.size}")
    figures[2].metric("Found fraud", queue.frauds)
    figures[3].metric("Queue precision", precision)
    if not queue.cases:
        st.info("No scored transaction that day: nothing to review.")
        return
    cards = [case.customer_id for case in queue.cases]
    if st.session_state.get(CURRENT) not in cards:
        first_open = _next_open(queue, None)
        st.session_state[CURRENT] = cards[0] if first_open is None else first_open
    kind, text = st.session_state.pop(MESSAGE, ("", ""))
    if kind:
        getattr(st, kind)(text)
    try:
        case = api.case(st.session_state[CURRENT], queue.day)
    except ApiError as error:
        st.error(str(error))
        return
    _show_case(case)
    _verdict_bar(api, queue, analyst)
    st.markdown("**The day's queue**")
    st.dataframe(_queue_table(queue), hide_index=True, use_container_width=True)
