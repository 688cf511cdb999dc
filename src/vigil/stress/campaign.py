"""The stress campaign (issue 15): the API and a stream worker under 1 CPU / 2 GB cgroups,
Locust at the course's 1,000 req/s, a 10x surge, then faults injected under load.

Everything runs on private services and ports: a PostgreSQL cluster and a Redis server of
its own (stopped and killed here), the machine's RabbitMQ with queues of unique names,
reached by the worker through a fault proxy (``proxy.py``) that cuts it (the shared broker
itself is never stopped). The API reaches PostgreSQL and Redis through proxies too, for the
latency and dropped-connection faults. The load generators run outside the services' cgroups,
in accounting groups of their own so their CPU is measured. Every step is recorded with its
epoch time; ``analysis.py`` turns the records into figures and ``report.py`` into the report.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from vigil.stress.cgroup import LimitedGroup, Limits
from vigil.stress.loadgen import Phase
from vigil.stress.proxy import FaultProxy
from vigil.stress.services import (
    PrivatePostgres,
    PrivatePrometheus,
    PrivateRedis,
    free_port,
    wait_port,
)
from vigil.stress.world import VIGIL, World, build_world, world_settings

log = logging.getLogger(__name__)
GiB = 2**30
SHARED_BROKER = ("127.0.0.1", 5672)
SHARED_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/"
SERVICE_LIMITS = Limits(memory_bytes=2 * GiB, cpus=1.0)  # the course's 1 CPU / 2 GB
# The API's own counters, read back once a second from the campaign's Prometheus after the
# load (cumulative, like the samples): why it shed, how late its event loop was, how long its
# garbage collections stopped it (full ones apart).
_API = 'job="vigil-api"'
API_SERIES = {
    **{
        f"shed_{reason}": f'sum(vigil_http_requests_shed_total{{{_API},reason="{reason}"}})'
        for reason in ("in_flight", "queued", "loop_lag")
    },
    "loop_probes": f"sum(vigil_event_loop_lag_seconds_count{{{_API}}})",
    "loop_probes_within_20ms": f'sum(vigil_event_loop_lag_seconds_bucket{{{_API},le="0.02"}})',
    "loop_probes_within_50ms": f'sum(vigil_event_loop_lag_seconds_bucket{{{_API},le="0.05"}})',
    "gc_full_seconds": f'sum(vigil_gc_pause_seconds_total{{{_API},generation="2"}})',
    "gc_young_seconds": f'sum(vigil_gc_pause_seconds_total{{{_API},generation!="2"}})',
}
ACCOUNTING = Limits(memory_bytes=8 * GiB, cpus=2.0)  # for load generators: measured, not held


@dataclass(frozen=True)
class Plan:
    """Sizes and durations of one campaign (``FULL`` for the report, ``MINI`` for CI)."""

    name: str
    customers: int
    warm_days: int
    traffic_days: int
    locust_seconds: float
    locust_users: int  # each sends 10 req/s (locustfile.py)
    baseline_rate: float
    surge_rate: float
    before_surge_s: float
    surge_s: float
    after_surge_s: float
    fault_s: float  # length of the timed faults (PostgreSQL stop, broker cut, latency)
    settle_s: float  # load without faults after each fault
    stream_rate: float
    api: Limits = SERVICE_LIMITS
    worker: Limits = SERVICE_LIMITS
    proxy_latency_s: float = 0.02  # each way: +40 ms per store round trip
    max_loop_lag_ms: float = 20.0  # the API's lag bound (serving.max_loop_lag_ms)
    latency_target_ms: float = 20.0  # the in-flight limit follows it (serving.*)
    max_queue_ms: float = 15.0  # refused when waiting longer before its handler (serving.*)

    def phases(self, faults: int) -> list[Phase]:
        """The generator's load: baseline, surge, recovery, then baseline under the faults."""
        return [
            Phase(self.before_surge_s, self.baseline_rate),
            Phase(self.surge_s, self.surge_rate),
            Phase(self.after_surge_s + faults * (self.fault_s + self.settle_s), self.baseline_rate),
        ]

    @property
    def faults_start_s(self) -> float:
        """Seconds after the generator's start when the first fault is injected."""
        return self.before_surge_s + self.surge_s + self.after_surge_s


FULL = Plan("full", 5_000, 38, 80, 300, 100, 1_000, 10_000, 20, 30, 40, 10, 30, 50)
MINI = Plan("mini", 300, 38, 14, 5, 10, 100, 1_000, 2, 3, 3, 2, 3, 20)
# FULL within ~15 min on a loaded machine: smaller world (its warm-up is most of the set-up),
# 2 minutes of Locust, a 20 s surge, 20 s between faults.
SHORT = Plan("short", 1_500, 38, 170, 120, 100, 1_000, 10_000, 20, 20, 40, 10, 20, 50)
PLANS = {plan.name: plan for plan in (FULL, SHORT, MINI)}


@dataclass
class Event:
    """A fault or a step of the campaign, in epoch seconds."""

    name: str
    start: float
    end: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Sample:
    """Once a second: the cgroups' memory and CPU (used, and held back by the quota: seconds
    summed over CPUs, and 100 ms periods throttled), the host's busy CPU seconds (every core,
    every process: the other stages and whatever else runs on the machine), the stream's
    stored count. The counters are cumulative (``vigil.stress.context`` takes differences)."""

    t: float
    api_memory: int
    api_cpu: float
    worker_memory: int
    worker_cpu: float
    stream_stored: int
    api_throttled: float
    api_throttled_periods: int
    worker_throttled: float
    worker_throttled_periods: int
    host_busy: float


def host_busy_seconds(proc_stat: str, ticks_per_second: float) -> float:
    """CPU seconds the host spent busy (user, nice, system, irq, softirq; every core) since
    boot, from the text of ``/proc/stat``; idle, I/O wait and steal are not busy."""
    fields = proc_stat.splitlines()[0].split()
    if fields[0] != "cpu":
        raise ValueError("/proc/stat does not start with the aggregate cpu line")
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[1:8])
    return (user + nice + system + irq + softirq) / ticks_per_second


class StreamCount:
    """The stream's stored decisions, counted cheaply once a second by the campaign's sampler.

    ``count(*) ... WHERE source = 'stream'`` each second was a parallel sequential scan of
    the whole predictions table: ~80-90 ms of PostgreSQL CPU at 600,000 rows, in bursts on
    both cores (the API's included), growing with the run. Here rows older than ``margin_s``
    (by ``created_at``, through its index) are counted once into a base; only the last
    ``margin_s`` are counted again. The worker stores a decision within seconds of its
    ``created_at``, except across a database outage: it retries the decisions scored before
    and during it until the database is back. So after a failed read (:meth:`missed`) the
    base stays where it was until ``margin_s`` after the next read succeeds, whatever the
    outage's length; a row stored more than ``margin_s`` late otherwise would be missed.
    """

    def __init__(self, margin_s: float = 30.0) -> None:
        self.margin = timedelta(seconds=margin_s)
        self.base = 0
        self.base_until: datetime | None = None
        self.held_until: datetime | None = None  # the base waits for late rows till then
        self.outage = False

    def missed(self) -> None:
        """A read failed (the database unreachable): rows may be stored late once it is back."""
        self.outage = True

    def read(self, connection: Any, now: datetime) -> int:
        """The stored count as of ``now`` (aware UTC)."""
        from sqlalchemy import func, select

        from vigil.storage.tables import predictions

        def count(after: datetime | None, until: datetime | None) -> int:
            query = select(func.count()).where(predictions.c.source == "stream")
            if after is not None:
                query = query.where(predictions.c.created_at > after)
            if until is not None:
                query = query.where(predictions.c.created_at <= until)
            return int(connection.execute(query).scalar_one())

        if self.outage:  # back: the decisions held meanwhile are being stored
            self.held_until, self.outage = now + self.margin, False
        cut = now - self.margin
        held = self.held_until is not None and now < self.held_until
        if not held and (self.base_until is None or cut > self.base_until):
            self.base += count(self.base_until, cut)
            self.base_until = cut
        return self.base + count(self.base_until, None)


class Supervisor:
    """Keeps one service process running in its cgroup, restarting it when it exits."""

    def __init__(
        self,
        name: str,
        group: LimitedGroup,
        command: list[str],
        env: dict[str, str],
        log_path: Path,
    ) -> None:
        self.name, self.group, self.command, self.env = name, group, command, env
        self.log_path = log_path
        self.restarts: list[float] = []
        self.process: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def start(self) -> None:
        """Start the process and the watcher."""
        self._spawn()
        self._thread.start()

    def _spawn(self) -> None:
        with self.log_path.open("ab") as log_file:
            self.process = self.group.popen(
                self.command, env=self.env, stdout=log_file, stderr=subprocess.STDOUT
            )

    def _watch(self) -> None:
        while not self._stop.is_set():
            if self.process is not None and self.process.poll() is not None:
                log.warning("%s exited (%s); restarting", self.name, self.process.returncode)
                self.restarts.append(time.time())
                self._spawn()
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM, wait, stop watching."""
        self._stop.set()
        self._thread.join(5)
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()


class Campaign:
    """One run of a :class:`Plan` in ``workdir``; :meth:`run` returns the path of results."""

    def __init__(
        self,
        plan: Plan,
        workdir: Path,
        model: Path | None,
        locustfile: Path,
        alert_rules: Path | None = None,
    ) -> None:
        self.plan, self.workdir, self.model, self.locustfile = plan, workdir, model, locustfile
        self.alert_rules = alert_rules  # a folder of rule files; None or no prometheus: none
        self.events: list[Event] = []
        self.samples: list[Sample] = []
        self.alert_polls: list[dict[str, Any]] = []  # Prometheus's active alerts, each second
        self.background: list[threading.Thread] = []  # recoveries still running
        self.tag = f"stress-{uuid.uuid4().hex[:8]}"
        self.api_key = os.urandom(16).hex()
        self.api_port = free_port()
        self.worker_metrics_port = free_port()
        self.env = {
            **os.environ,
            "VIGIL_SERVING__API_KEY": self.api_key,
            "MLFLOW_ALLOW_FILE_STORE": "true",
        }

    # -- set-up -------------------------------------------------------------------------
    def _settings(self, world_overrides: list[str]) -> list[str]:
        w = self.workdir
        return [
            *world_overrides,
            "--set",
            f"inference.model_path={self.model}",
            "--set",
            f"storage.database_url={self._db_url(self.pg_proxy.port)}",
            "--set",
            f"storage.state_url=redis://127.0.0.1:{self.redis_proxy.port}/0",
            "--set",
            f"monitoring.marts_dir={w / 'marts'}",
            "--set",
            f"serving.max_loop_lag_ms={self.plan.max_loop_lag_ms:g}",
            "--set",
            f"serving.latency_target_ms={self.plan.latency_target_ms:g}",
            "--set",
            f"serving.max_queue_ms={self.plan.max_queue_ms:g}",
            "--set",
            f"broker.url=amqp://guest:guest@127.0.0.1:{self.broker_proxy.port}/",
            "--set",
            f"broker.transactions_queue={self.tag}.transactions",
            "--set",
            f"broker.labels_queue={self.tag}.labels",
            "--set",
            f"broker.decisions_exchange={self.tag}.decisions",
        ]

    def _db_url(self, port: int) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"

    def _vigil(self, *args: str, log_name: str) -> None:
        """Run a ``vigil`` command to completion (output in the work folder)."""
        with (self.workdir / f"{log_name}.log").open("ab") as out:
            subprocess.run(
                [*VIGIL, *args], check=True, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

    def _train(self, world: World, overrides: list[str]) -> Path:
        """A LightGBM model on the warm-up history (the 7-day handbook protocol)."""
        model = self.workdir / "model.onnx"
        if model.exists() and model.stat().st_mtime > (self.workdir / "world.txt").stat().st_mtime:
            return model  # trained on this very world by a previous run
        # 7 training days, 7 days of label delay, 7 test days: the last 3 weeks of history.
        train_start = (world.traffic_start - timedelta(days=21)).date().isoformat()
        self._vigil(
            "train",
            "--data",
            str(world.history),
            "--promote",
            *overrides,
            "--set",
            "model.kind=lightgbm",
            "--set",
            f"train.train_start={train_start}",
            "--set",
            f"train.runs_dir={self.workdir / 'runs'}",
            "--set",
            f"tracking.mlflow_uri=file:{self.workdir / 'mlruns'}",
            "--set",
            f"inference.model_path={model}",
            log_name="train",
        )
        return model

    @contextlib.contextmanager
    def _services(self) -> Iterator[None]:
        """Private PostgreSQL and Redis, proxies in front of them and of the shared broker."""
        self.postgres = PrivatePostgres().init()
        self.postgres.start()
        self.redis = PrivateRedis(self.workdir / "redis")
        self.redis.start()
        self.pg_proxy = FaultProxy("127.0.0.1", self.postgres.port).start()
        self.redis_proxy = FaultProxy("127.0.0.1", self.redis.port).start()
        self.broker_proxy = FaultProxy(*SHARED_BROKER).start()
        self.prometheus: PrivatePrometheus | None = None
        if self.alert_rules is not None and shutil.which("prometheus"):
            targets = {"vigil-api": self.api_port, "vigil-worker": self.worker_metrics_port}
            self.prometheus = PrivatePrometheus(
                self.workdir / "prometheus", self.alert_rules, targets
            )
            shutil.rmtree(self.prometheus.folder / "data", ignore_errors=True)  # a previous run's
            self.prometheus.start()
        elif self.alert_rules is not None:
            log.warning("prometheus is not installed: the alerts are not evaluated")
        try:
            yield
        finally:
            if self.prometheus is not None:
                self.prometheus.stop()
            for proxy in (self.pg_proxy, self.redis_proxy, self.broker_proxy):
                proxy.stop()
            self.redis.stop()
            with contextlib.suppress(OSError):  # its checkpoints and autovacuum runs, kept
                shutil.copyfile(self.postgres.log_path, self.workdir / "postgres.log")
            self.postgres.remove()
            self._delete_queues()

    def _delete_queues(self) -> None:
        """Remove this campaign's queues and exchanges from the shared broker."""
        import asyncio

        import aio_pika

        async def delete() -> None:
            connection = await aio_pika.connect(SHARED_BROKER_URL)
            async with connection:
                channel = await connection.channel()
                for suffix in ("transactions", "labels"):
                    for name in (f"{self.tag}.{suffix}", f"{self.tag}.{suffix}.dlq"):
                        with contextlib.suppress(Exception):
                            await channel.queue_delete(name)
                    with contextlib.suppress(Exception):
                        await channel.exchange_delete(f"{self.tag}.{suffix}.dlx")
                with contextlib.suppress(Exception):
                    await channel.exchange_delete(f"{self.tag}.decisions")

        with contextlib.suppress(Exception):
            asyncio.run(delete())

    # -- running ------------------------------------------------------------------------
    def _event(self, name: str, **detail: Any) -> Event:
        event = Event(name, time.time(), detail=detail)
        self.events.append(event)
        log.info("campaign: %s %s", name, detail or "")
        return event

    def _wait_healthy(self, timeout_s: float = 120.0, warm: bool = False) -> float:
        """Until /health is ready (``warm``: and the state store warm); the time it took."""
        started = time.time()
        deadline = started + timeout_s
        while time.time() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                body = httpx.get(f"http://127.0.0.1:{self.api_port}/health", timeout=2).json()
                if body["status"] == "ready" or (not warm and body["status"] == "degraded"):
                    return time.time() - started
            time.sleep(0.2)
        raise TimeoutError("the API did not become healthy")

    def _sample(self, stop: threading.Event) -> None:
        from sqlalchemy import create_engine, text

        engine = create_engine(self._db_url(self.postgres.port), pool_pre_ping=True)
        stored, counter = 0, StreamCount()
        ticks = float(os.sysconf("SC_CLK_TCK"))
        while not stop.wait(1.0):
            try:
                with engine.connect() as connection:
                    connection.execute(text("SET max_parallel_workers_per_gather = 0"))
                    stored = counter.read(connection, datetime.now(UTC))
            except Exception:  # the database down (a fault): this sample repeats the last count
                counter.missed()
            if self.prometheus is not None:
                with contextlib.suppress(Exception):  # a missed poll is a gap, not a failure
                    active = self.prometheus.active_alerts()
                    self.alert_polls.append({"t": time.time(), "active": active})
            api, worker = self.api_group.usage(), self.worker_group.usage()
            host = host_busy_seconds(Path("/proc/stat").read_text(), ticks)
            self.samples.append(
                Sample(
                    time.time(),
                    api.memory_bytes,
                    api.cpu_seconds,
                    worker.memory_bytes,
                    worker.cpu_seconds,
                    stored,
                    api.throttled_seconds,
                    api.throttled_periods,
                    worker.throttled_seconds,
                    worker.throttled_periods,
                    host,
                )
            )
        engine.dispose()

    def _api_series(self) -> list[dict[str, float]] | None:
        """:data:`API_SERIES` every second from the generator's start to now, one row per
        second (``t``, then each series that has a point then); None without Prometheus."""
        if self.prometheus is None:
            return None
        start = next(e.start for e in self.events if e.name == "generator")
        end = time.time()
        columns: dict[str, dict[float, float]] = {}
        for name, query in API_SERIES.items():
            try:
                points = self.prometheus.query_range(query, start, end)
                columns[name] = {t: value for t, value in points}
            except (OSError, ValueError, KeyError) as error:  # a gap in the report, not a failure
                log.warning("reading %s back from Prometheus failed: %s", name, error)
        times = sorted(set().union(*(column.keys() for column in columns.values())))
        return [{"t": t, **{name: c[t] for name, c in columns.items() if t in c}} for t in times]

    def _locust(self) -> dict[str, Any]:
        """The course's SLO run: Locust at 1,000 req/s (100 users x 10 req/s)."""
        plan = self.plan
        prefix = self.workdir / "locust"
        command = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(self.locustfile),
            "--headless",
            "--only-summary",
            "-u",
            str(plan.locust_users),
            "-r",
            str(plan.locust_users),
            "-t",
            f"{int(plan.locust_seconds)}s",
            "--host",
            f"http://127.0.0.1:{self.api_port}",
            "--csv",
            str(prefix),
            "--csv-full-history",
            "--exit-code-on-error",
            "0",
        ]
        event = self._event("locust", users=plan.locust_users)
        with (
            LimitedGroup("locust", ACCOUNTING) as group,
            (self.workdir / "locust.log").open("ab") as out,
        ):
            process = group.popen(command, env=self.env, stdout=out, stderr=subprocess.STDOUT)
            process.wait()
            usage = group.usage()
        event.end = time.time()
        event.detail.update(cpu_seconds=usage.cpu_seconds, returncode=process.returncode)
        return {"csv_prefix": str(prefix), "cpu_seconds": usage.cpu_seconds}

    def _faults(self) -> list[tuple[str, Callable[[], dict[str, Any]]]]:
        """Each fault: inject, hold, undo; returns details. Run in this order."""
        plan = self.plan

        def postgres_stop() -> dict[str, Any]:
            self.postgres.stop()
            time.sleep(plan.fault_s)
            self.postgres.start()
            return {"down_s": plan.fault_s}

        def redis_kill() -> dict[str, Any]:
            self.redis.kill()
            self.redis.start()  # empty: no persistence
            detail: dict[str, Any] = {}
            rewarm = threading.Thread(target=self._rewarm, args=(detail,), daemon=True)
            rewarm.start()
            self.background.append(rewarm)
            return detail  # the re-warm fills in its duration when done

        def broker_cut() -> dict[str, Any]:
            self.broker_proxy.refusing = True
            cut = self.broker_proxy.drop()
            time.sleep(plan.fault_s)
            self.broker_proxy.refusing = False
            return {"down_s": plan.fault_s, "connections_cut": cut}

        def store_latency() -> dict[str, Any]:
            for proxy in (self.pg_proxy, self.redis_proxy):
                proxy.latency_s = plan.proxy_latency_s
            time.sleep(plan.fault_s)
            for proxy in (self.pg_proxy, self.redis_proxy):
                proxy.latency_s = 0.0
            return {"added_ms_each_way": plan.proxy_latency_s * 1000, "held_s": plan.fault_s}

        def connections_dropped() -> dict[str, Any]:
            return {
                "postgres": self.pg_proxy.drop(),
                "redis": self.redis_proxy.drop(),
                "broker": self.broker_proxy.drop(),
            }

        def worker_oom() -> dict[str, Any]:
            return self._oom_kill_worker()

        return [
            ("postgres_stop", postgres_stop),
            ("redis_kill", redis_kill),
            ("broker_cut", broker_cut),
            ("store_latency", store_latency),
            ("connections_dropped", connections_dropped),
            ("worker_oom", worker_oom),
        ]

    def _rewarm(self, detail: dict[str, Any]) -> None:
        """The automatic recovery after a Redis loss: ``vigil warm-state`` from the history
        and the transactions stored since (``--stored``: the live traffic is the recent past
        by now; the history alone is older than every window), bulk-loaded."""
        started = time.time()
        self._vigil(
            "warm-state",
            "--input",
            str(self.world.history),
            "--stored",
            "--pending-labels",
            *self.overrides,
            "--set",
            f"storage.state_url={self.redis.url}",
            "--set",
            f"storage.database_url={self._db_url(self.postgres.port)}",
            log_name="rewarm",
        )
        detail["rewarm_s"] = round(time.time() - started, 1)

    def _oom_kill_worker(self) -> dict[str, Any]:
        """Push the worker's cgroup over its memory limit: the kernel OOM-kills the worker.

        The worker is made the OOM killer's first choice (``oom_score_adj = 1000``; lowering
        the balloon's instead needs CAP_SYS_RESOURCE, which this sandbox lacks), then a
        balloon process joins its group and touches the room left plus 64 MB of anonymous
        memory. The supervisor restarts the worker, as a Deployment would.
        """
        before = self.worker_group.usage()
        for pid in self.worker_group.pids():
            with contextlib.suppress(OSError):
                Path(f"/proc/{pid}/oom_score_adj").write_text("1000")
        room = self.plan.worker.memory_bytes - self.worker_group.anon_bytes() + 64 * 2**20
        balloon = (
            f"import time\nb = bytearray({room})\n"
            "for i in range(0, len(b), 4096): b[i] = 1\ntime.sleep(0.5)\n"
        )
        process = self.worker_group.popen([sys.executable, "-c", balloon], env=self.env)
        process.wait(120)
        after = self.worker_group.usage()
        return {
            "oom_kills": after.oom_kills - before.oom_kills,
            "balloon_bytes": room,
            "balloon_exit": process.returncode,
        }

    def run(self) -> Path:
        """Prepare, run every phase, collect; returns the results JSON path."""
        plan = self.plan
        self.workdir.mkdir(parents=True, exist_ok=True)
        started = time.time()
        self.world = build_world(self.workdir, plan.customers, plan.warm_days, plan.traffic_days)
        self.overrides = world_settings(plan.customers, plan.warm_days + plan.traffic_days)
        if self.model is None:
            self.model = self._train(self.world, self.overrides)
        shutil.rmtree(self.workdir / "redis", ignore_errors=True)  # a previous run's
        (self.workdir / "postgres.log").unlink(missing_ok=True)  # ditto
        prepared = time.time()
        faults = self._faults()
        with (
            self._services(),
            LimitedGroup("api", plan.api) as self.api_group,
            LimitedGroup("worker", plan.worker) as self.worker_group,
        ):
            settings = self._settings(self.overrides)
            self._vigil("db", "upgrade", *settings, log_name="db")
            # Every history label: the offline scores (vigil predict --history) know each one
            # once it is due, as a live store would that got them on time.
            self._vigil(
                "warm-state",
                "--input",
                str(self.world.history),
                "--pending-labels",
                *settings,
                log_name="warm",
            )
            api = Supervisor(
                "api",
                self.api_group,
                [*VIGIL, "serve", "--port", str(self.api_port), *settings],
                self.env,
                self.workdir / "api.log",
            )
            worker = Supervisor(
                "worker",
                self.worker_group,
                [*VIGIL, "worker", "--metrics-port", str(self.worker_metrics_port), *settings],
                self.env,
                self.workdir / "worker.log",
            )
            api.start()
            worker.start()
            self._wait_healthy(warm=True)
            wait_port(self.worker_metrics_port)
            stop_sampling = threading.Event()
            sampler = threading.Thread(target=self._sample, args=(stop_sampling,), daemon=True)
            sampler.start()
            try:
                locust = self._locust()
                records, generator = self._generator_with_faults(faults, settings)
            finally:
                stop_sampling.set()
                sampler.join(5)
                drained = self._drain_stream()
                api.stop()
                worker.stop()
            results = {
                "plan": asdict(self.plan),
                "started": started,
                "prepared": prepared,
                "finished": time.time(),
                "world": {k: str(v) for k, v in asdict(self.world).items()},
                "model": str(self.model),
                "events": [asdict(e) for e in self.events],
                "samples": [asdict(s) for s in self.samples],
                "locust": locust,
                "generator": generator,
                "records": str(records),
                "stream": drained,
                "restarts": {"api": api.restarts, "worker": worker.restarts},
                "alerts": self.alert_polls if self.prometheus is not None else None,
                "database_url": self._db_url(self.postgres.port),
                "uptime": Path("/proc/loadavg").read_text().split()[:3],
                "host_cpus": os.cpu_count(),
                "postgres_log": str(self.workdir / "postgres.log"),  # copied when it stops
                "api_series": self._api_series(),
            }
            results["stored"] = self._stored_ids()
        results["offline_scores"] = self._offline_scores(records, generator)
        results["offline_seen_scores"] = self._offline_seen_scores(Path(str(results["stored"])))
        path = self.workdir / "results.json"
        path.write_text(json.dumps(results, indent=1))
        return path

    def _offline_scores(self, records: Path, generator: dict[str, Any]) -> str:
        """``vigil predict`` (batch, full history) on every transaction offered to either path."""
        import pandas as pd

        from vigil.stress.loadgen import Records

        offered = len(Records.load(str(records)).status)
        published = generator["stream_published"] or 0
        api = pd.read_parquet(self.world.api).head(offered)
        stream = pd.read_parquet(self.world.stream).sort_values("tx_datetime", kind="stable")
        traffic = pd.concat([api, stream.head(published)]).sort_values("tx_datetime")
        path, out = self.workdir / "offered.parquet", self.workdir / "offline.parquet"
        traffic.to_parquet(path, index=False)
        # Scored without the traffic's own labels: the services got none during the campaign
        # either, so both sides know the frauds of the history only.
        unlabelled = self.workdir / "offered-unlabelled.parquet"
        traffic.drop(columns=["tx_fraud", "tx_fraud_scenario"], errors="ignore").to_parquet(
            unlabelled, index=False
        )
        return self._predict(unlabelled, out)

    def _predict(self, transactions: Path, out: Path) -> str:
        """``vigil predict`` (batch, the history as context) of ``transactions`` into ``out``."""
        history, model = str(self.world.history), str(self.model)
        self._vigil(
            "predict", "-i", str(transactions), "-o", str(out), "--history", history,
            "--model", model, *self.overrides, log_name="predict",
        )  # fmt: skip
        return str(out)

    def _offline_seen_scores(self, stored: Path) -> str:
        """Batch scores of the transactions the services stored, from the history and those
        alone: what the live state could know. A transaction shed (503) or refused is not
        in the live state; comparing with these scores separates what the state missed from
        how it was kept (the report's accuracy by window)."""
        import pandas as pd

        offered = pd.read_parquet(self.workdir / "offered-unlabelled.parquet")
        ids = pd.read_parquet(stored, columns=["transaction_id"]).transaction_id
        seen = self.workdir / "seen-unlabelled.parquet"
        offered[offered.transaction_id.isin(ids)].to_parquet(seen, index=False)
        return self._predict(seen, self.workdir / "offline-seen.parquet")

    def _generator_with_faults(
        self, faults: list[tuple[str, Callable[[], dict[str, Any]]]], settings: list[str]
    ) -> tuple[Path, dict[str, Any]]:
        """Run the open-loop generator and the stream producer; inject faults on schedule."""
        plan = self.plan
        phases = plan.phases(len(faults))
        records = self.workdir / "records.npz"
        spec = ",".join(f"{p.seconds:g}:{p.rate:g}" for p in phases)
        duration = sum(p.seconds for p in phases)
        command = [
            *VIGIL,
            "stress",
            "load",
            "--port",
            str(self.api_port),
            "--phases",
            spec,
            "--transactions",
            str(self.world.api),
            "--out",
            str(records),
        ]
        stream_n = int(plan.stream_rate * duration)
        replay = [
            *VIGIL,
            "replay",
            "--input",
            str(self.world.stream),
            "--rate",
            str(plan.stream_rate),
            "--limit",
            str(stream_n),
            "--label-after",
            "-1",
            *settings,
            "--set",
            f"broker.url={SHARED_BROKER_URL}",
        ]
        with LimitedGroup("loadgen", ACCOUNTING) as group:
            generator = group.popen(command, env=self.env, stdout=subprocess.PIPE)
            assert generator.stdout is not None
            line = generator.stdout.readline().decode()
            if not line.startswith("START "):
                raise RuntimeError(f"load generator did not start: {line!r}")
            zero = float(line.split()[1])
            self._event("generator", zero=zero, phases=spec)
            with (self.workdir / "replay.log").open("ab") as out:
                producer = subprocess.Popen(
                    replay, env=self.env, stdout=out, stderr=subprocess.STDOUT
                )
            self._event("surge", rate=plan.surge_rate).start = zero + plan.before_surge_s
            self.events[-1].end = zero + plan.before_surge_s + plan.surge_s
            for index, (name, inject) in enumerate(faults):
                at = zero + plan.faults_start_s + index * (plan.fault_s + plan.settle_s)
                time.sleep(max(0.0, at - time.time()))
                event = self._event(name)
                event.detail = inject()
                event.end = time.time()
            generator.wait()
            usage = group.usage()
            try:  # a loaded machine publishes slower than asked: give it as long again
                producer.wait(max(60.0, duration))
            except subprocess.TimeoutExpired:
                log.warning("stream producer still publishing; stopping it")
                producer.terminate()
                producer.wait()
            for thread in self.background:
                thread.join(600)
        published = min(stream_n, self.world.stream_rows) if producer.returncode == 0 else None
        return records, {
            "cpu_seconds": usage.cpu_seconds,
            "seconds": duration,
            "stream_published": published,
            "producer_returncode": producer.returncode,
        }

    def _drain_stream(self, timeout_s: float = 120.0) -> dict[str, Any]:
        """Wait until the worker has stored every published stream transaction (or timeout)."""
        from sqlalchemy import create_engine, text

        engine = create_engine(self._db_url(self.postgres.port))
        started = time.time()
        stored, last_change, previous = 0, started, -1
        quiet_s = min(3 * self.plan.settle_s, 30.0)  # no new stored row for this long: drained
        while time.time() - started < timeout_s and time.time() - last_change < quiet_s:
            with engine.connect() as connection:
                stored = connection.execute(
                    text("SELECT count(*) FROM predictions WHERE source = 'stream'")
                ).scalar_one()
            if stored != previous:
                previous, last_change = stored, time.time()
            time.sleep(1.0)
        engine.dispose()
        return {"stored": stored, "waited_s": time.time() - started}

    def _stored_ids(self) -> str:
        """Every stored prediction (id, score, source) as Parquet; returns the path."""
        import pandas as pd
        from sqlalchemy import create_engine

        engine = create_engine(self._db_url(self.postgres.port))
        query = (
            "SELECT transaction_id, score, label, source, created_at, latency_ms FROM predictions"
        )
        frame = pd.read_sql(query, engine)
        engine.dispose()
        path = self.workdir / "stored.parquet"
        frame.to_parquet(path, index=False)
        return str(path)
