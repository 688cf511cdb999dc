"""Online feature rows rearranged into a model's own feature order.

The online computer produces every configured feature in configuration order; a model may use
a subset or another order (its ONNX metadata names them). The mapping is computed once per
model and reused for every batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vigil.inference.scorer import OnnxScorer


def column_indices(available: Sequence[str], wanted: Sequence[str]) -> np.ndarray | None:
    """Indices picking ``wanted`` out of ``available``; ``None`` when the orders agree."""
    if list(available) == list(wanted):
        return None
    position = {name: i for i, name in enumerate(available)}
    missing = [name for name in wanted if name not in position]
    if missing:
        raise KeyError(f"features not computed online: {missing}")
    return np.asarray([position[name] for name in wanted], dtype=np.intp)


class ModelColumns:
    """Turns online rows into the current model's input; the mapping is redone on a swap."""

    def __init__(self, online_names: Sequence[str]) -> None:
        self._online = list(online_names)
        self._model: OnnxScorer | None = None
        self._columns: np.ndarray | None = None

    def rows_for(self, model: OnnxScorer, online_rows: np.ndarray) -> np.ndarray:
        """``online_rows`` [N, F_online] as [N, F_model] in ``model``'s feature order."""
        if model is not self._model:
            self._columns = column_indices(self._online, model.feature_names)
            self._model = model
        return online_rows if self._columns is None else online_rows[:, self._columns]
