"""Page: simulate a small world of transactions and have the API score it."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from pydantic import ValidationError

from vigil.config import DataConfig
from vigil.data import schema
from vigil.ui.client import ApiError
from vigil.ui.options import UiOptions
from vigil.ui.simulation import LABEL, SCORE, ScoredWorld, simulate_and_score
from vigil.ui.views.common import api_or_warning


def _world_form(base: DataConfig) -> DataConfig | None:
    with st.form("world"):
        cols = st.columns(4)
        customers = cols[0].number_input(
            "Customers", min_value=1, max_value=5000, value=200, key="n_customers"
        )
        terminals = cols[1].number_input(
            "Terminals", min_value=1, max_value=10000, value=400, key="n_terminals"
        )
        days = cols[2].number_input("Days", min_value=1, max_value=60, value=14, key="n_days")
        seed = cols[3].number_input("Seed", min_value=0, value=base.seed, step=1, key="seed")
        submitted = st.form_submit_button("Simulate and score", type="primary")
    if not submitted:
        return None
    try:
        return DataConfig.model_validate(
            {
                **base.model_dump(),
                "n_customers": customers,
                "n_terminals": terminals,
                "n_days": days,
                "seed": seed,
            }
        )
    except ValidationError as error:
        st.error(f"Invalid world: {error}")
        return None


def _daily(world: ScoredWorld) -> pd.DataFrame:
    frame = world.frame
    by_day = frame.groupby(frame[schema.TX_DATETIME].dt.date)
    return pd.DataFrame(
        {"fraud rate": by_day[schema.TX_FRAUD].mean(), "flag rate": by_day[LABEL].mean()}
    )


def _show(world: ScoredWorld) -> None:
    quality = world.quality
    row1 = st.columns(4)
    row1[0].metric("Transactions", f"{len(world.frame):,}")
    row1[1].metric("Fraud rate", f"{world.fraud_rate:.2%}")
    row1[2].metric("Flagged", f"{world.flagged_rate:.2%}")
    row1[3].metric("Flagged amount", f"{world.flagged_amount:,.2f}")
    row2 = st.columns(4)
    row2[0].metric("Precision", f"{quality.precision:.2%}")
    row2[1].metric("Recall", f"{quality.recall:.2%}")
    row2[2].metric("Fraud amount caught", f"{world.fraud_amount_caught:,.2f}")
    row2[3].metric("Expected cost", f"{quality.expected_cost:,.0f}")
    st.caption(f"Model {world.model_version}, threshold {quality.threshold:.4f}")
    st.subheader("Fraud rate and flag rate per day")
    st.line_chart(_daily(world))
    st.subheader("Highest scores")
    columns = [*schema.TRANSACTION_COLUMNS, schema.TX_FRAUD, SCORE, LABEL]
    st.dataframe(world.frame.nlargest(20, SCORE)[columns], hide_index=True)


def render(options: UiOptions) -> None:
    """Draw the page."""
    st.header("Simulate")
    st.caption(
        "The Fraud Detection Handbook's simulator, scored by the API's POST /evaluate with "
        "offline features (nothing is stored)."
    )
    api = api_or_warning(options, options.api_url)
    if api is None:
        return
    data = _world_form(options.settings.data)
    if data is None:
        return
    try:
        with st.spinner("Simulating and scoring..."):
            world = simulate_and_score(options.settings, api, data)
    except (ApiError, ValueError) as error:
        st.error(f"Could not score the simulated world: {error}")
        return
    _show(world)
