"""Features: names/order (definitions), offline DuckDB SQL (offline), online state (online).

Offline building lives in :mod:`vigil.features.offline` (imports DuckDB); serving imports only
what is exported here.
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
