"""Durability when Redis dies: no acknowledged prediction may be lost.

``vigil serve`` on a SQLite file with a private ``redis-server`` (its own port, no
persistence); eight threads send /predict; the redis-server is SIGKILLed after 4 s and started
again, empty, 3 s later. Every 2xx answer must be a stored row; /health must then say
``degraded`` (the warm marker went with the data). Never touches the shared Redis.

    .venv/bin/python benchmarks/bench_redis_kill.py [--model models/current/model.onnx]
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench_api import default_model  # benchmarks/ is the script's folder
from vigil.config import load_settings


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="ONNX model (default: generated MLP)")
    parser.add_argument("--redis-port", type=int, default=6391, help="private redis-server")
    parser.add_argument("--port", type=int, default=8796, help="vigil serve")
    parser.add_argument("--threads", type=int, default=8)
    return parser.parse_args()


def start_redis(port: int) -> subprocess.Popen[bytes]:
    command = ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return process


def start_serve(
    folder: Path, port: int, model: Path, state_url: str, database_url: str | None = None
) -> subprocess.Popen[bytes]:
    """``vigil serve`` on ``database_url`` (default: a SQLite file in ``folder``) with that
    state store; its output is appended to ``folder/serve.log``."""
    env = {**os.environ, "VIGIL_SERVING__API_KEY": os.urandom(16).hex()}
    database_url = database_url or f"sqlite:///{folder / 'vigil.db'}"
    command = ["vigil", "serve", "--port", str(port),
               "--set", f"inference.model_path={model}",
               "--set", f"storage.database_url={database_url}",
               "--set", f"storage.state_url={state_url}"]  # fmt: skip
    with (folder / "serve.log").open("ab") as log:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_ready(base: str) -> None:
    for _ in range(300):
        try:
            if httpx.get(f"{base}/health").status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("vigil serve did not answer /health")


class Load:
    """Threads posting /predict with unique ids; remembers the ids answered 2xx."""

    def __init__(self, base: str, threads: int) -> None:
        self.base = base
        self.acked: list[int] = []
        self.codes: dict[int, int] = {}
        self.failed_at: list[float] = []  # when each non-2xx answer (or no answer) came
        self._stop, self._lock = threading.Event(), threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(n,)) for n in range(threads)]

    def _run(self, worker: int) -> None:
        with httpx.Client(timeout=10) as client:
            i = 0
            while not self._stop.is_set():
                tid, i = 10_000_000 * (worker + 1) + i, i + 1
                body = {
                    "transaction_id": tid,
                    "tx_datetime": "2018-09-30T10:00:00",
                    "customer_id": tid % 500,
                    "terminal_id": tid % 900,
                    "tx_amount": 42.0,
                }
                try:
                    code = client.post(f"{self.base}/predict", json=body).status_code
                except httpx.TransportError:
                    code = -1  # no server (being restarted): not acknowledged
                    time.sleep(0.05)
                with self._lock:
                    self.codes[code] = self.codes.get(code, 0) + 1
                    if 200 <= code < 300:
                        self.acked.append(tid)
                    else:
                        self.failed_at.append(time.monotonic())

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def main() -> None:
    args = parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vigil-redis-kill-"))
    redis_server = start_redis(args.redis_port)
    db = tmp / "vigil.db"
    model = args.model or default_model(tmp, load_settings().features)
    server = start_serve(tmp, args.port, model, f"redis://127.0.0.1:{args.redis_port}/0")
    base = f"http://127.0.0.1:{args.port}"
    try:
        wait_ready(base)
        load = Load(base, args.threads)
        load.start()
        time.sleep(4)
        redis_server.send_signal(signal.SIGKILL)
        redis_server.wait()
        time.sleep(3)
        redis_server = start_redis(args.redis_port)  # empty: no persistence
        time.sleep(4)
        load.stop()
        health = httpx.get(f"{base}/health").json()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
        redis_server.send_signal(signal.SIGKILL)
        redis_server.wait()
    stored = {
        row[0] for row in sqlite3.connect(db).execute("SELECT transaction_id FROM predictions")
    }
    lost = [tid for tid in load.acked if tid not in stored]
    print(f"answers by status: {dict(sorted(load.codes.items()))}")
    print(f"/health after the restart: {health['status']} {health['checks']}")
    print(f"Redis SIGKILL under load: {len(load.acked)} acknowledged, {len(lost)} lost")


if __name__ == "__main__":
    main()
