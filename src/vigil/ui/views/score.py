"""Page: score one transaction through the API (started in this process, or a running one)."""

from __future__ import annotations

import time
from datetime import date, datetime

import streamlit as st
from pydantic import ValidationError

from vigil.serving.schemas import Transaction
from vigil.ui.client import ApiError
from vigil.ui.options import UiOptions
from vigil.ui.views.common import api_or_warning, decision_card

IN_PROCESS, VIA_API = "This process (in-process API)", "The API"


def _transaction_form(start: date) -> Transaction | None:
    with st.form("transaction"):
        left, right = st.columns(2)
        customer = left.number_input(
            "Customer id", min_value=0, value=2513, step=1, key="customer_id"
        )
        terminal = right.number_input(
            "Terminal id", min_value=0, value=7438, step=1, key="terminal_id"
        )
        amount = left.number_input("Amount", min_value=0.0, value=57.16, step=1.0, key="tx_amount")
        day = right.date_input("Date", value=start, key="tx_date")
        moment = right.time_input("Time", value=datetime(2000, 1, 1, 12, 0).time(), key="tx_time")
        submitted = st.form_submit_button("Score", type="primary")
    if not submitted:
        return None
    try:
        return Transaction(
            transaction_id=time.time_ns() // 1000,  # unique per click; the API stores it
            tx_datetime=datetime.combine(day, moment),
            customer_id=int(customer),
            terminal_id=int(terminal),
            tx_amount=float(amount),
        )
    except ValidationError as error:
        st.error(f"Invalid transaction: {error}")
        return None


def render(options: UiOptions) -> None:
    """Draw the page."""
    st.header("Score a transaction")
    serving = options.settings.serving
    mode = st.radio(
        "Score with",
        [IN_PROCESS, VIA_API],
        index=1 if options.api_url else 0,
        horizontal=True,
        key="score_mode",
    )
    base_url = ""
    if mode == VIA_API:
        default_url = options.api_url or f"http://{serving.host}:{serving.port}"
        base_url = st.text_input("API base URL", value=default_url, key="api_url").rstrip("/")
        st.caption("The API computes features from its shared state and stores the prediction.")
    else:
        st.caption(
            f"The API runs inside this process on model {options.settings.inference.model_path}:"
            " features come from the configured state store and the prediction is stored."
        )
    transaction = _transaction_form(options.settings.data.start_date)
    if transaction is None:
        return
    api = api_or_warning(options, base_url)
    if api is None:
        return
    try:
        decision = api.predict(transaction)
    except ApiError as error:
        st.error(str(error))
        return
    decision_card(decision)
