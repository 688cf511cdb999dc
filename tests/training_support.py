"""The small simulated world the training tests fit on (40 days, a 10-day training window)."""

from __future__ import annotations

import json
from typing import Any

TINY_WORLD: dict[str, Any] = {
    "data": {"n_customers": 200, "n_terminals": 400, "n_days": 40, "start_date": "2018-04-01"},
    "train": {
        "train_start": "2018-04-10",
        "train_days": 10,
        "validation_days": 3,
        "delay_days": 7,
        "test_days": 7,
        "epochs": 3,
        "batch_size": 256,
        "top_k_cards": 20,
    },
    "model": {"hidden_sizes": [16], "lightgbm": {"n_estimators": 30}},
}


def tiny_world(customers: int = 200) -> dict[str, Any]:
    """A fresh copy of :data:`TINY_WORLD`: ``customers`` customers on twice as many terminals."""
    tree: dict[str, Any] = json.loads(json.dumps(TINY_WORLD))
    tree["data"].update(n_customers=customers, n_terminals=2 * customers)
    return tree
