"""Page: metadata of the serving models, as the API reports them (``GET /metadata``)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from vigil.inference.metadata import ModelMetadata
from vigil.ui.client import ApiError
from vigil.ui.options import UiOptions
from vigil.ui.views.common import api_or_warning


def metadata_card(role: str, metadata: ModelMetadata) -> None:
    """Version, provenance, threshold, metrics and features of one model."""
    st.subheader(f"{role}: {metadata.model_version}")
    cols = st.columns(4)
    cols[0].metric("Kind", metadata.model_kind)
    cols[1].metric("Threshold", f"{metadata.threshold:.4f}")
    cols[2].metric("Features", len(metadata.feature_names))
    cols[3].metric("Git commit", metadata.git_commit[:8])
    saved = metadata.saved_at.strftime("%Y-%m-%d %H:%M %Z").strip()
    st.caption(
        f"Experiment {metadata.experiment_name}, saved at {saved}, commit {metadata.git_commit}"
    )
    left, right = st.columns(2)
    left.markdown("**Metrics**")
    if metadata.metrics:
        left.dataframe(
            pd.DataFrame(
                {"metric": list(metadata.metrics), "value": list(metadata.metrics.values())}
            ),
            hide_index=True,
        )
    else:
        left.caption("The model file records no metrics.")
    right.markdown("**Features** (in model order, with training means)")
    right.dataframe(
        pd.DataFrame({"feature": metadata.feature_names, "training mean": metadata.feature_means}),
        hide_index=True,
    )


def render(options: UiOptions) -> None:
    """Draw the page."""
    st.header("Models")
    api = api_or_warning(options, options.api_url)
    if api is None:
        return
    try:
        served = api.metadata()
    except ApiError as error:
        st.error(str(error))
        return
    st.caption(f"As served by {api.description}")
    metadata_card("Serving model", served.champion)
    if served.challenger is not None:
        metadata_card("Challenger (shadow)", served.challenger)
