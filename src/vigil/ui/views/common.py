"""Widgets shared by the pages: the API and database guards and a decision card."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from sqlalchemy import Engine

from vigil.inference.decision import Decision
from vigil.inference.errors import ModelLoadError
from vigil.storage.analytics import DatabaseNotReady
from vigil.ui.client import ApiClient
from vigil.ui.options import UiOptions
from vigil.ui.resources import database, in_process_api, remote_api

FRAUD, LEGITIMATE = "FRAUD", "legitimate"


def api_or_warning(options: UiOptions, base_url: str | None) -> ApiClient | None:
    """The API at ``base_url``, else the one started in this process.

    ``None`` after showing why the in-process API cannot start (no model yet).
    """
    if base_url:
        return remote_api(base_url, options.settings)
    try:
        return in_process_api(options.settings)
    except ModelLoadError as error:
        st.warning(str(error), icon="⚠️")
        return None


def database_or_warning(options: UiOptions) -> Engine | None:
    """The configured database, or ``None`` after showing why it cannot be read."""
    try:
        return database(options.settings.storage.database_url)
    except DatabaseNotReady as error:
        st.warning(str(error), icon="⚠️")
        return None


def decision_card(decision: Decision) -> None:
    """Score, label, threshold, model version and reason codes of one decision."""
    score, label, threshold, version = st.columns([1, 1, 1, 2])
    score.metric("Score", f"{decision.score:.4f}")
    label.metric("Decision", FRAUD if decision.label else LEGITIMATE)
    threshold.metric("Threshold", f"{decision.threshold:.4f}")
    version.metric("Model version", decision.model_version)
    st.caption(f"Transaction id {decision.transaction_id}")
    if decision.reason_codes:
        st.markdown(
            "**Reason codes** (probability added by each feature vs. a typical genuine payment)"
        )
        st.dataframe(
            pd.DataFrame(
                {
                    "feature": [r.feature for r in decision.reason_codes],
                    "contribution": [r.contribution for r in decision.reason_codes],
                }
            ),
            hide_index=True,
        )
    else:
        st.caption("No feature pushed this score above the training baseline.")
