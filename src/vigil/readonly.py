"""Read-only records that are cheap to build: frozen for the type checker, plain at run time.

A ``frozen`` dataclass's ``__init__`` sets each field through ``object.__setattr__``, which
made a ``PredictionRecord`` cost 3.4-4.4 us instead of 0.8-1.3 us and a ``Decision`` 0.7-1.8
instead of 0.2-0.6 us (one of each per decision on the API's and the stream worker's hot
paths; 09bdffa, 4accdf1). ``readonly`` builds a slotted dataclass with a plain ``__init__``
while telling mypy it is frozen, so an assignment to a field fails ``mypy src``. It hashes by
its fields as a frozen dataclass does (``unsafe_hash``: safe, nothing assigns to it), since
mypy, taking it for frozen, lets it be hashed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar, dataclass_transform

T = TypeVar("T")


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def readonly(cls: type[T]) -> type[T]:
    """A slotted dataclass of ``cls`` that mypy treats as frozen (never changed once built)."""
    return dataclass(slots=True, unsafe_hash=True)(cls)
