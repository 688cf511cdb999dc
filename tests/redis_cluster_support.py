"""A real local Redis Cluster for tests and benchmarks: 3 masters, 3 replicas on private ports.

Started with ``redis-server --cluster-enabled yes`` and ``redis-cli --cluster create
... --cluster-replicas 1``, with AOF (``appendfsync everysec``) as in deploy/, and a short
node timeout so that a killed master fails over in a second or two.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

NODE_TIMEOUT_MS = 1000
# Redis postpones an AOF write while an fsync runs for < 2 s of its whole-second clock: < 3 s
POSTPONE_BOUND_S = 3.0
FSYNC_STALL_US = 2_500_000  # longer than the postponement, so postponed writes pile up


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int, start: int = 21000) -> list[int]:
    """``count`` consecutive ports whose cluster bus ports (+10000) are free too."""
    base = start
    while base < 29000:
        ports = list(range(base, base + count))
        if all(_free(p) and _free(p + 10000) for p in ports):
            return ports
        base += count + 7
    raise RuntimeError("no free ports for a local Redis Cluster")


def require_tools(*tools: str) -> None:
    """Skip without these programs on PATH (fail in CI: scripts/test_tools.sh installs them)."""
    import pytest

    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        message = f"{', '.join(missing)} not on PATH"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message} (CI=true: scripts/test_tools.sh installs them)")
        pytest.skip(message)


def _cli(port: int, *args: str) -> str:
    result = subprocess.run(
        ["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=10
    )
    return result.stdout


@dataclass
class LocalCluster:
    """Six redis-server processes forming one cluster; stopped (and their files removed) after."""

    root: Path
    ports: list[int]
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The state store URL (one seed node; the client discovers the others)."""
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def start_node(self, port: int) -> None:
        folder = self.root / str(port)
        folder.mkdir(parents=True, exist_ok=True)
        self.processes[port] = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                str(NODE_TIMEOUT_MS),
                "--dir",
                str(folder),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
                "--logfile",
                "redis.log",
            ],
            stdout=subprocess.DEVNULL,
        )

    def create(self) -> None:
        for port in self.ports:
            self.start_node(port)
        for port in self.ports:
            self.wait(lambda p=port: _cli(p, "PING").strip() == "PONG", f"node {port} up")
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *nodes,
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        self.wait(lambda: self.healthy() and self.replicated(), "every master replicated")

    def healthy(self) -> bool:
        """Every running node says the cluster is ok and sees 3 masters with slots."""
        for port, process in self.processes.items():
            if process.poll() is not None:
                continue
            info = _cli(port, "CLUSTER", "INFO")
            if "cluster_state:ok" not in info or "cluster_size:3" not in info:
                return False
        return True

    def replicated(self) -> bool:
        """Every master serving slots has a replica in sync (so that it can fail over)."""
        for port in self.masters():
            info = _cli(port, "INFO", "replication")
            if "connected_slaves:1" not in info or "state=online" not in info:
                return False
        return len(self.masters()) == 3

    def masters(self) -> list[int]:
        """Ports of the masters that serve slots, as the first live node sees them."""
        alive = next(p for p, proc in self.processes.items() if proc.poll() is None)
        lines = _cli(alive, "CLUSTER", "NODES").splitlines()
        return [
            int(line.split()[1].split(":")[1].split("@")[0])
            for line in lines
            if "master" in line.split()[2]
            and "fail" not in line.split()[2]
            and len(line.split()) > 8
        ]

    def kill(self, port: int) -> None:
        """SIGKILL one node (no shutdown save, no goodbye to the cluster)."""
        self.processes[port].send_signal(signal.SIGKILL)
        self.processes[port].wait()

    @staticmethod
    def wait(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.05)
        raise TimeoutError(f"local Redis Cluster: no {what} after {timeout} s")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait()


@contextlib.contextmanager
def local_cluster(root: Path, start: int = 21000) -> Iterator[LocalCluster]:
    """A fresh 3-master, 3-replica cluster under ``root``."""
    require_tools("redis-server", "redis-cli")
    cluster = LocalCluster(root, free_ports(6, start))
    try:
        cluster.create()
        yield cluster
    finally:
        cluster.stop()


@contextlib.contextmanager
def local_server(
    root: Path, *options: str, start: int = 23000, port: int | None = None
) -> Iterator[int]:
    """One private standalone redis-server (AOF everysec unless ``options`` say otherwise), on
    the first free port from ``start``, or on ``port``: a restart on the port its clients
    still connect to (Redis binds it even while the killed server's connections linger)."""
    require_tools("redis-server", "redis-cli")
    port = free_ports(1, start)[0] if port is None else port
    root.mkdir(parents=True, exist_ok=True)
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(root)]
    command += ["--appendonly", "yes", "--appendfsync", "everysec", "--save", "", *options]
    process = subprocess.Popen([*command, "--logfile", "redis.log"], stdout=subprocess.DEVNULL)
    try:
        LocalCluster.wait(lambda: _cli(port, "PING").strip() == "PONG", f"server {port} up")
        yield port
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()


def server_info(port: int, section: str, field: str) -> int:
    """One integer field of a private server's ``INFO``."""
    import redis

    client = redis.Redis(port=port)
    try:
        return int(client.info(section)[field])
    finally:
        client.close()


def aof_buffer_bytes(port: int) -> int:
    """Bytes Redis acknowledged but has not yet written to its AOF (postponed writes)."""
    return server_info(port, "persistence", "aof_buffer_length")


def _traced(pid: int, tracer: int) -> bool:
    """Whether ``tracer`` traces every thread of ``pid`` (Redis's fsync thread included)."""
    tasks = list(Path(f"/proc/{pid}/task").iterdir())
    return all(f"TracerPid:\t{tracer}\n" in (task / "status").read_text() for task in tasks)


@contextlib.contextmanager
def stalled_fsync(port: int) -> Iterator[int]:
    """Every ``fdatasync`` of the server on ``port`` delayed by ``FSYNC_STALL_US`` (strace's
    syscall delay), so that Redis postpones its AOF writes and replies anyway; yields the
    server's pid (a SIGKILL then loses the postponed writes, and strace exits)."""
    pid = server_info(port, "server", "process_id")
    only_fsync = ["-e", "trace=fdatasync", "-e", f"inject=fdatasync:delay_enter={FSYNC_STALL_US}"]
    tracer = subprocess.Popen(
        ["strace", "-f", "-qq", "-o", os.devnull, "-p", str(pid), *only_fsync]
    )
    try:
        LocalCluster.wait(lambda: _traced(pid, tracer.pid), "strace attached", 10.0)
        yield pid
    finally:
        try:
            tracer.wait(timeout=10.0)
        except subprocess.TimeoutExpired:
            tracer.kill()
            tracer.wait()
