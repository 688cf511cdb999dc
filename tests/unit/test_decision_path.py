"""The adapters stay thin: only the decision pipeline computes features, scores and decides.

The HTTP adapter (``serving`` routes, service, hot path) and the AMQP adapter (``streaming``
worker, intake, replay) may translate their transport and call ``vigil.decisions``; they may
not import the feature computer, the scorer or ``decide``, nor call the feature store. (That
the serving and worker import graphs hold no training stack is ``test_import_graph.py``'s.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "vigil"
ADAPTERS = [
    *sorted((SRC / "serving" / "routes").glob("*.py")),
    SRC / "serving" / "service.py",
    SRC / "serving" / "hotpath.py",
    SRC / "streaming" / "worker.py",
    SRC / "streaming" / "intake.py",
    SRC / "streaming" / "replay.py",
    SRC / "streaming" / "outbox.py",
]
# Modules that compute features, score or decide: the pipeline's business, not an adapter's.
FORBIDDEN_MODULES = (
    "vigil.features",
    "vigil.inference.scorer",
    "vigil.inference.decision",
    "vigil.inference.columns",
    "vigil.inference.shadow",
)
ALLOWED_NAMES = {("vigil.inference.decision", "Decision")}  # the answer's type, not the logic
# What reaches the state store or a model directly (called or passed on).
FORBIDDEN_NAMES = {
    "decide",
    "arecord_batch",
    "aforget",
    "features_for_batch",
    "features_for",
    "arecord",
    "aadd_label",
    "add_label",
    "compute_features_frame",
}


def imports_of(tree: ast.Module) -> list[tuple[str, str]]:
    """(module, name) for every import in the file."""
    found: list[tuple[str, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names]
    return found


def referenced_names(tree: ast.Module) -> set[str]:
    """Every attribute and name the code uses (calls, and callables passed on)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.Name):
            names.add(node.id)
    return names


@pytest.mark.parametrize("path", ADAPTERS, ids=lambda p: str(p.relative_to(SRC)))
def test_adapters_do_not_compute_features_score_or_decide(path: Path) -> None:
    tree = ast.parse(path.read_text())
    bad_imports = [
        (module, name)
        for module, name in imports_of(tree)
        if module.startswith(FORBIDDEN_MODULES) and (module, name) not in ALLOWED_NAMES
    ]
    assert not bad_imports, f"{path.name} imports the pipeline's internals: {bad_imports}"
    assert not referenced_names(tree) & FORBIDDEN_NAMES


def test_the_pipeline_is_where_features_scores_and_decisions_happen() -> None:
    """The check above is not vacuous: the decision package does make those calls."""
    calls: set[str] = set()
    for path in (SRC / "decisions").glob("*.py"):
        calls |= referenced_names(ast.parse(path.read_text()))
    assert {"decide", "arecord_batch", "aforget", "aadd_label"} <= calls
