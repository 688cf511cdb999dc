"""Process-wide resources for the pages, cached by Streamlit: the model and the database.

Each raises a domain error with a message a user can act on when the thing does not exist
yet; the pages show that message instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from sqlalchemy import Engine, inspect, make_url
from sqlalchemy.exc import SQLAlchemyError

from vigil.inference.errors import ModelLoadError
from vigil.inference.scorer import OnnxScorer
from vigil.storage.engine import create_db_engine, is_sqlite
from vigil.storage.tables import predictions, transactions

MISSING_MODEL_HINT = (
    "train and promote one (`vigil train --promote`) or point the UI at a model "
    "(`vigil ui --set inference.model_path=PATH`)"
)


class DatabaseNotReady(RuntimeError):
    """The configured database does not exist, cannot be reached or has no Vigil tables."""


@st.cache_resource(show_spinner=False, max_entries=4)
def _load_scorer(path: str, modified_ns: int) -> OnnxScorer:
    return OnnxScorer.load(Path(path))


def load_scorer(path: Path) -> OnnxScorer:
    """The model at ``path``, reloaded when the file changes; ``ModelLoadError`` if absent."""
    if not path.is_file():
        raise ModelLoadError(f"No model at {path} yet: {MISSING_MODEL_HINT}.")
    return _load_scorer(str(path.resolve()), path.stat().st_mtime_ns)


@st.cache_resource(show_spinner=False, max_entries=4)
def _engine(url: str) -> Engine:
    return create_db_engine(url, pool_size=2)


def database(url: str) -> Engine:
    """An engine on a database that holds Vigil's tables; ``DatabaseNotReady`` otherwise."""
    shown = make_url(url).render_as_string(hide_password=True)
    if is_sqlite(url):
        path = make_url(url).database
        # Connecting would create an empty file; say what to do instead.
        if path and path != ":memory:" and not Path(path).is_file():
            raise DatabaseNotReady(
                f"No database at {path} yet: run `vigil db upgrade`, then score some "
                "transactions (`vigil serve` and POST /predict, or the stream worker)."
            )
    engine = _engine(url)
    try:
        present = set(inspect(engine).get_table_names())
    except SQLAlchemyError as error:
        raise DatabaseNotReady(f"Cannot reach the database {shown}: {error}") from error
    if not {predictions.name, transactions.name} <= present:
        raise DatabaseNotReady(
            f"The database {shown} has no Vigil tables yet: run `vigil db upgrade`."
        )
    return engine
