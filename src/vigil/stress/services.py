"""Private PostgreSQL, Redis and Prometheus servers for the stress campaign, on free ports.

The campaign stops and kills its stores; the machine's shared services (5432, 6379) must
never be touched, so each campaign starts its own: PostgreSQL with ``initdb``/``pg_ctl`` as
the ``postgres`` user (when run as root) in a temporary folder, Redis as a plain
``redis-server`` without persistence. Each can be stopped and started again on the same port
and data folder. A ``prometheus`` of its own scrapes the API and the worker every second with
the repository's alert rules, so the report can say which alerts each fault raised.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path


def free_port() -> int:
    """A loopback TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_port(port: int, timeout_s: float = 30.0) -> None:
    """Until something accepts connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


def _pg_bin(name: str) -> str:
    """``initdb`` / ``pg_ctl`` from PATH, else Debian's versioned folder."""
    found = shutil.which(name)
    if found:
        return found
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / name).exists():
            return str(folder / name)
    raise FileNotFoundError(f"{name} not found (install PostgreSQL's server package)")


class PrivatePostgres:
    """A throw-away PostgreSQL cluster in a fresh temporary folder (reachable by the
    ``postgres`` user, unlike a root-only test folder), on 127.0.0.1:``port`` only."""

    def __init__(self, port: int | None = None) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="vigil-stress-pg-"))
        self.data = self.folder / "pgdata"
        self.port = port or free_port()
        self._as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @property
    def url(self) -> str:
        """SQLAlchemy URL of its ``postgres`` database."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        done = subprocess.run([*self._as_postgres, *command], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command[:2])} failed: {done.stderr or done.stdout}")

    def init(self) -> PrivatePostgres:
        """``initdb`` (trust authentication, otherwise PostgreSQL's defaults)."""
        if self._as_postgres:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
        return self

    @property
    def log_path(self) -> Path:
        """The server's log (removed with the cluster: copy it first to keep it)."""
        return self.folder / "postgres.log"

    def start(self) -> None:
        """Start and wait until it accepts connections. The log times every checkpoint and
        every autovacuum run (UTC), for the stress report's context of a missed second."""
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
            "-c log_checkpoints=on -c log_autovacuum_min_duration=0 -c log_timezone=UTC"
        )
        log = str(self.log_path)
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", log, "-w", "start")
        wait_port(self.port)

    def stop(self) -> None:
        """Fast shutdown (open connections are cut), waiting until it is down."""
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        """Stop if running and delete the cluster's folder."""
        with contextlib.suppress(RuntimeError):
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


class PrivateRedis:
    """A ``redis-server`` on 127.0.0.1:``port``, no persistence: a kill loses its data."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (empty) and wait until it accepts connections."""
        self.folder.mkdir(parents=True, exist_ok=True)
        command = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.folder),
        ]
        with (self.folder / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        wait_port(self.port)

    def kill(self) -> None:
        """SIGKILL: the data goes with it."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(30)
            self.process = None


class PrivatePrometheus:
    """A ``prometheus`` scraping the API and the stream worker every second, with Vigil's
    alert rules loaded and evaluated every second; :meth:`active_alerts` polls them."""

    def __init__(
        self, folder: Path, rules: Path, targets: dict[str, int], port: int | None = None
    ) -> None:
        self.folder, self.rules, self.targets = folder, rules, targets
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Write its configuration, start it and wait until it answers."""
        self.folder.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in sorted(self.rules.glob("*.yml"))],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                for job, port in self.targets.items()
            ],
        }
        path = self.folder / "prometheus.yml"
        path.write_text(json.dumps(config))  # JSON is YAML
        command = [
            "prometheus",
            f"--config.file={path}",
            f"--storage.tsdb.path={self.folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        with (self.folder / "prometheus.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        wait_port(self.port)

    def active_alerts(self) -> list[tuple[str, str, str]]:
        """(alert name, ``pending`` or ``firing``, since when: RFC 3339) of every active alert."""
        url = f"http://127.0.0.1:{self.port}/api/v1/alerts"
        with urllib.request.urlopen(url, timeout=2) as answer:
            alerts = json.load(answer)["data"]["alerts"]
        return [(a["labels"]["alertname"], a["state"], a["activeAt"]) for a in alerts]

    def query_range(
        self, query: str, start: float, end: float, step: float = 1.0
    ) -> list[list[float]]:
        """``[[epoch, value], ...]`` of ``query`` (one series) every ``step`` seconds from
        ``start`` to ``end`` (each point: the newest scrape at or before it); [] when the
        query matched nothing."""
        window = {"query": query, "start": start, "end": end, "step": step}
        arguments = urllib.parse.urlencode(window)
        url = f"http://127.0.0.1:{self.port}/api/v1/query_range?{arguments}"
        with urllib.request.urlopen(url, timeout=30) as answer:
            found = json.load(answer)["data"]["result"]
        return [[float(t), float(v)] for t, v in found[0]["values"]] if found else []

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(30)
            self.process = None
