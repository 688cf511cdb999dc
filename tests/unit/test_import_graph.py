"""Serving processes never load the training stack (torch, LightGBM, scikit-learn, MLflow).

One place for the import-graph checks of every torch-free entry point: the API and the stream
worker (the app built, every runtime module imported), batch scoring (``vigil predict``) and
the Streamlit UI, each in a fresh interpreter listing ``sys.modules``; and, for imports inside
functions, every import statement of the runtime packages read from the source.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import vigil

# What `vigil serve` and `vigil worker` run on (the first two are their entry modules).
RUNTIME_PACKAGES = (
    "cli",
    "serving",
    "streaming",
    "decisions",
    "inference",
    "retraining",
    "storage",
    "features",
    "data",
    "monitoring",
)
FORBIDDEN = (
    "torch",
    "lightgbm",
    "sklearn",
    "mlflow",
    "vigil.training",
    "vigil.models",
    "vigil.pipelines",
    "vigil.train",
)
SRC = Path(vigil.__file__).parent

API_AND_WORKER = """
import importlib, pkgutil
from vigil.config import build_settings
from vigil.serving import create_app
import vigil.cli.serve_commands, vigil.cli.stream_commands, vigil.streaming.worker

create_app(build_settings({}))
for package in (
    "serving", "streaming", "decisions", "inference", "retraining", "storage", "features"
):
    module = importlib.import_module(f"vigil.{package}")
    for info in pkgutil.walk_packages(module.__path__, f"vigil.{package}."):
        if ".migrations" not in info.name:
            importlib.import_module(info.name)
"""
BATCH_SCORING = "import vigil.predict, vigil.inference.batch, vigil.cli.inference_commands"
UI = "import vigil.ui.app, vigil.ui.simulation, vigil.ui.resources, vigil.ui.client"
PRINT_MODULES = "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"


def _forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (
            API_AND_WORKER,
            ("vigil.serving.app", "vigil.streaming.worker", "vigil.decisions.pipeline"),
        ),
        (BATCH_SCORING, ("vigil.inference.batch",)),
        (UI, ("vigil.ui.app", "streamlit")),
    ],
    ids=["api-and-worker", "batch-scoring", "ui"],
)
def test_torch_free_entry_points_load_no_training_stack(
    code: str, expected: tuple[str, ...]
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", code + PRINT_MODULES],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded = json.loads(result.stdout)
    assert set(expected) <= set(loaded)
    assert [m for m in loaded if _forbidden(m)] == []


def _imports(path: Path) -> list[str]:
    """Every module an import statement of ``path`` names, at any depth."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


@pytest.mark.parametrize("package", RUNTIME_PACKAGES[1:])
def test_no_runtime_module_imports_the_training_stack_even_lazily(package: str) -> None:
    offending = {
        str(path.relative_to(SRC)): bad
        for path in sorted((SRC / package).rglob("*.py"))
        if (bad := sorted({n for n in _imports(path) if _forbidden(n)}))
    }
    assert offending == {}
