"""Inference providers side by side: one run, one model, one machine, one load generator.

Each server runs pinned to one core (``--server-core``) with one worker; ``wrk`` drives every
HTTP/1.1 server from the other core (``h2load``, nghttp2's, drives Triton's gRPC endpoint:
wrk has no HTTP/2) with the same connections, one request in flight per connection, the same
duration. Servers, all on the same ``model.onnx`` (TorchServe on the same run's ``model.mar``):

* a bare ASGI app under the same uvicorn settings as ``vigil serve`` (the floor of any
  Python ASGI server here), then Vigil ``POST /forward``;
* Triton (``python -m vigil.providers.triton serve``) over HTTP (KServe v2 JSON) and gRPC;
* BentoML (``deploy/bento``, adaptive batching; no access log, BentoML's own shedding
  deadline: see service.py);
* TorchServe with its defaults, and tuned (batch 32, 2 ms, quiet logs, no system metrics).

For each: requests/s, p50, p99 (from h2load's per-request log), server CPU per request and
resident memory (every process of the server: JVM + worker, Triton + its Python stub,
BentoML's arbiter + its worker, which runs in a session of its own). h2load's HTTP/1.1
parser rejects TorchServe's status line ("HTTP/1.1 200 " without a reason phrase), hence
wrk for HTTP. Also parity (max |score - ONNX Runtime|) of every
provider on the same 10,000 rows and, from ``.venv-providers``, OpenVINO fp32 / NNCF int8
parity, single-row p50 and batch rows/s beside ONNX Runtime. Needs ``make setup-providers``,
Debian's ``wrk`` and ``nghttp2-client``, Java 17 for TorchServe, and a training run with
``model.onnx`` and ``model.mar``.

    .venv/bin/python benchmarks/bench_providers.py --run data/pipeline/runs/<run>
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from _results import default_path, write_results
from bench_api import REPO, VIGIL, run_wrk
from bench_torchserve import (
    BODY_LUA,
    add_server_arguments,
    find_run,
    stop,
    torchserve,
    wait_ready,
)
from vigil.inference.scorer import OnnxScorer

PROVIDERS_BIN = REPO / ".venv-providers" / "bin"
FLOOR_APP = """
import sys, uvicorn
BODY = b'{"score":0.01}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"14")]
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools",
            access_log=False, log_level="warning")
"""
PARITY_ROWS = 10_000


def parse_args() -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_server_arguments(parser)
    parser.add_argument("--features", type=Path, help="feature table for the parity rows")
    parser.add_argument("--results", type=Path, default=default_path("bench_providers"))
    return parser.parse_args()


@dataclass(frozen=True)
class Load:
    """One measured run of one server."""

    name: str
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu_s: float
    rss_mb: float

    @property
    def requests_per_s(self) -> float:
        """Answered requests per second."""
        return self.requests / self.seconds

    @property
    def cpu_us(self) -> float:
        """Server CPU per request, microseconds."""
        return self.cpu_s / max(self.requests, 1) * 1e6

    def row(self, floor: Load) -> str:
        """A table row; the last column is the CPU per request above the bare-ASGI floor."""
        return (
            f"| {self.name} | {self.requests_per_s:,.0f} | {self.p50_ms:.2f} | {self.p99_ms:.2f} "
            f"| {self.cpu_us:.0f} | {self.rss_mb:.0f} | {self.errors} "
            f"| {self.cpu_us / max(floor.cpu_us, 1e-9):.1f} |"
        )


def server_pids(server: int) -> list[int]:
    """Every live process of a server: its session (it was started in its own) and every
    descendant, also those that started a session of their own (BentoML's workers do)."""
    parents: dict[int, tuple[int, int]] = {}  # pid -> (parent, session)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = (int(fields[1]), int(fields[3]))
    found = {pid for pid, (_, session) in parents.items() if session == server}
    while more := {p for p, (parent, _) in parents.items() if parent in found} - found:
        found |= more
    return sorted(found)


def server_usage(server: int) -> tuple[float, float]:
    """(CPU seconds, resident MB) summed over the server's processes (:func:`server_pids`)."""
    cpu, rss = 0.0, 0.0
    tick, page = os.sysconf("SC_CLK_TCK"), os.sysconf("SC_PAGE_SIZE")
    for pid in server_pids(server):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except OSError:
            continue
        cpu += (int(fields[11]) + int(fields[12])) / tick
        rss += resident * page / 1e6
    return cpu, rss


def h2load(
    args: argparse.Namespace, url: str, body: Path, headers: list[str], seconds: int
) -> tuple[int, int, list[float]]:
    """One HTTP/2 h2load run from the client core: (2xx answers, others, latencies in ms)."""
    with tempfile.NamedTemporaryFile(suffix=".log") as log:
        command = [
            "taskset", "-c", args.client_core, "h2load", "-c", str(args.connections), "-m", "1",
            "-D", str(seconds), "-d", str(body), f"--log-file={log.name}",
        ]  # fmt: skip
        for header in headers:
            command += ["-H", header]
        output = subprocess.run(
            [*command, url], capture_output=True, text=True, timeout=seconds + 60
        )
        if output.returncode != 0:
            raise RuntimeError(f"h2load failed:\n{output.stdout}\n{output.stderr}")
        lines = [line.split("\t") for line in Path(log.name).read_text().splitlines()]
    ok = [float(latency) / 1000 for _, status, latency in lines if status.startswith("2")]
    return len(ok), len(lines) - len(ok), ok


def measure(
    args: argparse.Namespace,
    name: str,
    server: subprocess.Popen[bytes],
    url: str,
    body: bytes,
    headers: list[str],
    grpc: bool = False,
) -> Load:
    """Warm up, then one measured run with the server's CPU time and memory.

    HTTP/1.1 servers are driven by ``wrk`` (as in bench_api.py and bench_torchserve.py);
    gRPC needs HTTP/2, so Triton's gRPC endpoint is driven by ``h2load``, with the same
    connections, one request in flight on each.
    """
    if not grpc:
        env = {"VIGIL_BENCH_BODY": body.decode()}
        run_wrk(args, url, BODY_LUA, args.warmup, env)
        cpu_before, _ = server_usage(server.pid)
        result = run_wrk(args, url, BODY_LUA, args.duration, env)
        cpu_after, rss = server_usage(server.pid)
        seconds = result.requests / result.requests_per_s
        return Load(name, result.requests - result.errors, result.errors, seconds,
                    result.p50_ms, result.p99_ms, cpu_after - cpu_before, rss)  # fmt: skip
    with tempfile.NamedTemporaryFile(suffix=".body") as file:
        file.write(body)
        file.flush()
        h2load(args, url, Path(file.name), headers, args.warmup)
        cpu_before, _ = server_usage(server.pid)
        ok, bad, latencies = h2load(args, url, Path(file.name), headers, args.duration)
        cpu_after, rss = server_usage(server.pid)
    if ok == 0:
        raise RuntimeError(f"{name}: no 2xx answer ({bad} others)")
    quantiles = statistics.quantiles(latencies, n=100)
    # h2load sends for exactly --duration seconds (-D) once connected: the rate's denominator.
    return Load(name, ok, bad, float(args.duration), quantiles[49], quantiles[98],
                cpu_after - cpu_before, rss)  # fmt: skip


@contextlib.contextmanager
def process(command: list[str], ready: str, log: Path, cwd: Path | None = None,
            env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:  # fmt: skip
    """A server in its own session, output to ``log``, until ``ready`` answers 200."""
    with log.open("wb") as out:
        server = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd,
            env={**os.environ, **(env or {})},
        )  # fmt: skip
        try:
            try:
                wait_ready(ready, server)
            except RuntimeError:
                sys.stderr.write(log.read_text()[-3000:])
                raise
            yield server
        finally:
            stop(server)


def pinned(args: argparse.Namespace, *command: str) -> list[str]:
    """``command`` pinned to the server core."""
    return ["taskset", "-c", args.server_core, *command]


def parity_rows(model: OnnxScorer, features: Path | None) -> np.ndarray:
    """10,000 evaluation rows: the feature table's last rows, or rows around the means."""
    if features is not None and features.exists():
        table = pd.read_parquet(features, columns=list(model.feature_names))
        return table.tail(PARITY_ROWS).to_numpy(np.float32)
    rng = np.random.default_rng(0)
    means = np.asarray(model.metadata.feature_means, dtype=np.float32)
    return (means * (1 + 0.1 * rng.standard_normal((PARITY_ROWS, len(means))))).astype(np.float32)


def calibration_rows(model: OnnxScorer, features: Path | None) -> np.ndarray:
    """1,000 rows spread over the whole feature table (int8 calibration), not the test rows."""
    if features is None or not features.exists():
        return parity_rows(model, None)[:1000]
    table = pd.read_parquet(features, columns=list(model.feature_names))
    return table.sample(n=min(1000, len(table)), random_state=0).to_numpy(np.float32)


def max_diff(scores: list[float] | np.ndarray, reference: np.ndarray) -> float:
    """max |scores - reference|."""
    return float(np.abs(np.asarray(scores, dtype=np.float32).reshape(-1) - reference).max())


def chunks(rows: np.ndarray, size: int = 1000) -> Iterator[np.ndarray]:
    """``rows`` in consecutive slices of ``size``."""
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def provider_side(args: list[str]) -> dict[str, float]:
    """Run ``_provider_side.py`` in the provider environment; its JSON figures."""
    script = Path(__file__).with_name("_provider_side.py")
    done = subprocess.run(
        [str(PROVIDERS_BIN / "python"), str(script), *args],
        capture_output=True, text=True, check=False, timeout=900,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"provider side failed:\n{done.stderr[-3000:]}")
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def run_all(args: argparse.Namespace, run: Path, tmp: Path) -> tuple[list[Load], dict[str, float]]:
    """Every server, one after the other; (loads, parity and batch figures)."""
    model = OnnxScorer.load(run / "model.onnx")
    names = model.feature_names
    means = [float(m) for m in model.metadata.feature_means]
    rows = parity_rows(model, args.features)
    reference = model.score(rows)
    np.save(tmp / "rows.npy", rows)
    np.save(tmp / "calibration.npy", calibration_rows(model, args.features))
    figures = provider_side(
        ["--model", str(run / "model.onnx"), "--rows", str(tmp / "rows.npy"),
         "--calibration", str(tmp / "calibration.npy")]
    )  # fmt: skip
    by_name = json.dumps(dict(zip(names, means, strict=True))).encode()  # TorchServe's body
    forward = json.dumps({"features": dict(zip(names, means, strict=True))}).encode()
    json_type = ["content-type: application/json"]
    loads: list[Load] = []
    port = args.port

    floor_cmd = pinned(args, str(REPO / ".venv" / "bin" / "python"), "-c", FLOOR_APP, str(port))
    with process(floor_cmd, f"http://127.0.0.1:{port}/", tmp / "floor.log") as server:
        url = f"http://127.0.0.1:{port}/forward"
        loads.append(
            measure(args, "bare ASGI app (uvicorn floor)", server, url, forward, json_type)
        )

    port += 1
    vigil = pinned(
        args, str(VIGIL), "serve", "--set", f"inference.model_path={run / 'model.onnx'}",
        "--set", f"storage.database_url=sqlite:///{tmp / 'vigil.db'}",
        "--set", "storage.state_url=memory://", "--set", f"serving.port={port}",
        "--set", f"serving.api_key={secrets.token_hex(16)}",
    )  # fmt: skip
    with process(vigil, f"http://127.0.0.1:{port}/health", tmp / "vigil.log") as server:
        url = f"http://127.0.0.1:{port}/forward"
        parity = [  # one row per request: /forward is the single-transaction route
            httpx.post(url, json={"features": [float(v) for v in row]}).json()["score"]
            for row in rows[:1000]
        ]
        figures["vigil_forward_max_abs_diff"] = max_diff(parity, reference[:1000])
        loads.append(measure(args, "Vigil POST /forward", server, url, forward, json_type))

    port += 1
    http_port, grpc_port = port, port + 1
    triton = pinned(
        args, str(PROVIDERS_BIN / "python"), "-m", "vigil.providers.triton", "serve",
        "--model", str(run / "model.onnx"), "--http-port", str(http_port),
        "--grpc-port", str(grpc_port),
    )  # fmt: skip
    ready = f"http://127.0.0.1:{http_port}/v2/models/vigil/ready"
    with process(triton, ready, tmp / "triton.log") as server:
        url = f"http://127.0.0.1:{http_port}/v2/models/vigil/infer"
        scores = []
        for part in chunks(rows):
            tensor = {"name": "features", "shape": list(part.shape), "datatype": "FP32"}
            infer = {"inputs": [tensor | {"data": part.reshape(-1).tolist()}]}
            scores += httpx.post(url, json=infer, timeout=60).json()["outputs"][0]["data"]
        figures["triton_http_max_abs_diff"] = max_diff(scores, reference)
        one = json.dumps({"inputs": [{"name": "features", "shape": [1, len(names)],
                                      "datatype": "FP32", "data": means}]}).encode()  # fmt: skip
        loads.append(measure(args, "Triton HTTP (KServe v2 JSON)", server, url, one, json_type))
        grpc_body = tmp / "grpc.body"
        np.save(tmp / "means.npy", np.asarray([means], dtype=np.float32))
        figures |= provider_side(
            ["--model", str(run / "model.onnx"), "--rows", str(tmp / "means.npy"),
             "--grpc-body", str(grpc_body), "--grpc-port", str(grpc_port)]
        )  # fmt: skip
        grpc_url = f"http://127.0.0.1:{grpc_port}/inference.GRPCInferenceService/ModelInfer"
        grpc_headers = ["content-type: application/grpc", "te: trailers"]
        loads.append(
            measure(args, "Triton gRPC", server, grpc_url, grpc_body.read_bytes(), grpc_headers,
                    grpc=True)
        )  # fmt: skip

    port += 3
    bento = pinned(args, str(PROVIDERS_BIN / "bentoml"), "serve", "service:VigilScorer",
                   "--port", str(port))  # fmt: skip
    env = {"VIGIL_INFERENCE__MODEL_PATH": str(run / "model.onnx"), "BENTOML_DO_NOT_TRACK": "true",
           "BENTOML_HOME": str(tmp / "bentoml")}  # fmt: skip
    ready = f"http://127.0.0.1:{port}/readyz"
    with process(bento, ready, tmp / "bento.log", REPO / "deploy" / "bento", env) as server:
        url = f"http://127.0.0.1:{port}/score"
        scores = []
        for part in chunks(rows):
            answer = httpx.post(url, json={"features": part.tolist()}, timeout=60)
            scores += answer.raise_for_status().json()
        figures["bentoml_max_abs_diff"] = max_diff(scores, reference)
        one = json.dumps({"features": [means]}).encode()
        loads.append(measure(args, "BentoML (adaptive batching)", server, url, one, json_type))

    args.port = port + 10
    by_name_dict = dict(zip(names, means, strict=True))
    for tuned, label in ((False, "TorchServe defaults"), (True, "TorchServe tuned")):
        with torchserve(args, run, by_name_dict, tmp, tuned) as (server, url):
            if not tuned:
                scores = []
                for part in chunks(rows):
                    body = [dict(zip(names, map(float, r), strict=True)) for r in part]
                    scores += [a["score"] for a in httpx.post(url, json=body, timeout=60).json()]
                figures["torchserve_max_abs_diff"] = max_diff(scores, reference)
            loads.append(measure(args, label, server, url, by_name, json_type))
    return loads, figures


def key(name: str) -> str:
    """A results key from a server's name: 'Triton HTTP (KServe v2 JSON)' -> 'triton_http'."""
    return name.split(" (")[0].lower().replace(" ", "_").replace("/", "")


def main() -> None:
    """Run every server; print the table, the parity and batch figures, the headline last."""
    args = parse_args()
    run = args.run or find_run(REPO / "runs") or find_run(REPO / "data" / "pipeline" / "runs")
    if run is None or not (run / "model.mar").exists():
        sys.exit("needs a training run with model.mar and model.onnx (--run), e.g. `dvc repro`")
    run = run.resolve()  # BentoML runs in deploy/bento: a relative --run would miss the model
    if not (PROVIDERS_BIN / "python").exists():
        sys.exit("needs the provider environment: make setup-providers")
    features = args.features or REPO / "data" / "pipeline" / "features.parquet"
    args.features = features if features.exists() else None
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="vigil-bench-providers-") as tmp_name:
        loads, figures = run_all(args, run, Path(tmp_name))
    floor, vigil = loads[0], loads[1]
    by = {load.name: load for load in loads}
    print(f"model: {run} ; {args.connections} connections, {args.duration} s per server, "
          f"server on core {args.server_core}, h2load on core {args.client_core}")  # fmt: skip
    print(f"load average before / after (1, 5, 15 min): {load_before} / {os.getloadavg()}")
    print("| server | req/s | p50 ms | p99 ms | CPU us/req | RSS MB | errors | CPU / floor |")
    print("|---|---|---|---|---|---|---|---|")
    for load in loads:
        print(load.row(floor))
    for figure, value in sorted(figures.items()):
        print(f"{figure}: {value:.3g}")
    ratios = {
        name: vigil.requests_per_s / by[name].requests_per_s
        for name in ("TorchServe tuned", "TorchServe defaults", "BentoML (adaptive batching)",
                     "Triton HTTP (KServe v2 JSON)", "Triton gRPC")
    }  # fmt: skip
    results = dict(figures)
    for name, load in by.items():
        results |= {f"{key(name)}_req_per_s": load.requests_per_s, f"{key(name)}_p99_ms":
                    load.p99_ms, f"{key(name)}_cpu_us": load.cpu_us}  # fmt: skip
    results |= {f"vigil_vs_{key(name)}": ratio for name, ratio in ratios.items()}
    write_results("bench_providers", results, args.results)
    print(
        "Vigil /forward req/s vs: "
        + ", ".join(f"{name} x{ratio:.2f}" for name, ratio in ratios.items())
        + f"; CPU {vigil.cpu_us:.0f} us/request vs the bare-ASGI floor {floor.cpu_us:.0f} us"
    )


if __name__ == "__main__":
    main()
