"""API benchmark: ``vigil serve`` pinned to one core, driven by ``wrk`` from the other core.

Measures ``POST /predict`` with online features in Redis and durable persistence in
PostgreSQL (group commit), then ``POST /forward`` (model only). Checks afterwards that every
2xx answer of the /predict run is a row in PostgreSQL. Needs ``wrk`` (``apt-get install
wrk``), Redis and PostgreSQL; the model is a generated MLP-shaped ONNX graph (64-32, the
configured features) unless ``--model`` names a trained one.

The online state is realistic and the same on every run: the benchmark flushes its Redis
database (14), warms it with a simulated history at the handbook's density (2,000 customers
with 40 days each, their frauds labelled), and the requests continue that world: its
customers and terminals, event time advancing at the world's own rate, so every customer's
30-day window holds what it would in production (~60 transactions).

    .venv/bin/python benchmarks/bench_api.py
    .venv/bin/python benchmarks/bench_api.py --duration 60 --connections 64 --model M.onnx
    .venv/bin/python benchmarks/bench_api.py --set storage.commit_max_delay_ms=0
    .venv/bin/python benchmarks/bench_api.py --preload-rows 200000 --preload-days 30  # a full DB
    taskset -c 0 .venv/bin/python benchmarks/bench_api.py --in-process   # the app alone, no HTTP
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, make_url, select, text
from sqlalchemy import func as sql_func

from _results import default_path, write_results  # benchmarks/ is the script's folder
from _stored_rows import preload
from vigil.config import FeaturesConfig, load_settings
from vigil.features import feature_names
from vigil.storage.tables import predictions

REPO = Path(__file__).resolve().parents[1]
TESTS_DIR = REPO / "tests"
VIGIL = REPO / ".venv" / "bin" / "vigil"

PREDICT_LUA = """
local counter = 0
local base = tonumber(os.getenv("VIGIL_BENCH_ID_BASE"))
local start = tonumber(os.getenv("VIGIL_BENCH_START"))
local step = tonumber(os.getenv("VIGIL_BENCH_STEP"))
local customers = tonumber(os.getenv("VIGIL_BENCH_CUSTOMERS"))
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  counter = counter + 1
  local body = string.format(
    '{"transaction_id":%d,"tx_datetime":"%s","customer_id":%d,"terminal_id":%d,"tx_amount":%.2f}',
    base + counter, os.date("!%Y-%m-%dT%H:%M:%S", math.floor(start + counter * step)),
    math.random(0, customers - 1), math.random(0, 2 * customers - 1), math.random() * 200)
  return wrk.format(nil, nil, nil, body)
end
"""

FORWARD_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("VIGIL_BENCH_FORWARD_BODY")
"""


@dataclass(frozen=True)
class WrkResult:
    """What wrk measured, plus the server's CPU time during the run."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    server_cpu_s: float = 0.0

    @property
    def cpu_us_per_request(self) -> float:
        """Server CPU time per request: the cost that bounds one dedicated core."""
        return self.server_cpu_s / max(self.requests, 1) * 1e6

    def line(self, name: str) -> str:
        """One human-readable summary line."""
        return (
            f"{name}: {self.requests_per_s:,.0f} req/s, p50 {self.p50_ms:.2f} ms, "
            f"p99 {self.p99_ms:.2f} ms, errors {self.errors}, server CPU "
            f"{self.cpu_us_per_request:.0f} us/request "
            f"(= {1e6 / max(self.cpu_us_per_request, 1e-9):,.0f} req/s per dedicated core)"
        )


def parse_args() -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per route")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--model", type=Path, help="ONNX model (default: generated MLP)")
    parser.add_argument(
        "--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/vigil_bench"
    )
    parser.add_argument(
        "--state-url", default="redis://127.0.0.1:6379/14", help="a Redis database it may flush"
    )
    parser.add_argument(
        "--history-customers",
        type=int,
        default=2000,
        help="customers of the simulated history warmed into Redis (0: an empty state)",
    )
    parser.add_argument("--history-days", type=int, default=40)
    parser.add_argument(
        "--preload-rows",
        type=int,
        default=0,
        help="stored decisions to add before measuring, spread over --preload-days past days",
    )
    parser.add_argument("--preload-days", type=int, default=30)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--server-core", default="0")
    parser.add_argument("--client-core", default="1")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="drive the ASGI app in this process (no HTTP server, no wrk): the app's own CPU",
    )
    parser.add_argument("--requests", type=int, default=12_000, help="--in-process requests")
    parser.add_argument(
        "--results", type=Path, default=default_path("bench_api"), help="JSON results file"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra `vigil serve --set` override, e.g. storage.commit_max_delay_ms=0",
    )
    return parser.parse_args()


def default_model(directory: Path, features: FeaturesConfig) -> Path:
    """An MLP-shaped ONNX graph over the configured features (the test factory's)."""
    sys.path.insert(0, str(TESTS_DIR))  # the test model factory, shared rather than copied
    from onnx_factory import make_metadata, mlp_model, save

    names = feature_names(features)
    metadata = make_metadata(names, [1.0] * len(names), 0.5, "bench-mlp", "mlp")
    return save(mlp_model(metadata, (64, 32)), directory / "model.onnx")


def served_features(args: argparse.Namespace) -> FeaturesConfig:
    """The features ``vigil serve`` computes: configs/vigil.yaml plus the ``--set`` overrides."""
    return load_settings(overrides=args.overrides).features


def ensure_database(url: str) -> None:
    """Create the benchmark's PostgreSQL database when it does not exist."""
    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        exists = connection.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": parsed.database}
        ).scalar()
        if not exists:
            connection.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()


def drop_database(url: str) -> None:
    """Drop a benchmark run's PostgreSQL database."""
    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}"'))
    admin.dispose()


def start_server(args: argparse.Namespace, model: Path, log: Path) -> subprocess.Popen[bytes]:
    """``vigil serve`` on one core, its log in ``log``; returns once /health says ready."""
    overrides = {
        "inference.model_path": str(model),
        "storage.database_url": args.database_url,
        "storage.state_url": args.state_url,
        "serving.port": str(args.port),
        "serving.api_key": secrets.token_hex(16),  # `vigil serve` refuses the default key
    }
    command = ["taskset", "-c", args.server_core, str(VIGIL), "serve"]
    for key, value in overrides.items():
        command += ["--set", f"{key}={value}"]
    for assignment in args.overrides:
        command += ["--set", assignment]
    from _world import start_until_healthy

    return start_until_healthy(command, args.port, log, timeout=60)


def _milliseconds(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def run_wrk(
    args: argparse.Namespace, url: str, script: str, seconds: int, env: dict[str, str]
) -> WrkResult:
    """One wrk run from the client core; parses throughput, percentiles and errors."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(script)
    command = [
        "taskset", "-c", args.client_core, "wrk", "-t1", f"-c{args.connections}",
        f"-d{seconds}s", "--latency", "-s", lua.name, url,
    ]  # fmt: skip
    output = subprocess.run(
        command, capture_output=True, text=True, check=True, env={**os.environ, **env}
    ).stdout
    os.unlink(lua.name)
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", output, re.MULTILINE))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    errors = int(non_2xx.group(1)) if non_2xx else 0
    errors += sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    count = re.search(r"(\d+) requests in", output)
    if rate is None or count is None or len(percentiles) != 2:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    return WrkResult(
        requests_per_s=float(rate.group(1)),
        p50_ms=_milliseconds(percentiles["50"]),
        p99_ms=_milliseconds(percentiles["99"]),
        requests=int(count.group(1)),
        errors=errors,
    )


ID_SPAN = 10**8  # ids per run; far more than one run sends
EMPTY_STATE_CUSTOMERS = 5000  # with no history: customers and the event-time step of the
EMPTY_STATE_STEP_S = 1.0  # benchmark before 2026-12-01


def prepare_state(args: argparse.Namespace) -> dict[str, str]:
    """Flush the benchmark's Redis database, warm it with a simulated history; wrk's settings.

    Event time continues after the history at the history's own rate, in seconds per request.
    """
    import redis

    from _world import simulate_world, warm
    from vigil.features.online import OnlineFeatureComputer
    from vigil.features.state import make_state_store

    client = redis.Redis.from_url(args.state_url)
    client.flushdb()
    client.close()
    if args.history_customers <= 0:
        start, step, customers = 1538352000.0, EMPTY_STATE_STEP_S, EMPTY_STATE_CUSTOMERS
    else:
        world = simulate_world(args.history_customers, args.history_days)
        store = make_state_store(args.state_url)  # the server's key prefix
        warm(OnlineFeatureComputer(served_features(args), store), world.transactions, world.frauds)
        store.close()
        start = world.end.replace(tzinfo=UTC).timestamp()
        step, customers = world.seconds_between_transactions, args.history_customers
    return {
        "VIGIL_BENCH_START": f"{start:.0f}",
        "VIGIL_BENCH_STEP": f"{step:.4f}",
        "VIGIL_BENCH_CUSTOMERS": str(customers),
    }


def _id_base() -> int:
    """A fresh id range per run, below 2**53 so Lua's doubles count it exactly."""
    return (time.time_ns() // 1000 % 10**7) * ID_SPAN


def persisted_between(database_url: str, low: int, high: int) -> int:
    """Prediction rows with ids in [low, high)."""
    engine = create_engine(database_url)
    with engine.connect() as connection:
        count = connection.execute(
            select(sql_func.count()).where(
                predictions.c.transaction_id >= low, predictions.c.transaction_id < high
            )
        ).scalar_one()
    engine.dispose()
    return int(count)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_route(
    args: argparse.Namespace, pid: int, route: str, script: str, env_for: Callable[[int], dict]
) -> tuple[WrkResult, int, int]:
    """Warm up, then measure; returns the result and the id range the measured run used."""
    url = f"http://127.0.0.1:{args.port}{route}"
    run_wrk(args, url, script, args.warmup, env_for(_id_base()))
    base = _id_base()
    cpu_before = cpu_seconds(pid)
    result = run_wrk(args, url, script, args.duration, env_for(base))
    result = replace(result, server_cpu_s=cpu_seconds(pid) - cpu_before)
    return result, base, base + ID_SPAN


def forward_body(model: Path) -> str:
    """A /forward body: a typical transaction, the model's training means by feature name.

    As in ``bench_torchserve.py``: a typical row is not flagged, so no reason codes are
    computed, which is the common case in real traffic.
    """
    from vigil.inference.scorer import OnnxScorer

    metadata = OnnxScorer.load(model).metadata
    features = dict(zip(metadata.feature_names, metadata.feature_means, strict=True))
    return json.dumps({"features": features})


async def _asgi_predict(app: Any, body: bytes, statuses: dict[int, int]) -> None:
    """One ``POST /predict`` straight through the ASGI interface."""
    scope = {
        "type": "http", "method": "POST", "path": "/predict", "query_string": b"",
        "root_path": "", "headers": [
            (b"content-type", b"application/json"), (b"content-length", b"%d" % len(body)),
        ],
    }  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses[message["status"]] = statuses.get(message["status"], 0) + 1

    await app(scope, receive, send)


@contextlib.asynccontextmanager
async def _lifespan(app: Any) -> AsyncIterator[None]:
    """Run the app's ASGI start-up, yield, then its shut-down."""
    inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    started, stopped = asyncio.Event(), asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        if message["type"].startswith("lifespan.startup"):
            started.set()
        if message["type"].startswith("lifespan.shutdown"):
            stopped.set()
        if message["type"].endswith("failed"):
            raise RuntimeError(f"app start-up failed: {message}")

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.create_task(app(scope, inbox.get, send))
    await inbox.put({"type": "lifespan.startup"})
    await started.wait()
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await stopped.wait()
        await task


async def in_process(args: argparse.Namespace, model: Path) -> tuple[float, float, dict]:
    """``args.connections`` concurrent callers of the app's /predict; (req/s, CPU us/req, statuses).

    Real Redis and PostgreSQL, no HTTP server: the CPU figure is Vigil's own per request.
    """
    from vigil.serving import create_app

    overrides = [
        f"inference.model_path={model}", f"storage.database_url={args.database_url}",
        f"storage.state_url={args.state_url}", *args.overrides,
    ]  # fmt: skip
    app = create_app(load_settings(overrides=overrides))
    base, sent, statuses = _id_base(), 0, {}

    async def caller(count: int) -> None:
        nonlocal sent
        for _ in range(count):
            sent += 1
            body = (
                b'{"transaction_id":%d,"tx_datetime":"2018-10-01T%02d:%02d:%02d",'
                b'"customer_id":%d,"terminal_id":%d,"tx_amount":%.2f}'
                % (base + sent, sent // 3600 % 24, sent // 60 % 60, sent % 60,
                   sent * 7919 % 5000, sent * 104729 % 10_000, sent % 20_000 / 100)
            )  # fmt: skip
            await _asgi_predict(app, body, statuses)

    per_caller = max(args.requests // args.connections, 1)
    async with _lifespan(app):
        await asyncio.gather(*(caller(200) for _ in range(args.connections)))  # warm-up
        statuses.clear()
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(caller(per_caller) for _ in range(args.connections)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    done = per_caller * args.connections
    return done / wall, cpu / done * 1e6, statuses


def main_in_process(args: argparse.Namespace) -> None:
    """Print the in-process /predict figures (run under ``taskset -c 0`` for one core)."""
    import uvloop

    ensure_database(args.database_url)
    with tempfile.TemporaryDirectory(prefix="vigil-bench-api-") as tmp:
        model = args.model or default_model(Path(tmp), served_features(args))
        rate, cpu_us, statuses = uvloop.run(in_process(args, model))
    print(f"load on the machine (1/5/15 min): {os.getloadavg()}")
    print(
        f"/predict in process ({args.connections} concurrent callers, statuses {statuses}): "
        f"{rate:,.0f} req/s, CPU {cpu_us:.0f} us/request"
    )


def main() -> None:
    """Run both routes and print the figures, the /predict headline last."""
    args = parse_args()
    if args.in_process:
        main_in_process(args)
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    ensure_database(args.database_url)
    world_env = prepare_state(args)
    with tempfile.TemporaryDirectory(prefix="vigil-bench-api-") as tmp:
        model = args.model or default_model(Path(tmp), served_features(args))
        server = start_server(args, model, Path(tmp) / "server.log")  # migrates the database
        try:
            if args.preload_rows > 0:
                print(preload(args.database_url, args.preload_rows, args.preload_days))
            predict, low, high = measure_route(
                args,
                server.pid,
                "/predict",
                PREDICT_LUA,
                lambda base: {"VIGIL_BENCH_ID_BASE": str(base), **world_env},
            )
            forward_env = {"VIGIL_BENCH_FORWARD_BODY": forward_body(model)}
            forward, _, _ = measure_route(
                args, server.pid, "/forward", FORWARD_LUA, lambda _: forward_env
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
    stored = persisted_between(args.database_url, low, high)
    answered = predict.requests - predict.errors
    print(f"load on the machine (1/5/15 min): {os.getloadavg()}")
    print(forward.line("/forward (model only)"))
    print(
        f"/predict: {answered} answered 2xx, {stored} rows in PostgreSQL"
        f" ({'none lost' if stored >= answered else 'ROWS MISSING'})"
    )
    figures = {
        "predict_requests_per_s": predict.requests_per_s,
        "predict_p50_ms": predict.p50_ms,
        "predict_p99_ms": predict.p99_ms,
        "predict_errors": predict.errors,
        "predict_per_core_requests_per_s": 1e6 / max(predict.cpu_us_per_request, 1e-9),
        "forward_requests_per_s": forward.requests_per_s,
        "forward_p99_ms": forward.p99_ms,
        "connections": args.connections,
    }
    write_results("bench_api", figures, args.results)
    print(
        predict.line(
            f"/predict (Redis features + PostgreSQL group commit, {args.connections} connections, "
            f"1 core, history of {args.history_customers:,} customers)"
        )
    )


if __name__ == "__main__":
    main()
