"""Stream worker throughput (tx/s, one and two workers) and publish-to-decision latency.

Real RabbitMQ, PostgreSQL and Redis; each ``vigil worker`` is a subprocess pinned to one core.
Throughput: N transactions are queued first, then the clock runs from the first decision to
the N-th (consume, features, score, commit, publish with confirm, ack). Latency: transactions
published at a fixed rate, each decision's arrival minus its ``published_at``.

Transactions are sent in batch envelopes (``TransactionBatch``, one per replayed chunk) and
come back as ``DecisionBatch`` messages; ``--single`` sends one message per transaction (v1).

    .venv/bin/python benchmarks/bench_stream.py
    .venv/bin/python benchmarks/bench_stream.py --single
    .venv/bin/python benchmarks/bench_stream.py --transactions 100000 --latency-seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aio_pika
import numpy as np
import orjson
import pandas as pd
import redis
from sqlalchemy import create_engine, make_url, text

from _results import default_path, write_results  # benchmarks/ is the script's folder
from vigil.config import BrokerConfig, DataConfig, FeaturesConfig
from vigil.data import schema
from vigil.data.simulate import simulate_transactions
from vigil.features import feature_names
from vigil.streaming import BrokerSink, declare_topology, replay
from vigil.streaming.messages import DECISION_BATCH_TYPE


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=20_000)
    parser.add_argument("--latency-rate", type=float, default=1000.0)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--single", action="store_true", help="one message per transaction")
    parser.add_argument(
        "--results", type=Path, default=default_path("bench_stream"), help="JSON results file"
    )
    parser.add_argument("--batch-size", type=int, default=128, help="worker micro-batch")
    parser.add_argument("--prefetch", type=int, default=256, help="worker prefetch (messages)")
    parser.add_argument(
        "--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13", help="FLUSHED")
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    return parser.parse_args()


def make_stream(n: int) -> pd.DataFrame:
    """At least ``n`` simulated transactions in time order."""
    days = 30
    config = DataConfig(n_customers=max(200, n // (2 * days) + 1), n_terminals=4000, n_days=days)
    frame = simulate_transactions(config).sort_values([schema.TX_DATETIME, schema.TRANSACTION_ID])
    return frame.head(n).drop(columns=[schema.TX_FRAUD, schema.TX_FRAUD_SCENARIO], errors="ignore")


def make_model(path: Path) -> Path:
    """A logistic model over every feature (the scoring cost is not what is measured here)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from onnx_factory import logistic_model, make_metadata, save

    names = feature_names(FeaturesConfig())
    weights = np.random.default_rng(0).normal(0, 0.01, len(names))
    return save(logistic_model(weights.tolist(), -3.0, make_metadata(names, threshold=0.5)), path)


class Environment:
    """Unique queues, a throw-away schema, a model file; workers started on demand."""

    def __init__(self, args: argparse.Namespace, folder: Path) -> None:
        tag = uuid.uuid4().hex[:8]
        self.args = args
        self.schema = f"bench_stream_{tag}"
        self.broker = BrokerConfig(
            url=args.amqp_url,
            transactions_queue=f"bench-tx-{tag}",
            labels_queue=f"bench-labels-{tag}",
            decisions_exchange=f"bench-decisions-{tag}",
        )
        url = make_url(args.postgres_url).update_query_dict(
            {"options": f"-csearch_path={self.schema}"}
        )
        self.database_url = url.render_as_string(hide_password=False)
        self.model = make_model(folder / "model.onnx")
        self.folder = folder
        self.admin = create_engine(args.postgres_url, isolation_level="AUTOCOMMIT")

    def reset_state(self) -> None:
        """Fresh schema and online state for one run."""
        redis.Redis.from_url(self.args.redis_url).flushdb()
        with self.admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
            connection.execute(text(f'CREATE SCHEMA "{self.schema}"'))

    def start_worker(self, core: int) -> subprocess.Popen[bytes]:
        """``vigil worker`` pinned to ``core``."""
        env = dict(os.environ)
        env.update(
            {
                "VIGIL_STORAGE__DATABASE_URL": self.database_url,
                "VIGIL_STORAGE__STATE_URL": self.args.redis_url,
                "VIGIL_BROKER__URL": self.args.amqp_url,
                "VIGIL_BROKER__TRANSACTIONS_QUEUE": self.broker.transactions_queue,
                "VIGIL_BROKER__LABELS_QUEUE": self.broker.labels_queue,
                "VIGIL_BROKER__DECISIONS_EXCHANGE": self.broker.decisions_exchange,
                "VIGIL_INFERENCE__MODEL_PATH": str(self.model),
                "VIGIL_BROKER__BATCH_SIZE": str(self.args.batch_size),
                "VIGIL_BROKER__PREFETCH": str(self.args.prefetch),
            }
        )
        (self.folder / "none.yaml").write_text("{}\n")
        log = (self.folder / "worker.log").open("ab")
        return subprocess.Popen(
            ["taskset", "-c", str(core), sys.executable, "-m", "vigil", "worker",
             "--config", str(self.folder / "none.yaml")],
            env=env, stdout=log, stderr=log,
        )  # fmt: skip

    def consuming_workers(self) -> int:
        """How many workers so far logged that they are consuming."""
        log = self.folder / "worker.log"
        return log.read_text().count("stream worker consuming") if log.exists() else 0

    def close(self) -> None:
        with self.admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
        self.admin.dispose()
        redis.Redis.from_url(self.args.redis_url).flushdb()


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time used so far by these processes (Linux ``/proc``)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / tick


class DecisionCounter:
    """Consumes the decisions exchange; records arrival times, latencies and worker CPU."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.latencies: list[float] = []
        self.worker_cpu_s = 0.0

    async def on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        now = time.time()
        body = orjson.loads(message.body)
        decisions = body["decisions"] if message.type == DECISION_BATCH_TYPE else [body]
        self.arrivals.extend([now] * len(decisions))
        self.latencies.extend(
            now - d["published_at"] for d in decisions if d.get("published_at") is not None
        )

    async def wait_for(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.arrivals) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(self.arrivals)} of {count} decisions arrived")
            await asyncio.sleep(0.05)


async def run_once(
    env: Environment, frame: pd.DataFrame, workers: int, rate: float
) -> DecisionCounter:
    """Queue ``frame`` (all first when ``rate`` is 0), run ``workers`` workers, count decisions."""
    env.reset_state()
    connection = await aio_pika.connect_robust(env.args.amqp_url)
    channel = await connection.channel()
    topology = await declare_topology(channel, env.broker)
    await topology.transactions.purge()
    capture = await channel.declare_queue(exclusive=True)
    await capture.bind(topology.decisions, routing_key="#")
    counter = DecisionCounter()
    await capture.consume(counter.on_message, no_ack=True)
    procs = []
    try:
        async with BrokerSink(env.broker, envelopes=not env.args.single) as sink:
            if rate <= 0:
                await replay(frame, sink, rate=0, label_after_s=None, progress=False)
            started = env.consuming_workers()
            cores = os.cpu_count() or 1
            procs = [env.start_worker(core % cores) for core in range(workers)]
            if rate > 0:
                while env.consuming_workers() < started + workers:
                    await asyncio.sleep(0.2)
                await asyncio.sleep(1.0)  # let the workers settle
                await replay(frame, sink, rate=rate, label_after_s=None, progress=False)
        await counter.wait_for(1, timeout_s=120)
        cpu_at_first = cpu_seconds([p.pid for p in procs])
        await counter.wait_for(len(frame), timeout_s=300)
        counter.worker_cpu_s = cpu_seconds([p.pid for p in procs]) - cpu_at_first
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
        await channel.queue_delete(env.broker.transactions_queue)
        await channel.queue_delete(f"{env.broker.transactions_queue}.dlq")
        await channel.queue_delete(env.broker.labels_queue)
        await channel.queue_delete(f"{env.broker.labels_queue}.dlq")
        await connection.close()
    return counter


def throughput(counter: DecisionCounter) -> float:
    """Decisions per second from the first decision's arrival to the last's.

    The first arrival's own decisions are not counted: the clock starts when they arrive.
    """
    first = counter.arrivals.count(counter.arrivals[0])
    span = counter.arrivals[-1] - counter.arrivals[0]
    return (len(counter.arrivals) - first) / span if span > 0 else float("inf")


async def main_async(args: argparse.Namespace) -> None:
    print(f"load average {os.getloadavg()[0]:.2f} at start; "
          f"{'single messages' if args.single else 'batch envelopes'}")  # fmt: skip
    frame = make_stream(max(args.transactions, int(args.latency_rate * args.latency_seconds)))
    with tempfile.TemporaryDirectory() as folder:
        env = Environment(args, Path(folder))
        try:
            rates, per_core = {}, {}
            for workers in args.workers:
                counter = await run_once(env, frame.head(args.transactions), workers, rate=0)
                rates[workers] = throughput(counter)
                cpu_us = counter.worker_cpu_s / len(counter.arrivals) * 1e6
                per_core[workers] = 1e6 / cpu_us
                print(f"{workers} worker(s): {rates[workers]:,.0f} tx/s end to end "
                      f"({args.transactions} transactions); worker CPU {cpu_us:.0f} us/tx "
                      f"= {1e6 / cpu_us:,.0f} tx/s per dedicated core")  # fmt: skip
            n_latency = int(args.latency_rate * args.latency_seconds)
            counter = await run_once(env, frame.head(n_latency), 1, rate=args.latency_rate)
            p50, p99 = np.percentile(np.array(counter.latencies) * 1000, [50, 99])
            print(f"latency at {args.latency_rate:,.0f} tx/s, 1 worker: p50 {p50:.1f} ms, "
                  f"p99 {p99:.1f} ms")  # fmt: skip
        finally:
            env.close()
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    figures = {f"workers_{w}_tx_per_s": r for w, r in rates.items()}
    figures |= {f"workers_{w}_per_core_tx_per_s": r for w, r in per_core.items()}
    figures |= {"latency_rate": args.latency_rate, "latency_p50_ms": p50, "latency_p99_ms": p99}
    write_results("bench_stream", figures, args.results)
    summary = ", ".join(f"{w} worker(s) {r:,.0f} tx/s" for w, r in rates.items())
    print(f"stream worker: {summary}; publish->decision at {args.latency_rate:,.0f} tx/s "
          f"p50 {p50:.1f} ms p99 {p99:.1f} ms")  # fmt: skip


def main() -> None:
    """Run the benchmark and print the headline last."""
    asyncio.run(main_async(parse_args()))


if __name__ == "__main__":
    main()
