"""``requirements.lock`` pins exactly the dependency closure of ``pyproject.toml`` as installed.

A dependency added to ``pyproject.toml`` without ``make lock``, or an environment that drifted
from the lock, fails here with the difference.
"""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_lock_file_is_the_closure_of_pyproject_as_installed() -> None:
    spec = importlib.util.spec_from_file_location("lock", ROOT / "scripts" / "lock.py")
    assert spec is not None and spec.loader is not None
    lock = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lock)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = project["optional-dependencies"].values()
    expected = lock.closure([*project["dependencies"], *(r for g in groups for r in g)])
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    pinned = dict(line.split("==") for line in lines if line and not line.startswith("#"))
    assert pinned == expected, (
        "requirements.lock differs from the installed closure of pyproject.toml "
        "(run `make lock`): "
        f"{sorted(set(pinned.items()) ^ set(expected.items()))[:20]}"
    )
    assert pinned["torch"] == "2.13.0"
