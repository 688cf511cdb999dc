"""Page: score one transaction, in this process with the ONNX model or through the API."""

from __future__ import annotations

import time
from datetime import date, datetime

import streamlit as st
from pydantic import ValidationError

from vigil.features import InMemoryStateStore, OnlineFeatureComputer
from vigil.inference.decision import Decision
from vigil.inference.errors import InvalidFeaturesError, ModelScoringError
from vigil.serving.schemas import Transaction
from vigil.ui import client
from vigil.ui.options import UiOptions
from vigil.ui.scoring import score_transaction
from vigil.ui.views.common import decision_card, model_or_warning

IN_PROCESS, VIA_API = "This process (ONNX model)", "The API"
_FEATURE_STATE = "score_feature_state"


def _session_features(options: UiOptions) -> OnlineFeatureComputer:
    """Online feature state private to this browser session (the shared state is untouched)."""
    if _FEATURE_STATE not in st.session_state:
        st.session_state[_FEATURE_STATE] = OnlineFeatureComputer(
            options.settings.features, InMemoryStateStore()
        )
    computer: OnlineFeatureComputer = st.session_state[_FEATURE_STATE]
    return computer


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


def _score_in_process(options: UiOptions, transaction: Transaction) -> Decision | None:
    scorer = model_or_warning(options)
    if scorer is None:
        return None
    try:
        return score_transaction(
            scorer,
            _session_features(options),
            transaction,
            options.settings.inference.reason_codes,
        )
    except (InvalidFeaturesError, ModelScoringError) as error:
        st.error(f"The model could not score this transaction: {error}")
        return None


def _score_via_api(base_url: str, transaction: Transaction) -> Decision | None:
    try:
        with client.make_client(base_url) as http:
            return client.predict(http, transaction)
    except client.ApiError as error:
        st.error(str(error))
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
            f"Model {options.settings.inference.model_path}; feature history is kept for this "
            "browser session only and nothing is stored."
        )
    transaction = _transaction_form(options.settings.data.start_date)
    if transaction is None:
        return
    if mode == VIA_API:
        decision = _score_via_api(base_url, transaction)
    else:
        decision = _score_in_process(options, transaction)
    if decision is not None:
        decision_card(decision)
