"""Page: metadata of the serving model (from the API when one is configured, else the file)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from vigil.inference.metadata import ModelMetadata
from vigil.ui import client
from vigil.ui.options import UiOptions
from vigil.ui.views.common import model_or_warning


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


def _from_api(base_url: str) -> None:
    try:
        with client.make_client(base_url) as http:
            served = client.metadata(http)
    except client.ApiError as error:
        st.error(str(error))
        return
    st.caption(f"As served by the API at {base_url}")
    metadata_card("Champion", served.champion)
    if served.challenger is not None:
        metadata_card("Challenger (shadow)", served.challenger)


def render(options: UiOptions) -> None:
    """Draw the page."""
    st.header("Models")
    if options.api_url:
        _from_api(options.api_url)
        return
    scorer = model_or_warning(options)
    if scorer is None:
        return
    st.caption(f"From {scorer.path}")
    metadata_card("Serving model", scorer.metadata)
