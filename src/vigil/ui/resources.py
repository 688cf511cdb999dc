"""Process-wide resources for the pages, cached by Streamlit: the API client and the database.

Each raises a domain error with a message a user can act on when the thing does not exist
yet; the pages show that message instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from sqlalchemy import Engine, make_url

from vigil.config import Settings
from vigil.inference.errors import ModelLoadError
from vigil.storage.analytics import DatabaseNotReady, check_database
from vigil.storage.engine import create_db_engine, is_sqlite
from vigil.ui.client import ApiClient, in_process_client

MISSING_MODEL_HINT = (
    "train and promote one (`vigil train --promote`) or point the UI at a model "
    "(`vigil ui --set inference.model_path=PATH`) or at a running API (`vigil ui --api-url`)"
)


@st.cache_resource(show_spinner=False, max_entries=4, on_release=ApiClient.close)
def _remote(base_url: str, _api_key: str) -> ApiClient:
    return ApiClient.remote(base_url, _api_key)


def remote_api(base_url: str, settings: Settings) -> ApiClient:
    """A client of the API at ``base_url`` with the configured key, shared by the pages."""
    return _remote(base_url, settings.serving.api_key.get_secret_value())


@st.cache_resource(show_spinner=False, max_entries=2, on_release=ApiClient.close)
def _in_process(key: str, modified_ns: int, _settings: Settings) -> ApiClient:
    return in_process_client(_settings)


def in_process_api(settings: Settings) -> ApiClient:
    """The API started in this process on ``settings`` (rebuilt when the model file changes).

    ``ModelLoadError`` with what to do when there is no model yet.
    """
    path = Path(settings.inference.model_path)
    if not path.is_file():
        raise ModelLoadError(f"No model at {path} yet: {MISSING_MODEL_HINT}.")
    return _in_process(settings.model_dump_json(), path.stat().st_mtime_ns, settings)


@st.cache_resource(show_spinner=False, max_entries=4)
def _engine(url: str) -> Engine:
    return create_db_engine(url, pool_size=2)


def database(url: str) -> Engine:
    """An engine on a database that holds Vigil's tables; ``DatabaseNotReady`` otherwise."""
    if is_sqlite(url):
        path = make_url(url).database
        # Connecting would create an empty file; say what to do instead.
        if path and path != ":memory:" and not Path(path).is_file():
            raise DatabaseNotReady(
                f"No database at {path} yet: run `vigil db upgrade`, then score some "
                "transactions (`vigil serve` and POST /predict, or the stream worker)."
            )
    engine = _engine(url)
    check_database(engine)
    return engine
