"""The Streamlit script of ``vigil ui``: settings from the script arguments, then one page.

Run it with ``vigil ui`` (which calls ``streamlit run`` on this file with the settings after
``--``). The page is picked in the sidebar and mirrored in the URL (``?page=analytics``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

from vigil.config import ConfigError
from vigil.ui.options import UiOptions, parse_args
from vigil.ui.views import analytics, cases, history, models, score, simulate

PAGE_PARAM = "page"


@dataclass(frozen=True)
class Page:
    """A page's title in the sidebar and the function that draws it."""

    title: str
    render: Callable[[UiOptions], None]


PAGES: dict[str, Page] = {
    "score": Page("Score a transaction", score.render),
    "simulate": Page("Simulate", simulate.render),
    "history": Page("History", history.render),
    "analytics": Page("Analytics", analytics.render),
    "cases": Page("Cases", cases.render),
    "models": Page("Models", models.render),
}


@st.cache_resource(show_spinner=False)
def _options(argv: tuple[str, ...]) -> UiOptions:
    return parse_args(argv)


def _chosen_page() -> str:
    slugs = list(PAGES)
    wanted = st.query_params.get(PAGE_PARAM, slugs[0])
    slug: str = st.sidebar.radio(
        "Page",
        slugs,
        index=slugs.index(wanted) if wanted in slugs else 0,
        format_func=lambda s: PAGES[s].title,
    )
    st.query_params[PAGE_PARAM] = slug
    return slug


def main() -> None:
    """Draw the sidebar and the chosen page."""
    st.set_page_config(page_title="Vigil", page_icon="🛡️", layout="wide")
    st.sidebar.title("Vigil")
    st.sidebar.caption("Real-time card fraud detection")
    try:
        options = _options(tuple(sys.argv[1:]))
    except ConfigError as error:
        st.error(f"Configuration error: {error}")
        return
    PAGES[_chosen_page()].render(options)


if __name__ == "__main__":
    main()
