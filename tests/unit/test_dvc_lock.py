"""The committed ``dvc.lock`` matches the code, parameters and commands of ``dvc.yaml``.

``dvc status`` also reports outputs that are absent from this checkout (a fresh clone holds
none until ``dvc pull`` or ``dvc repro``): those are not staleness. Everything else it lists
(a changed command, source file or parameter) means ``dvc.lock`` no longer describes what
``dvc repro`` would build.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Stage outputs: present or not depending on what this checkout has built or pulled.
BUILT = ("data/", "models/")


def _stale(status: dict[str, list[object]]) -> list[str]:
    problems = []
    for stage, changes in status.items():
        for change in changes:
            if not isinstance(change, dict):  # e.g. "always changed"
                problems.append(f"{stage}: {change}")
                continue
            for kind, detail in change.items():
                if kind == "changed outs":
                    continue
                if kind == "changed deps" and isinstance(detail, dict):
                    detail = {p: d for p, d in detail.items() if not p.startswith(BUILT)}
                    if not detail:
                        continue
                problems.append(f"{stage}: {kind} {detail}")
    return problems


def test_dvc_lock_is_clean_against_the_code_and_parameters() -> None:
    # `make test` runs .venv/bin/python without .venv/bin on PATH: look beside the interpreter.
    beside = Path(sys.executable).parent / "dvc"
    dvc = str(beside) if beside.exists() else shutil.which("dvc")
    if dvc is None:
        pytest.fail("dvc is not installed (it comes with the `ops` extra: make setup)")
    completed = subprocess.run(
        [dvc, "status", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr
    problems = _stale(json.loads(completed.stdout or "{}"))
    assert not problems, (
        "dvc.lock is stale: run `dvc repro` and commit dvc.lock (then `dvc push`):\n"
        + "\n".join(problems)
    )


def test_missing_outputs_are_not_staleness_but_a_changed_source_is() -> None:
    fresh_clone = {
        "prepare": [
            {"changed deps": {"data/pipeline/datasets/v2-drift/raw": "deleted"}},
            {"changed outs": {"data/pipeline/features.parquet": "not in cache"}},
        ]
    }
    assert _stale(fresh_clone) == []
    edited = {"prepare": [{"changed deps": {"src/vigil/features": "modified"}}]}
    assert _stale(edited) == ["prepare: changed deps {'src/vigil/features': 'modified'}"]
    assert _stale({"train_model": [{"changed command": True}]}) != []
