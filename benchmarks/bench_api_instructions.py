"""/predict's CPU instructions per request under callgrind: trees compared whatever the load.

CPU time per request moves with the machine (other processes, caches, frequency), and with
it the micro-batch size, which changes the per-request share of every per-batch cost. This
benchmark counts user-space instructions instead: each tree's ``vigil serve`` (its own code,
``bench_api.py``'s model, settings and Redis history) runs under ``valgrind --tool=callgrind``
and answers the same seeded stream of ``/predict`` requests in lock-step batches: the server is
stopped (SIGSTOP) while a batch is sent on ``--batch`` connections and continued once all are
sent, so every micro-batch holds exactly ``--batch`` requests, then all answers are read. The
counters are zeroed after the warm-up batches and dumped after the measured ones; the figure
is the event-loop thread's instructions per request (the kernel's share of socket writes is
not counted). A run takes minutes (the server is ~50x slower under valgrind).

    .venv/bin/python benchmarks/bench_api_instructions.py --tree-a /work/wt-base963 --tree-b .
"""

from __future__ import annotations

import argparse
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _world import start_until_healthy  # ours: imported before one_tree() changes the path

REPO = Path(__file__).resolve().parents[1]
VALGRIND = ["valgrind", "--tool=callgrind", "--separate-threads=yes"]


def parse_args() -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tree-a", type=Path, default=REPO, help="the reference tree")
    parser.add_argument("--tree-b", type=Path, default=REPO, help="the tree compared with it")
    parser.add_argument("--batch", type=int, default=8, help="requests per micro-batch")
    parser.add_argument("--warmup-batches", type=int, default=100)
    parser.add_argument("--batches", type=int, default=250, help="measured batches")
    parser.add_argument(
        "--database-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/vigil_instructions",
        help="prefix of the fresh databases (a suffix per run is added)",
    )
    parser.add_argument("--state-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--one-tree", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


def request(tx_id: int, when: float, customers: int, rng: random.Random) -> bytes:
    """One ``POST /predict`` continuing the warmed history (as bench_api.py's wrk script)."""
    body = (
        b'{"transaction_id":%d,"tx_datetime":"%s","customer_id":%d,"terminal_id":%d,'
        b'"tx_amount":%.2f}'
        % (
            tx_id,
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(when))).encode(),
            rng.randrange(customers),
            rng.randrange(2 * customers),
            rng.random() * 200,
        )
    )
    return b"POST /predict HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n" + (
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )


def read_status(sock: socket.socket, pending: bytearray) -> int:
    """Read one answer (headers and a Content-Length body) from ``sock``; its status."""
    while b"\r\n\r\n" not in pending:
        pending += _received(sock)
    head, _, rest = bytes(pending).partition(b"\r\n\r\n")
    length = re.search(rb"(?i)content-length: *(\d+)", head)
    while length is not None and len(rest) < int(length.group(1)):
        rest += _received(sock)
    pending[:] = rest[int(length.group(1)) if length else 0 :]
    return int(head.split(b" ", 2)[1])


def _received(sock: socket.socket) -> bytes:
    data = sock.recv(65536)
    if not data:
        raise ConnectionError("the server closed the connection")
    return data


def one_tree(args: argparse.Namespace) -> None:
    """Run in a tree (its src/ and benchmarks/ on the path): print instructions per request."""
    sys.path.remove(str(Path(__file__).resolve().parent))  # the tree's benchmarks/, not ours
    sys.modules.pop("_world")  # (ours stays imported for start_until_healthy)
    import bench_api  # the tree's own: its model, settings and Redis history

    args.overrides, args.history_customers, args.history_days = [], 2000, 40
    bench_api.ensure_database(args.database_url)
    world = bench_api.prepare_state(args)
    start, step = float(world["VIGIL_BENCH_START"]), float(world["VIGIL_BENCH_STEP"])
    customers = int(world["VIGIL_BENCH_CUSTOMERS"])
    scratch = Path(tempfile.mkdtemp(prefix="vigil-instructions-"))
    model = bench_api.default_model(scratch, bench_api.served_features(args))
    out = scratch / "callgrind.out"
    command = [*VALGRIND, f"--callgrind-out-file={out}.%p", sys.executable, str(bench_api.VIGIL)]
    command += ["serve", "--set", f"inference.model_path={model}"]
    for key, value in (
        ("storage.database_url", args.database_url),
        ("storage.state_url", args.state_url),
        ("serving.port", str(args.port)),
        ("serving.api_key", secrets.token_hex(16)),
    ):
        command += ["--set", f"{key}={value}"]
    server = start_until_healthy(command, args.port, scratch / "server.log", timeout=900)
    rng, base, sent = random.Random(11), time.time_ns() // 1000 % 10**7 * 10**8, 0
    sockets = [socket.create_connection(("127.0.0.1", args.port)) for _ in range(args.batch)]
    buffers = [bytearray() for _ in sockets]
    statuses: dict[int, int] = {}
    try:
        for phase, batches in (("warm-up", args.warmup_batches), ("measured", args.batches)):
            if phase == "measured":
                subprocess.run(["callgrind_control", "-z", str(server.pid)], check=True)
                statuses.clear()
            for _ in range(batches):
                os.kill(server.pid, signal.SIGSTOP)  # the whole batch in one loop turn
                for sock in sockets:
                    sent += 1
                    sock.sendall(request(base + sent, start + sent * step, customers, rng))
                os.kill(server.pid, signal.SIGCONT)
                for sock, pending in zip(sockets, buffers, strict=True):
                    status = read_status(sock, pending)
                    statuses[status] = statuses.get(status, 0) + 1
        subprocess.run(["callgrind_control", "-d", str(server.pid)], check=True)
    finally:
        server.terminate()
        server.wait(timeout=300)
    main_thread = Path(f"{out}.{server.pid}.1-01").read_text()
    summary = re.search(r"^summary: (\d+)", main_thread, re.MULTILINE)
    instructions = int(summary.group(1)) if summary else 0
    requests = args.batches * args.batch
    print(f"statuses {statuses}; instructions per request {instructions / requests:.0f}")


def run_tree(tree: Path, args: argparse.Namespace, suffix: str) -> float:
    """Instructions per request of ``tree`` (this script run inside it)."""
    from bench_api import drop_database  # this tree's (benchmarks/ is the script's folder)

    command = [sys.executable, __file__, "--one-tree", "--database-url", args.database_url]
    command[-1] += f"_{suffix}"
    for flag in ("batch", "warmup_batches", "batches", "state_url", "port"):
        command += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    path = os.pathsep.join(str(tree / folder) for folder in ("src", "benchmarks"))
    try:
        completed = subprocess.run(
            command,
            cwd=tree,
            env={**os.environ, "PYTHONPATH": path},
            capture_output=True,
            text=True,
        )
    finally:
        drop_database(command[command.index("--database-url") + 1])
    found = re.search(r"statuses \{200: \d+\}; instructions per request (\d+)", completed.stdout)
    if completed.returncode != 0 or found is None:
        raise RuntimeError(f"{tree}: failed:\n{completed.stdout[-3000:]}{completed.stderr[-3000:]}")
    return float(found.group(1))


def main() -> None:
    """Tree A, then tree B; instructions per /predict request and their ratio, printed last."""
    args = parse_args()
    if args.one_tree:
        one_tree(args)
        return
    stamp = time.strftime("%H%M%S")
    a = run_tree(args.tree_a.resolve(), args, f"{stamp}a")
    b = run_tree(args.tree_b.resolve(), args, f"{stamp}b")
    print(f"A {args.tree_a}: {a:,.0f} instructions per /predict request")
    print(f"B {args.tree_b}: {b:,.0f} instructions per /predict request")
    print(f"/predict instructions per request B/A: {b / a:.4f} (batches of {args.batch})")


if __name__ == "__main__":
    main()
