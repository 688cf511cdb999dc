"""Page: recent predictions from the database, with filters."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from vigil.storage.analytics import HistoryFilter, model_versions, prediction_history
from vigil.storage.case_copy import sync_stored_days
from vigil.ui.options import UiOptions
from vigil.ui.views.common import database_or_warning

ALL = "All"
LABELS = {ALL: None, "Flagged": 1, "Legitimate": 0}


def _filters(versions: list[str]) -> HistoryFilter:
    cols = st.columns(5)
    label = cols[0].selectbox("Decision", list(LABELS), key="decision")
    version = cols[1].selectbox("Model version", [ALL, *versions], key="model_version")
    min_score = cols[2].slider("Minimum score", 0.0, 1.0, 0.0, 0.01, key="min_score")
    customer = cols[3].text_input("Customer id", "", key="customer")
    limit = cols[4].number_input("Rows", min_value=1, max_value=10_000, value=200, key="rows")
    return HistoryFilter(
        limit=int(limit),
        label=LABELS[label],
        model_version=None if version == ALL else version,
        min_score=float(min_score),
        customer_id=int(customer) if customer.strip().isdigit() else None,
    )


def render(options: UiOptions) -> None:
    """Draw the page."""
    st.header("History")
    engine = database_or_warning(options)
    if engine is None:
        return
    try:
        with engine.connect() as connection:
            versions = model_versions(connection)
        where = _filters(versions)
        if where.customer_id is not None:
            # the card's rows are read from the case queue's copy: every stored day first
            with engine.begin() as connection:
                sync_stored_days(connection)
        with engine.connect() as connection:
            frame = prediction_history(connection, where)
    except SQLAlchemyError as error:
        st.error(f"Could not read predictions: {error}")
        return
    if frame.empty:
        st.info("No stored predictions match. Score transactions through the API or the worker.")
        return
    st.caption(f"{len(frame)} newest matching prediction(s); tx_fraud is the label, if known.")
    st.dataframe(frame, hide_index=True)
    _explain(frame)


def _explain(frame: pd.DataFrame) -> None:
    """One decision of the table with its reason codes, score, threshold and label."""
    st.subheader("Why was it decided so?")
    chosen = st.selectbox(
        "Transaction", list(frame["transaction_id"]), key="explain", format_func=str
    )
    row = frame[frame["transaction_id"] == chosen].iloc[0]
    cols = st.columns(4)
    cols[0].metric("Score", f"{row['score']:.4f}")
    cols[1].metric("Decision", "Flagged" if row["label"] == 1 else "Approved")
    cols[2].metric("Threshold", f"{row['threshold']:.4f}")
    known = row["tx_fraud"]
    cols[3].metric("Label", "not yet" if pd.isna(known) else ("fraud" if known else "genuine"))
    reasons = list(row["reason_codes"] or [])
    if reasons:
        st.markdown(
            f"**Reason codes** (model {row['model_version']}), strongest first: "
            + ", ".join(f"`{feature}`" for feature in reasons)
        )
    else:
        st.caption("No reason codes: no feature pushed this score above the training baseline.")
