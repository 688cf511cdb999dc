"""Redis Cluster failover under /predict load: the error window and the history lost.

``vigil serve`` (SQLite file) with a private local Redis Cluster as its online state (3
masters + 3 replicas, AOF ``appendfsync everysec``, ``cluster-node-timeout`` 1 s); eight
threads send /predict; a master is SIGKILLed after 4 s. Prints the answers by status, the
window from the kill to the last failed answer, and how many acknowledged (2xx) transactions
the cluster's state no longer holds (customer or terminal side). Never touches the shared
Redis.

    .venv/bin/python benchmarks/bench_redis_failover.py [--model models/pipeline/model.onnx]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis.cluster

from bench_api import default_model
from bench_redis_kill import Load, start_serve, wait_ready
from vigil.config import load_settings

# the tests' launcher of private redis-server processes
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="ONNX model (default: generated MLP)")
    parser.add_argument("--port", type=int, default=8797, help="vigil serve")
    parser.add_argument("--threads", type=int, default=8)
    return parser.parse_args()


def main() -> None:
    from redis_cluster_support import local_cluster

    args = parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vigil-redis-failover-"))
    model = args.model or default_model(tmp, load_settings().features)
    base = f"http://127.0.0.1:{args.port}"
    with local_cluster(tmp / "cluster") as cluster:
        server = start_serve(tmp, args.port, model, cluster.url)
        try:
            wait_ready(base)
            load = Load(base, args.threads)
            load.start()
            time.sleep(4)
            victim = cluster.masters()[0]
            cluster.kill(victim)
            killed = time.monotonic()
            cluster.wait(lambda: victim not in cluster.masters(), "a promoted replica")
            promoted = time.monotonic() - killed
            time.sleep(4)
            load.stop()
            health = httpx.get(f"{base}/health").json()
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(60)
        client = redis.cluster.RedisCluster(host="127.0.0.1", port=cluster.masters()[0])
        prefix = "vigil:features"
        lost = [
            tid
            for tid in load.acked
            if client.zscore(f"{prefix}:{{c{tid % 500}}}:tx", tid) is None
            or client.zscore(f"{prefix}:{{t{tid % 900}}}:tx", tid) is None
        ]
        client.close()
    after = [at - killed for at in load.failed_at if at >= killed]
    window = max(after) if after else 0.0
    print(f"load average: {os.getloadavg()}")
    print(f"answers by status: {dict(sorted(load.codes.items()))}")
    print(f"replica promoted {promoted:.1f} s after the kill; /health then: {health['status']}")
    print(
        f"Redis Cluster master SIGKILL under /predict load: failed answers for {window:.1f} s "
        f"after the kill ({len(after)} answers), {len(load.acked)} acknowledged, "
        f"{len(lost)} missing from the online state"
    )


if __name__ == "__main__":
    main()
