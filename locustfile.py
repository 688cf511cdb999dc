"""Realistic traffic for ``make load``: card payments posted to /predict at a fixed rate.

Each simulated client (user) sends ``RATE_PER_USER`` requests per second, so 100 users make
the course SLO's 1,000 req/s. Customers and terminals follow the handbook's world (5,000
customers, 10,000 terminals); amounts are log-normal; ids never repeat across workers.
"""

from __future__ import annotations

import itertools
import os
import random
from datetime import datetime, timedelta

from locust import FastHttpUser, constant_throughput, task

RATE_PER_USER = float(os.environ.get("VIGIL_LOAD_RATE_PER_USER", "10"))
N_CUSTOMERS = 5_000
N_TERMINALS = 10_000
START = datetime(2018, 10, 1)
# A random 40-bit prefix per process keeps ids unique across Locust workers and reruns.
_ids = itertools.count(random.getrandbits(40) << 20)


class CardNetwork(FastHttpUser):
    """A payment network calling the scoring API."""

    wait_time = constant_throughput(RATE_PER_USER)

    @task
    def predict(self) -> None:
        """Score one payment; a non-2xx answer counts as an error."""
        transaction_id = next(_ids)
        body = {
            "transaction_id": transaction_id,
            "tx_datetime": (START + timedelta(seconds=transaction_id % 8_640_000)).isoformat(),
            "customer_id": random.randrange(N_CUSTOMERS),
            "terminal_id": random.randrange(N_TERMINALS),
            "tx_amount": round(random.lognormvariate(3.5, 0.8), 2),
        }
        self.client.post("/predict", json=body, name="/predict")
