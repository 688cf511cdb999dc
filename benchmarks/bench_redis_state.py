"""Redis online state: the record script's Redis time per transaction (``INFO commandstats``).

Builds a simulated world with the handbook's density, warms the Redis state with its history
(every transaction labelled, as the label consumer would), then records the last
``--measure`` transactions in micro-batches of ``--batch`` (one ``EVALSHA`` each, as the API
and the stream worker do) and reads Redis's own CPU time for those calls. Uses Redis database
13, which it flushes.

    .venv/bin/python benchmarks/bench_redis_state.py
    .venv/bin/python benchmarks/bench_redis_state.py --set 'features.extra=[]'
"""

from __future__ import annotations

import os
import time

import redis

from _world import simulate_world, state_arguments, warm
from vigil.config import DEFAULT_CONFIG_PATH, load_settings
from vigil.features.online import OnlineFeatureComputer
from vigil.features.redis_state import RedisStateStore

REDIS_URL = "redis://127.0.0.1:6379/13"


def main() -> None:
    args = state_arguments(__doc__.splitlines()[0])

    settings = load_settings(DEFAULT_CONFIG_PATH, overrides=args.overrides)
    world = simulate_world(args.customers, args.days)
    txs = world.transactions
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    online = OnlineFeatureComputer(settings.features, RedisStateStore(REDIS_URL, prefix="bench"))

    warm_count = len(txs) - args.measure
    warm(online, txs[:warm_count], world.frauds[:warm_count])
    client.config_resetstat()
    started = time.perf_counter()
    for start in range(warm_count, len(txs), args.batch):
        online.features_for_batch(txs[start : start + args.batch])
    wall = time.perf_counter() - started
    stats = client.info("commandstats")["cmdstat_evalsha"]
    client.flushdb()
    print(f"world: {len(txs):,} transactions ({args.customers} customers, {args.days} days)")
    print(f"load average: {os.getloadavg()}")
    print(f"client wall: {wall:.2f} s for {args.measure:,} transactions")
    print(
        f"record script: {stats['usec'] / args.measure:.0f} us of Redis time per transaction, "
        f"{stats['usec_per_call'] / 1000:.2f} ms per call of {args.batch}"
    )


if __name__ == "__main__":
    main()
