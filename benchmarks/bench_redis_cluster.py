"""Redis CPU per transaction: one Redis node against each shard of a 3-master Redis Cluster.

Builds the simulated world of ``bench_redis_state.py`` (handbook density), warms the online
state with its history, then records the last ``--measure`` transactions in micro-batches of
``--batch``, once into a private standalone redis-server (one EVALSHA per batch) and once into
a private local Redis Cluster (3 masters + 3 replicas, AOF everysec on both; one EVALSHA per
slot, pipelined per node). Reads each server's own CPU (``INFO cpu``: user + sys, the whole
process: scripts, network, replication) and script time (``INFO commandstats``) over the
measured part. Needs redis-server and redis-cli on PATH; touches no shared Redis.

    .venv/bin/python benchmarks/bench_redis_cluster.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import redis

from _world import simulate_world, state_arguments, warm
from vigil.config import DEFAULT_CONFIG_PATH, load_settings
from vigil.features.online import OnlineFeatureComputer
from vigil.features.redis_state import RedisStateStore
from vigil.features.state import Transaction

# the tests' launcher of private redis-server processes (standalone and cluster)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _usage(ports: Sequence[int]) -> dict[int, tuple[float, float]]:
    """Per server: (CPU seconds, script microseconds)."""
    usage = {}
    for port in ports:
        client = redis.Redis(port=port)
        cpu = client.info("cpu")
        script = client.info("commandstats").get("cmdstat_evalsha", {}).get("usec", 0)
        usage[port] = (cpu["used_cpu_user"] + cpu["used_cpu_sys"], float(script))
        client.close()
    return usage


def _measure(
    online: OnlineFeatureComputer, txs: Sequence[Transaction], batch: int, ports: Sequence[int]
) -> tuple[float, dict[int, tuple[float, float]]]:
    """Wall seconds and per-server (CPU us, script us) per measured transaction."""
    before = _usage(ports)
    started = time.perf_counter()
    for start in range(0, len(txs), batch):
        online.features_for_batch(txs[start : start + batch])
    wall = time.perf_counter() - started
    after = _usage(ports)
    per_tx = {
        port: (
            (after[port][0] - before[port][0]) * 1e6 / len(txs),
            (after[port][1] - before[port][1]) / len(txs),
        )
        for port in ports
    }
    return wall, per_tx


def main() -> None:
    args = state_arguments(__doc__.splitlines()[0])

    from redis_cluster_support import local_cluster, local_server

    settings = load_settings(DEFAULT_CONFIG_PATH, overrides=args.overrides)
    world = simulate_world(args.customers, args.days)
    txs, frauds = world.transactions, world.frauds
    warm_count = len(txs) - args.measure
    print(f"world: {len(txs):,} transactions ({args.customers} customers, {args.days} days)")
    with tempfile.TemporaryDirectory() as root:
        with local_server(Path(root) / "single") as port:
            store = RedisStateStore(f"redis://127.0.0.1:{port}/0", prefix="bench")
            online = OnlineFeatureComputer(settings.features, store)
            warm(online, txs[:warm_count], frauds[:warm_count])
            wall, single = _measure(online, txs[warm_count:], args.batch, [port])
            store.close()
        one_cpu, one_script = single[port]
        print(f"load average: {os.getloadavg()}")
        print(f"1 node: client wall {wall:.2f} s; Redis CPU {one_cpu:.1f} us/tx, ", end="")
        print(f"script {one_script:.1f} us/tx")
        with local_cluster(Path(root) / "cluster") as cluster:
            store = RedisStateStore(cluster.url, prefix="bench")
            online = OnlineFeatureComputer(settings.features, store)
            warm(online, txs[:warm_count], frauds[:warm_count])
            masters = cluster.masters()
            replicas = [p for p in cluster.ports if p not in masters]
            wall, shards = _measure(online, txs[warm_count:], args.batch, cluster.ports)
            store.close()
    cpu = [shards[p][0] for p in masters]
    script = [shards[p][1] for p in masters]
    replica_cpu = sum(shards[p][0] for p in replicas)
    spread = max(cpu) / (sum(cpu) / len(cpu))
    print(f"load average: {os.getloadavg()}")
    print(f"3 shards: client wall {wall:.2f} s; replicas' CPU {replica_cpu:.1f} us/tx in all")
    for i in range(len(masters)):
        print(f"  shard {i + 1}: Redis CPU {cpu[i]:.1f} us/tx, script {script[i]:.1f} us/tx")
    print(
        f"Redis CPU per transaction: 1 node {one_cpu:.1f} us; 3-shard cluster "
        f"{' / '.join(f'{c:.1f}' for c in cpu)} us per shard (sum {sum(cpu):.1f}, "
        f"busiest/mean {spread:.2f})"
    )


if __name__ == "__main__":
    main()
