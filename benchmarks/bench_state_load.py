"""Redis warm-up bulk load: how long each ``LOAD`` script call holds Redis for one big entity.

``vigil warm-state`` loads history with ``RedisStateStore.load``; the API's own Redis calls
wait behind each load call, so what matters is the longest call. This loads ``--rows``
transactions of one terminal (``--side terminal``, spread over 5,000 customers) or of one
customer (``--side customer``, over 5,000 terminals), every 50th labelled fraud, and times
each script call around ``execute_command`` (wall clock: on a shared machine the tail moves
with the load). Keys go under a fresh prefix, deleted afterwards; nothing is flushed.

    .venv/bin/python benchmarks/bench_state_load.py --side terminal --rows 100000 \\
        --redis-url redis://127.0.0.1:6379/13
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import redis

from vigil.config import FeaturesConfig
from vigil.features.redis_state import RedisStateStore
from vigil.features.state import Label, Transaction, WindowSpec

T0 = datetime(2018, 4, 2)


def history(rows: int, side: str) -> tuple[list[Transaction], list[Label]]:
    """``rows`` transactions 20 s apart of one entity on ``side``, and a label for each."""
    txs = [
        Transaction(i, T0 + timedelta(seconds=20 * i), *((i % 5000, 7) if side == "terminal"
                    else (7, i % 5000)), 5.0)
        for i in range(rows)
    ]  # fmt: skip
    labels = [
        Label(tx.transaction_id, tx.customer_id, tx.terminal_id, tx.tx_datetime, i % 50 == 0)
        for i, tx in enumerate(txs)
    ]
    return txs, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", choices=["terminal", "customer"], default="terminal")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    args = parser.parse_args()

    txs, labels = history(args.rows, args.side)
    prefix = f"bench:load:{uuid.uuid4().hex[:8]}"
    store = RedisStateStore(args.redis_url, prefix=prefix)
    execute = store._client.execute_command
    calls: list[float] = []

    def timed(*call: Any) -> Any:
        start = time.perf_counter()
        try:
            return execute(*call)
        finally:
            calls.append(time.perf_counter() - start)

    store._client.execute_command = timed  # type: ignore[method-assign]
    start = time.perf_counter()
    store.load(txs, labels, WindowSpec.from_config(FeaturesConfig()))
    wall = time.perf_counter() - start
    store.close()
    client = redis.Redis.from_url(args.redis_url)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    client.close()
    ms = np.array(calls) * 1000
    print(
        f"{args.side} with {args.rows} rows: {len(ms)} calls, per call p50 "
        f"{np.percentile(ms, 50):.2f} ms, p99 {np.percentile(ms, 99):.2f} ms, "
        f"max {ms.max():.1f} ms; load {wall:.1f} s; load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
