"""Read-only records: frozen for mypy (an assignment to a field fails ``mypy src``), plain and
slotted at run time."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from mypy import api

import vigil
from vigil.readonly import readonly

SNIPPET = """
from vigil.readonly import readonly

@readonly
class Point:
    x: int

point = Point(1)
point.x = 2
"""


def test_mypy_refuses_an_assignment_to_a_readonly_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "snippet.py").write_text(SNIPPET)
    monkeypatch.setenv("MYPYPATH", str(Path(vigil.__file__).parents[1]))  # this tree's vigil
    stdout, _, status = api.run(
        [
            str(tmp_path / "snippet.py"),
            "--config-file=",
            "--no-incremental",
            "--follow-imports=silent",
        ]
    )
    assert status == 1 and 'Property "x" defined in "Point" is read-only' in stdout, stdout


def test_a_readonly_record_is_a_plain_slotted_dataclass() -> None:
    @readonly
    class Point:
        x: int

    point = Point(1)
    assert dataclasses.replace(point, x=2) == Point(2) and not hasattr(point, "__dict__")


def test_a_readonly_record_hashes_as_a_frozen_one_would() -> None:
    """mypy takes a readonly class for frozen, hence hashable: so is it at run time (by its
    fields; a list field fails as in a frozen dataclass)."""

    @readonly
    class Point:
        x: int

    @readonly
    class Tagged:
        tags: list[str]

    assert hash(Point(1)) == hash(Point(1)) and len({Point(1), Point(1), Point(2)}) == 2
    with pytest.raises(TypeError, match="unhashable"):
        hash(Tagged([]))
