"""Features: names/order (definitions), offline kernels (offline), online state (online).

Offline building lives in :mod:`vigil.features.offline`: the compiled (numba) kernels over a
frame or a Parquet stream read through DuckDB (ADR 0022). Serving scores through what is
exported here, and also imports :mod:`vigil.features.offline` (``vigil.decisions.offline``):
``/forward_batch`` and ``/evaluate`` compute the uploaded batch's features with it.
"""

from vigil.features.definitions import feature_names, handbook_feature_names
from vigil.features.online import OnlineFeatureComputer
from vigil.features.state import (
    InMemoryStateStore,
    Label,
    StateStore,
    Transaction,
    make_state_store,
)

__all__ = [
    "InMemoryStateStore",
    "Label",
    "OnlineFeatureComputer",
    "StateStore",
    "Transaction",
    "feature_names",
    "handbook_feature_names",
    "make_state_store",
]
