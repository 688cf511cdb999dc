"""Stages under real cgroup limits: an overrun is an OOM kill, the quota holds the CPU."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import IN_CI
from vigil.cli import app
from vigil.stress.cgroup import CgroupUnavailable, LimitedGroup, Limits, parse_size, run_limited

MB = 2**20


@pytest.fixture(autouse=True)
def _cgroups() -> None:
    """Root and cgroup v1 are needed; CI (root on a cgroup v1 machine) must have them."""
    try:
        with LimitedGroup("probe", Limits(64 * MB, 1.0)):
            pass
    except CgroupUnavailable as error:
        if IN_CI:
            pytest.fail(f"cgroup limits unavailable in CI: {error}")
        pytest.skip(str(error))


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_overrun_is_an_oom_kill() -> None:
    result = run_limited(_python("x = bytearray(300 * 2**20)"), Limits(100 * MB, 1.0))
    assert result.oom_killed
    assert result.returncode == -9
    assert result.peak_memory_bytes <= 100 * MB


def test_within_limits_reports_status_and_usage() -> None:
    result = run_limited(
        _python("import sys; x = bytearray(50 * 2**20); sys.exit(3)"), Limits(200 * MB, 1.0)
    )
    assert (result.returncode, result.oom_killed) == (3, False)
    assert 50 * MB <= result.peak_memory_bytes <= 200 * MB
    assert result.cpu_seconds > 0
    assert result.wall_seconds >= result.cpu_seconds * 0.5


def test_cpu_quota_throttles() -> None:
    spin = "import time\nt = time.time()\nwhile time.time() - t < 1.0: pass"
    result = run_limited(_python(spin), Limits(100 * MB, 0.25))
    # A quarter of a core at most, however idle the machine (one 100 ms period of slack);
    # a busy machine may give it less, never more.
    assert result.cpu_seconds <= 0.25 * result.wall_seconds + 0.1
    assert result.cpu_seconds < 0.5


def test_the_quotas_throttling_is_counted() -> None:
    """A process spinning under a quarter of a core uses up the quota in most 100 ms periods:
    the group's usage counts those periods and the time they held it back (the stress
    report's throttling by phase and by second)."""
    spin = "import time\nt = time.time()\nwhile time.time() - t < 0.6: pass"
    with LimitedGroup("spin", Limits(100 * MB, 0.25)) as group:
        group.popen(_python(spin)).wait(30)
        usage = group.usage()
    assert usage.throttled_periods >= 1
    assert usage.periods >= usage.throttled_periods
    assert usage.throttled_seconds > 0


def test_leftover_processes_are_killed_and_groups_removed() -> None:
    with LimitedGroup("left", Limits(100 * MB, 1.0)) as group:
        group.popen(["sleep", "30"])
        assert len(group.pids()) == 1
        dirs = list(group.dirs.values())
    assert not any(path.exists() for path in dirs)


def test_timeout_kills_the_stage() -> None:
    import subprocess

    with pytest.raises(subprocess.TimeoutExpired):
        run_limited(["sleep", "30"], Limits(100 * MB, 1.0), timeout=0.3)


def test_cli_prints_json_and_exits_with_the_stage_status(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["limit", "--memory", "80MB", "--", *_python("x = bytearray(200 * 2**20)")]
    )
    assert result.exit_code == 137, result.output
    outcome = json.loads(result.output.splitlines()[-1])
    assert outcome["oom_killed"] and outcome["limits"]["memory_bytes"] == 80 * MB


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2GB", 2 * 2**30), ("1.5G", int(1.5 * 2**30)), ("512MiB", 512 * MB), ("4096", 4096)],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["2XB", "lots", ""])
def test_parse_size_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)
