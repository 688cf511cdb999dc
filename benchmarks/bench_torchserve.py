"""Vigil's model-only path (``POST /forward``) against TorchServe serving the same run's ``.mar``.

One benchmark run, same machine, same load generator (``wrk`` on the other core), each server
pinned to one core with one worker: Vigil (uvicorn + ONNX Runtime), TorchServe with its
defaults, and TorchServe tuned (server-side batching, logging quieted, system metrics off).
Reports throughput, p50/p99 and the ratios. Needs ``pip install torchserve`` (Java 17) and a
training run holding both ``model.mar`` and ``model.onnx``; skips with a message otherwise.

    .venv/bin/python benchmarks/bench_torchserve.py
    .venv/bin/python benchmarks/bench_torchserve.py --run runs/<run> --duration 30
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx

from bench_api import REPO, VIGIL, WrkResult, cpu_seconds, run_wrk

TORCHSERVE = REPO / ".venv" / "bin" / "torchserve"
BODY_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("VIGIL_BENCH_BODY")
"""
QUIET_LOG4J = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders><Console name="STDOUT" target="SYSTEM_OUT">
    <PatternLayout pattern="%d %-5p %m%n"/></Console></Appenders>
  <Loggers><Root level="error"><AppenderRef ref="STDOUT"/></Root></Loggers>
</Configuration>
"""


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of every server-against-server benchmark (this one and bench_providers.py):
    the run, the load (duration, warm-up, connections), TorchServe's batching, port, cores."""
    parser.add_argument("--run", type=Path, help="run directory with model.mar and model.onnx")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32, help="TorchServe tuned batch")
    parser.add_argument("--max-batch-delay-ms", type=int, default=2)
    parser.add_argument("--port", type=int, default=8775)
    parser.add_argument("--server-core", default="0")
    parser.add_argument("--client-core", default="1")


def parse_args() -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_server_arguments(parser)
    return parser.parse_args()


def find_run(runs_dir: Path) -> Path | None:
    """The newest run directory holding both model.mar and model.onnx."""
    candidates = [
        m.parent for m in runs_dir.glob("**/model.mar") if (m.parent / "model.onnx").exists()
    ]
    return max(candidates, key=lambda p: p.stat().st_mtime, default=None)


def wait_ready(url: str, process: subprocess.Popen[bytes], seconds: float = 120) -> None:
    """Poll ``url`` until it answers 200; fail early if the process died."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode}")
        time.sleep(0.3)
    raise RuntimeError(f"{url} not ready within {seconds} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a server started here and everything it spawned (its own process group)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def group_cpu_seconds(group: int) -> float:
    """CPU time of every live process in a process group (TorchServe: JVM + Python worker)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[2]) == group:
            total += cpu_seconds(int(stat.parent.name))
    return total


def measure(args: argparse.Namespace, group: int, url: str, body: str) -> WrkResult:
    """Warm up, then one measured wrk run with the server's CPU time (whole process group)."""
    env = {"VIGIL_BENCH_BODY": body}
    run_wrk(args, url, BODY_LUA, args.warmup, env)
    before = group_cpu_seconds(group)
    result = run_wrk(args, url, BODY_LUA, args.duration, env)
    return replace(result, server_cpu_s=group_cpu_seconds(group) - before)


def bench_vigil(
    args: argparse.Namespace, run: Path, features: dict[str, float], tmp: Path
) -> WrkResult:
    """Vigil's /forward with the run's ONNX model."""
    command = [
        "taskset", "-c", args.server_core, str(VIGIL), "serve",
        "--set", f"inference.model_path={run / 'model.onnx'}",
        "--set", f"storage.database_url=sqlite:///{tmp / 'vigil.db'}",
        "--set", "storage.state_url=memory://", "--set", f"serving.port={args.port}",
        "--set", f"serving.api_key={secrets.token_hex(16)}",  # the default key is refused
    ]  # fmt: skip
    server = subprocess.Popen(command, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_ready(f"http://127.0.0.1:{args.port}/health", server)
        body = json.dumps({"features": features})
        return measure(args, server.pid, f"http://127.0.0.1:{args.port}/forward", body)
    finally:
        stop(server)


@contextlib.contextmanager
def torchserve(
    args: argparse.Namespace, run: Path, features: dict[str, float], tmp: Path, tuned: bool
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """TorchServe, one worker on one core; defaults, or batching + quiet logs: (server, URL).

    The model is registered and answers one request before this yields.
    """
    store = tmp / ("store-tuned" if tuned else "store-default")
    store.mkdir()
    shutil.copy(run / "model.mar", store / "vigil.mar")
    first = args.port + (10 if tuned else 0)  # fresh ports: the previous JVM may linger
    inference, management = first + 1, first + 2
    config = [
        f"inference_address=http://127.0.0.1:{inference}",
        f"management_address=http://127.0.0.1:{management}",
        f"metrics_address=http://127.0.0.1:{first + 3}",
        "default_workers_per_model=1",
        "disable_token_authorization=true",
        "enable_envvars_config=false",
        "enable_model_api=true",
    ]
    command = [
        "taskset", "-c", args.server_core, str(TORCHSERVE), "--start", "--foreground", "--ncs",
        "--model-store", str(store), "--ts-config", str(tmp / "ts.properties"),
    ]  # fmt: skip
    if tuned:
        config += ["disable_system_metrics=true", "async_logging=true"]
        (tmp / "log4j2.xml").write_text(QUIET_LOG4J)
        command += ["--log-config", str(tmp / "log4j2.xml")]
    (tmp / "ts.properties").write_text("\n".join(config) + "\n")
    private_tmp = tmp / f"tmp-{'tuned' if tuned else 'default'}"  # own .model_server.pid
    private_tmp.mkdir()
    env = {
        **os.environ,
        "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}",
        "TMPDIR": str(private_tmp),
    }
    log = (tmp / f"torchserve-{'tuned' if tuned else 'default'}.log").open("wb")
    server = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=tmp
    )
    try:
        try:
            wait_ready(f"http://127.0.0.1:{inference}/ping", server)
        except RuntimeError:
            log.flush()
            sys.stderr.write(Path(log.name).read_text()[-3000:])
            raise
        params = {
            "url": "vigil.mar",
            "model_name": "vigil",
            "initial_workers": 1,
            "synchronous": "true",
        }
        if tuned:
            params |= {"batch_size": args.batch_size, "max_batch_delay": args.max_batch_delay_ms}
        registered = httpx.post(f"http://127.0.0.1:{management}/models", params=params, timeout=120)
        registered.raise_for_status()
        url = f"http://127.0.0.1:{inference}/predictions/vigil"
        check = httpx.post(url, json=features, timeout=30)
        check.raise_for_status()
        yield server, url
    finally:
        stop(server)
        log.close()


def bench_torchserve(
    args: argparse.Namespace, run: Path, features: dict[str, float], tmp: Path, tuned: bool
) -> WrkResult:
    """TorchServe, one worker on one core; defaults, or batching + quiet logs."""
    with torchserve(args, run, features, tmp, tuned) as (server, url):
        return measure(args, server.pid, url, json.dumps(features))


def main() -> None:
    """Run the three servers one after the other; the headline ratio is printed last."""
    args = parse_args()
    run = args.run or find_run(REPO / "runs")
    if run is None or not (run / "model.mar").exists() or not TORCHSERVE.exists():
        print(
            "SKIPPED: needs a training run with model.mar and model.onnx under runs/ "
            "(or --run) and torchserve installed in .venv (pip install torchserve)"
        )
        return
    from vigil.inference.scorer import OnnxScorer

    means = OnnxScorer.load(run / "model.onnx").metadata.feature_means
    names = OnnxScorer.load(run / "model.onnx").feature_names
    features = dict(zip(names, means, strict=True))
    with tempfile.TemporaryDirectory(prefix="vigil-bench-ts-") as tmp_name:
        tmp = Path(tmp_name)
        vigil = bench_vigil(args, run, features, tmp)
        default = bench_torchserve(args, run, features, tmp, tuned=False)
        tuned = bench_torchserve(args, run, features, tmp, tuned=True)
    print(f"model: {run} ({len(names)} features); {args.connections} connections, one core each")
    print(f"load on the machine (1/5/15 min): {os.getloadavg()}")
    print(default.line("TorchServe defaults"))
    print(
        tuned.line(
            f"TorchServe tuned (batch {args.batch_size}, {args.max_batch_delay_ms} ms, quiet)"
        )
    )
    print(vigil.line("Vigil /forward"))
    print(
        f"Vigil vs TorchServe: x{vigil.requests_per_s / default.requests_per_s:.1f} defaults, "
        f"x{vigil.requests_per_s / tuned.requests_per_s:.1f} tuned (req/s); p99 "
        f"{vigil.p99_ms:.1f} ms vs {default.p99_ms:.1f} / {tuned.p99_ms:.1f} ms"
    )


if __name__ == "__main__":
    main()
