"""Page: the fraud lead's view of stored decisions, filtered, with labels as they mature.

Filters: transaction days, model version, decision, amount band, fraud scenario (where the
data carries it). Charts: flag rate, precision and recall per day (as labels arrive),
prevented and missed loss, the review queue's load, the score distribution.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import streamlit as st
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from vigil.data.schema import SCENARIO_NAMES
from vigil.storage.analytics import AnalyticsFilter, daily_summary, model_versions, score_histogram
from vigil.ui.options import UiOptions
from vigil.ui.views.common import database_or_warning

ALL = "All"
DECISIONS = {ALL: None, "Flagged": 1, "Approved": 0}
# Amount bands: (from, to) with "to" excluded; the last is the handbook's large-amount rule.
AMOUNT_BANDS: dict[str, tuple[float | None, float | None]] = {
    ALL: (None, None),
    "< 20": (None, 20.0),
    "20 – 100": (20.0, 100.0),
    "100 – 220": (100.0, 220.0),
    "≥ 220": (220.0, None),
}
SCENARIOS = {ALL: None, **{name: code for code, name in SCENARIO_NAMES.items()}}


def _filters(connection: Connection) -> AnalyticsFilter:
    everything = daily_summary(connection)
    first, last = (
        (everything["day"].min().date(), everything["day"].max().date())
        if not everything.empty
        else (date.today(), date.today())
    )
    top, bottom = st.columns(3), st.columns(3)
    days = top[0].date_input("Transaction days", value=(first, last), key="days")
    version = top[1].selectbox("Model version", [ALL, *model_versions(connection)], key="version")
    decision = top[2].selectbox("Decision", list(DECISIONS), key="decision")
    band = bottom[0].selectbox("Amount", list(AMOUNT_BANDS), key="amount_band")
    scenario = bottom[1].selectbox(
        "Fraud scenario (labelled data)", list(SCENARIOS), key="scenario"
    )
    start, end = (days[0], days[-1]) if isinstance(days, tuple) and days else (first, last)
    low, high = AMOUNT_BANDS[band]
    return AnalyticsFilter(
        start=start,
        end=end,
        model_version=None if version == ALL else version,
        decision=DECISIONS[decision],
        min_amount=low,
        max_amount=high,
        scenario=SCENARIOS[scenario],
    )


def _ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2%}" if denominator else "n/a"


def _headline(daily: pd.DataFrame) -> None:
    total = int(daily["transactions"].sum())
    caught, alarms = int(daily["caught"].sum()), int(daily["false_alarms"].sum())
    frauds = int(daily["confirmed_frauds"].sum())
    first, second = st.columns(4), st.columns(4)
    first[0].metric("Transactions", f"{total:,}")
    first[1].metric("Flagged", _ratio(int(daily["flagged"].sum()), total))
    first[2].metric("Flagged amount", f"{float(daily['flagged_amount'].sum()):,.2f}")
    first[3].metric("Confirmed fraud rate", _ratio(frauds, total))
    second[0].metric("Precision (labelled)", _ratio(caught, caught + alarms))
    second[1].metric("Recall (labelled)", _ratio(caught, frauds))
    second[2].metric("Prevented loss", f"{float(daily['prevented_loss'].sum()):,.2f}")
    second[3].metric("Missed loss", f"{float(daily['missed_loss'].sum()):,.2f}")
    st.caption(
        f"Days are transaction days. {_ratio(int(daily['labelled'].sum()), total)} of these "
        f"decisions have a label so far; {int(daily['awaiting_review'].sum()):,} flagged ones "
        "await review. Precision and recall move as labels arrive."
    )


def _charts(daily: pd.DataFrame, histogram: pd.DataFrame) -> None:
    by_day = daily.set_index("day")
    left, right = st.columns(2)
    left.subheader("Flag rate and confirmed fraud rate")
    left.line_chart(by_day[["flag_rate", "fraud_rate"]])
    right.subheader("Precision and recall as labels mature")
    right.line_chart(by_day[["precision", "recall", "labelled_share"]])
    left, right = st.columns(2)
    left.subheader("Prevented and missed loss")
    left.bar_chart(by_day[["prevented_loss", "missed_loss"]])
    right.subheader("Review queue: flagged, and still without a label")
    right.bar_chart(by_day[["flagged", "awaiting_review"]], stack=False)
    st.subheader("Score distribution")
    st.bar_chart(histogram.set_index("score_from")["predictions"])


def render(options: UiOptions) -> None:
    """Draw the page."""
    st.header("Analytics")
    engine = database_or_warning(options)
    if engine is None:
        return
    try:
        with engine.connect() as connection:
            where = _filters(connection)
            daily = daily_summary(connection, where)
            histogram = score_histogram(connection, where=where)
    except SQLAlchemyError as error:
        st.error(f"Could not read predictions: {error}")
        return
    if daily.empty:
        st.info("No stored predictions match. Score transactions through the API or the worker.")
        return
    _headline(daily)
    _charts(daily, histogram)
    with st.expander("Daily figures"):
        st.dataframe(daily, hide_index=True)
