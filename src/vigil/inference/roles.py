"""The roles a model serves in: the champion decides, the challenger scores in shadow.

The same names are the ``deployments`` aliases, the MLflow registry aliases and the ``role``
label of the score and model-info metrics.
"""

from __future__ import annotations

from typing import Final

CHAMPION: Final = "champion"
CHALLENGER: Final = "challenger"
ROLES: Final = (CHAMPION, CHALLENGER)
