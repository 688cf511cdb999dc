"""Page: the business view of stored predictions (rates, flagged amount, score distribution)."""

from __future__ import annotations

import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from vigil.storage.analytics import daily_summary, score_histogram
from vigil.ui.options import UiOptions
from vigil.ui.views.common import database_or_warning


def render(options: UiOptions) -> None:
    """Draw the page."""
    st.header("Analytics")
    engine = database_or_warning(options)
    if engine is None:
        return
    try:
        with engine.connect() as connection:
            daily = daily_summary(connection)
            histogram = score_histogram(connection)
    except SQLAlchemyError as error:
        st.error(f"Could not read predictions: {error}")
        return
    if daily.empty:
        st.info("No stored predictions yet. Score transactions through the API or the worker.")
        return
    total = int(daily["transactions"].sum())
    cols = st.columns(4)
    cols[0].metric("Transactions", f"{total:,}")
    cols[1].metric("Flagged", f"{int(daily['flagged'].sum()) / total:.2%}")
    cols[2].metric("Flagged amount", f"{float(daily['flagged_amount'].sum()):,.2f}")
    cols[3].metric("Confirmed fraud rate", f"{int(daily['confirmed_frauds'].sum()) / total:.2%}")
    st.caption("Days are transaction days; confirmed frauds count labels received so far.")
    by_day = daily.set_index("day")
    st.subheader("Flag rate and confirmed fraud rate per day")
    st.line_chart(by_day[["flag_rate", "fraud_rate"]])
    st.subheader("Flagged amount per day")
    st.bar_chart(by_day["flagged_amount"])
    st.subheader("Score distribution")
    st.bar_chart(histogram.set_index("score_from")["predictions"])
    with st.expander("Daily figures"):
        st.dataframe(daily, hide_index=True)
