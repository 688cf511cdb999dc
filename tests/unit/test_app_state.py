"""``app.state``: entries are plain attributes, read without Starlette's ``__getattr__``."""

from __future__ import annotations

import pytest
from starlette.datastructures import State

from vigil.serving.app import AppState


def _no_fallback(_state: State, key: str) -> None:
    raise AssertionError(f"{key} read through __getattr__")


def test_entries_are_read_without_getattr(monkeypatch: pytest.MonkeyPatch) -> None:
    state = AppState()
    state.services = "running"
    state["gate"] = "open"
    monkeypatch.setattr(State, "__getattr__", _no_fallback)

    assert state.services == "running" and state.gate == "open"


def test_state_semantics_are_kept() -> None:
    state = AppState()
    state.services = None
    state.services = "running"
    state.settings = "settings"

    assert list(state) == ["services", "settings"] and len(state) == 2
    assert state["services"] == "running"
    del state.services
    assert getattr(state, "services", "absent") == "absent"
    with pytest.raises(AttributeError):
        _ = state.services
    assert list(state) == ["settings"]


def test_the_app_uses_it(tmp_path: object) -> None:
    from vigil.config import load_settings
    from vigil.serving import create_app

    app = create_app(load_settings())

    assert isinstance(app.state, AppState) and "services" in list(app.state)
