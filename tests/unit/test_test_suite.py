"""The suite collects the same under plain ``pytest`` and ``python -m pytest``.

``python -m pytest`` puts the working directory on ``sys.path``, so ``tests.<module>`` imports
there; plain ``pytest`` does not, and a test module importing ``tests.<module>`` fails to
collect. The support modules (``conftest``, ``*_support``, ...) are imported by their own
name: ``pythonpath = ["tests"]`` in ``[tool.pytest.ini_options]`` puts ``tests/`` on
``sys.path`` under both.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_no_test_module_imports_the_tests_package() -> None:
    offenders = {
        str(path.relative_to(TESTS)): sorted(
            name for name in _imported_modules(path) if name == "tests" or name.startswith("tests.")
        )
        for path in sorted(TESTS.rglob("*.py"))
    }
    assert {path: names for path, names in offenders.items() if names} == {}
