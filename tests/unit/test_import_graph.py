"""The API and the stream worker never load the training stack (torch, LightGBM, MLflow).

Two checks: what a fresh interpreter holds after building the app and importing every module
the two processes run on, and, for imports inside functions, every import statement of
those packages read from the source.
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

PROBE = """
import importlib, json, pkgutil, sys
from vigil.config import build_settings
from vigil.serving import create_app
import vigil.cli.serve_commands, vigil.cli.stream_commands, vigil.streaming.worker

create_app(build_settings({}))
for package in ("serving", "streaming", "inference", "retraining", "storage", "features"):
    module = importlib.import_module(f"vigil.{package}")
    for info in pkgutil.walk_packages(module.__path__, f"vigil.{package}."):
        if ".migrations" not in info.name:
            importlib.import_module(info.name)
print(json.dumps(sorted(sys.modules)))
"""


def _forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def test_the_api_and_worker_processes_load_no_training_stack() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True
    )
    loaded = json.loads(result.stdout)
    assert "vigil.serving.app" in loaded and "vigil.streaming.worker" in loaded
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
