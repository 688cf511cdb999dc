"""Run a command inside a cgroup with a memory limit and a CPU quota.

One place for every stage of the stress campaign (offline features, training, the API, the
stream worker): a stage that overruns its memory is OOM-killed by the kernel, not written
down as a number. These machines mount cgroup v1 (``memory``, ``cpu``, ``cpuacct``) and have
no systemd as PID 1 (``systemd-run --scope`` answers "System has not been booted with
systemd"), so the cgroup files are written directly; that needs root.

A group is made as a child of the calling process's own cgroup in each hierarchy, so
whatever limits or accounting the caller lives under still apply, and it is removed when the
stage ends (every process left in it is killed first).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

CGROUP_ROOT = Path("/sys/fs/cgroup")
CFS_PERIOD_US = 100_000
_CONTROLLERS = ("memory", "cpu", "cpuacct")
_counter = itertools.count()


class CgroupUnavailable(RuntimeError):
    """cgroup v1 memory/cpu/cpuacct hierarchies are missing or not writable (not root?)."""


@dataclass(frozen=True)
class Limits:
    """A stage's budget: hard memory limit (bytes, page cache included) and CPU quota (cores)."""

    memory_bytes: int
    cpus: float

    def __post_init__(self) -> None:
        if self.memory_bytes < 4 * 2**20:
            raise ValueError(f"memory limit {self.memory_bytes} B is below 4 MiB")
        if not 0.01 <= self.cpus <= 1024:
            raise ValueError(f"CPU quota {self.cpus} is outside [0.01, 1024] cores")


@dataclass(frozen=True)
class Usage:
    """What a group used so far (or in all, once its stage ended)."""

    memory_bytes: int  # now, page cache included
    peak_memory_bytes: int  # memory.max_usage_in_bytes: page cache included
    cpu_seconds: float  # user + system of every process that ran in the group
    oom_kills: int  # processes the kernel's OOM killer ended inside the group
    limit_hits: int  # memory.failcnt: times the group hit its limit (reclaim or OOM)
    throttled_seconds: float  # time the CPU quota held the group back (summed over CPUs)
    periods: int  # CFS periods (100 ms) in which the group ran
    throttled_periods: int  # of those, periods in which it used up its quota and waited


@dataclass(frozen=True)
class StageResult:
    """The outcome of :func:`run_limited`."""

    command: tuple[str, ...]
    limits: Limits
    returncode: int  # negative: killed by that signal (-9 for an OOM kill)
    oom_killed: bool
    peak_memory_bytes: int  # cgroup peak, page cache included
    peak_rss_bytes: int  # largest anonymous memory of the group, sampled (no page cache)
    cpu_seconds: float
    wall_seconds: float
    limit_hits: int
    throttled_seconds: float

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able fields."""
        out = asdict(self)
        out["command"] = list(self.command)
        return out


def parse_size(text: str) -> int:
    """``"2GB"``, ``"1.5G"``, ``"512MiB"``, ``"800M"`` or plain bytes -> bytes (powers of 1024)."""
    units = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
    cleaned = text.strip().lower().removesuffix("ib").removesuffix("b")
    number, unit = (cleaned[:-1], cleaned[-1]) if cleaned[-1:].isalpha() else (cleaned, "")
    if unit not in units:
        raise ValueError(f"unknown size unit in {text!r}")
    try:
        value = float(number) * units[unit]
    except ValueError as error:
        raise ValueError(f"not a size: {text!r}") from error
    return int(value)


def _own_path(controller: str, proc_cgroup: str) -> str:
    """This process's cgroup path in a v1 hierarchy, from the text of /proc/self/cgroup."""
    for line in proc_cgroup.splitlines():
        _, names, path = line.split(":", 2)
        if controller in names.split(","):
            return path
    raise CgroupUnavailable(f"no cgroup v1 {controller!r} hierarchy in /proc/self/cgroup")


class LimitedGroup:
    """One cgroup per controller, made as a child of the caller's; processes started in it.

    Use as a context manager: on exit every process still inside is SIGKILLed and the groups
    are removed. :meth:`popen` starts a command inside; :meth:`usage` reads the counters.
    """

    def __init__(self, name: str, limits: Limits, root: Path = CGROUP_ROOT) -> None:
        self.limits = limits
        proc_cgroup = Path("/proc/self/cgroup").read_text()
        leaf = f"vigil-{name}-{os.getpid()}-{next(_counter)}"
        self.dirs = {
            controller: root / controller / _own_path(controller, proc_cgroup).lstrip("/") / leaf
            for controller in _CONTROLLERS
        }
        self._made: list[Path] = []

    def __enter__(self) -> LimitedGroup:
        try:
            for directory in self.dirs.values():
                directory.mkdir()
                self._made.append(directory)
            memory = self.dirs["memory"]
            _write(memory / "memory.limit_in_bytes", self.limits.memory_bytes)
            if (memory / "memory.memsw.limit_in_bytes").exists():  # no escape into swap
                _write(memory / "memory.memsw.limit_in_bytes", self.limits.memory_bytes)
            cpu = self.dirs["cpu"]
            _write(cpu / "cpu.cfs_period_us", CFS_PERIOD_US)
            _write(cpu / "cpu.cfs_quota_us", round(self.limits.cpus * CFS_PERIOD_US))
        except OSError as error:
            self.close()
            raise CgroupUnavailable(
                f"cannot set up cgroup v1 limits under {CGROUP_ROOT} ({error}); root and the "
                "memory, cpu and cpuacct controllers are needed"
            ) from error
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _tasks_files(self) -> list[Path]:
        return [directory / "cgroup.procs" for directory in self.dirs.values()]

    def _join(self) -> None:
        """preexec_fn of a child: move itself into every group before exec."""
        pid = str(os.getpid())
        for path in self._tasks_files():
            path.write_text(pid)

    def popen(
        self,
        command: Sequence[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        stdout: int | IO[Any] | None = None,
        stderr: int | IO[Any] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``command`` inside the group (it joins before exec: nothing runs unlimited)."""
        return subprocess.Popen(  # the caller's own command, no shell
            list(command),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdout=stdout,
            stderr=stderr,
            preexec_fn=self._join,  # joins the groups, then exec
            start_new_session=True,
        )

    def pids(self) -> list[int]:
        """Processes now in the group."""
        text = (self.dirs["memory"] / "cgroup.procs").read_text()
        return [int(line) for line in text.split()]

    def usage(self) -> Usage:
        """Counters of the group now."""
        memory, cpu = self.dirs["memory"], self.dirs["cpu"]
        oom = _read_table(memory / "memory.oom_control")
        cpu_stat = _read_table(cpu / "cpu.stat")
        return Usage(
            memory_bytes=_read_int(memory / "memory.usage_in_bytes"),
            peak_memory_bytes=_read_int(memory / "memory.max_usage_in_bytes"),
            cpu_seconds=_read_int(self.dirs["cpuacct"] / "cpuacct.usage") / 1e9,
            oom_kills=int(oom.get("oom_kill", 0)),
            limit_hits=_read_int(memory / "memory.failcnt"),
            throttled_seconds=int(cpu_stat.get("throttled_time", 0)) / 1e9,
            periods=int(cpu_stat.get("nr_periods", 0)),
            throttled_periods=int(cpu_stat.get("nr_throttled", 0)),
        )

    def anon_bytes(self) -> int:
        """Anonymous memory (``total_rss`` of memory.stat) of every process in the group now."""
        return int(_read_table(self.dirs["memory"] / "memory.stat").get("total_rss", 0))

    def kill_all(self, sig: int = signal.SIGKILL, timeout: float = 10.0) -> None:
        """Signal every process in the group and wait (SIGKILL: until the group is empty)."""
        deadline = time.monotonic() + timeout
        while pids := self.pids():
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            if sig != signal.SIGKILL or time.monotonic() > deadline:
                return
            time.sleep(0.02)

    def close(self) -> None:
        """Kill what is left inside, then remove the groups (idempotent)."""
        if self._made and (self.dirs["memory"] / "cgroup.procs").exists():
            self.kill_all()
        for directory in reversed(self._made):
            for _ in range(100):  # a killed process leaves the group a moment after it died
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
        self._made.clear()


def _write(path: Path, value: int) -> None:
    path.write_text(str(value))


def _read_table(path: Path) -> dict[str, str]:
    return dict(line.split() for line in path.read_text().splitlines())


def _read_int(path: Path) -> int:
    return int(path.read_text().strip())


def run_limited(
    command: Sequence[str],
    limits: Limits,
    *,
    name: str = "stage",
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    stdout: int | IO[Any] | None = None,
    stderr: int | IO[Any] | None = None,
) -> StageResult:
    """Run one stage inside a fresh cgroup with ``limits``; wait; report what it used.

    The stage's exit status is returned, never raised: an OOM kill is ``oom_killed=True``
    with ``returncode=-9``. On ``timeout`` the group is killed and
    :class:`subprocess.TimeoutExpired` is raised. Processes the stage leaves behind are
    killed when it ends.
    """
    started = time.perf_counter()
    with LimitedGroup(name, limits) as group:
        process = group.popen(command, cwd=cwd, env=env, stdout=stdout, stderr=stderr)
        try:
            status, peak_rss = _wait_sampling(group, process.pid, timeout)
        except subprocess.TimeoutExpired:
            group.kill_all()
            process.wait()
            raise
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        group.kill_all()
        usage = group.usage()
    return StageResult(
        command=tuple(command),
        limits=limits,
        returncode=process.returncode,
        oom_killed=usage.oom_kills > 0,
        peak_memory_bytes=usage.peak_memory_bytes,
        peak_rss_bytes=peak_rss,
        cpu_seconds=usage.cpu_seconds,
        wall_seconds=wall,
        limit_hits=usage.limit_hits,
        throttled_seconds=usage.throttled_seconds,
    )


def _wait_sampling(group: LimitedGroup, pid: int, timeout: float | None) -> tuple[int, int]:
    """Wait for ``pid`` (polled, with a timeout) sampling the group's anonymous memory.

    Returns the wait status and the largest ``total_rss`` seen (every 50 ms at most): the
    cgroup keeps a peak only of its whole charge, page cache included.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    delay, peak_rss = 0.001, 0
    while True:
        peak_rss = max(peak_rss, group.anon_bytes())
        waited, status = os.waitpid(pid, os.WNOHANG)
        if waited:
            return status, peak_rss
        if deadline is not None and time.monotonic() > deadline:
            raise subprocess.TimeoutExpired([str(pid)], timeout or 0.0)
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
