"""Shadow scoring: the challenger scores the champion's rows; it never decides, never fails one."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from vigil.inference.columns import ModelColumns
from vigil.inference.scorer import OnnxScorer

log = logging.getLogger(__name__)


class ShadowScorer:
    """Scores online rows with the current challenger, in its own feature order."""

    def __init__(self, online_names: Sequence[str]) -> None:
        self._columns = ModelColumns(online_names)

    def scores(self, challenger: OnnxScorer | None, online_rows: np.ndarray) -> list[float] | None:
        """The challenger's scores, or None when there is none or it failed (logged)."""
        if challenger is None:
            return None
        try:
            return challenger.score(self._columns.rows_for(challenger, online_rows)).tolist()
        except Exception:
            log.exception("challenger %s failed in shadow", challenger.metadata.model_version)
            return None
