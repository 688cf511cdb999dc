"""Redis AOF ``everysec``: what a host crash could lose, measured on the running server.

A killed redis-server loses nothing its AOF holds: the file's pages are in the kernel's page
cache and survive the process (writes Redis postponed while an fsync stalled are not in the
file yet: ADR 0013). A host crash (power loss, kernel panic) loses what the kernel
had not yet written to disk, i.e. everything written to the AOF after the start of the last
``fdatasync`` that completed. This benchmark measures that window instead of assuming it:

1. a private ``redis-server --appendonly yes --appendfsync everysec`` (never the shared one);
2. ``strace -f`` on it records every ``write``/``fdatasync`` of the AOF with its start time
   and duration;
3. the online state records a simulated world's transactions in micro-batches (as the API and
   the worker do), noting when each batch is acknowledged;
4. for every moment just before an ``fdatasync`` completes (the worst instants), it counts
   the acknowledged transactions whose AOF writes no completed ``fdatasync`` yet covered.

Prints the fsync gaps and the worst-case acknowledged transactions (and seconds) a host crash
would lose. strace slows the traced server, so the rate is lower than untraced; the window
in seconds is what the policy sets.

    .venv/bin/python benchmarks/bench_redis_fsync.py [--seconds 12]
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from _world import simulate_world, warm
from vigil.config import DEFAULT_CONFIG_PATH, load_settings
from vigil.features.online import OnlineFeatureComputer
from vigil.features.redis_state import RedisStateStore

# the tests' launcher of private redis-server processes
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

SYSCALL = re.compile(
    r"^(?P<pid>\d+)\s+(?P<start>\d+\.\d+) (?P<call>write|fdatasync|fsync)\((?P<fd>\d+)[,)]"
    r".*<(?P<took>\d+\.\d+)>$"
)


@dataclass(frozen=True)
class Syscall:
    call: str
    fd: int
    start: float
    end: float


def parse_trace(path: Path) -> list[Syscall]:
    """The completed write/fdatasync/fsync calls of an ``strace -f -ttt -T`` log."""
    calls = []
    for line in path.read_text().splitlines():
        match = SYSCALL.match(line)
        if match:
            start = float(match["start"])
            calls.append(
                Syscall(match["call"], int(match["fd"]), start, start + float(match["took"]))
            )
    return calls


def aof_descriptors(pid: int) -> set[int]:
    """The descriptors of the server's open AOF files (Redis 7: appendonlydir/*.aof)."""
    fds = set()
    for link in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(link).endswith(".aof"):
                fds.add(int(link.name))
        except OSError:
            continue
    return fds


def worst_exposure(syncs: list[Syscall], acks: list[tuple[float, int]]) -> tuple[int, float]:
    """The most acknowledged transactions, and longest time, not covered by a finished sync.

    Just before sync k finishes, the disk holds what was written before sync k-1 started (k-1
    has finished by then). Acknowledgements after that start are counted as at risk: an upper
    bound, since a batch's AOF write precedes its acknowledgement.
    """
    ack_times = [at for at, _ in acks]
    cumulative = [0]
    for _, count in acks:
        cumulative.append(cumulative[-1] + count)
    worst, longest = 0, 0.0
    ordered = sorted(syncs, key=lambda call: call.end)
    for previous, current in itertools.pairwise(ordered):
        lo = bisect.bisect_right(ack_times, previous.start)
        hi = bisect.bisect_left(ack_times, current.end)
        worst = max(worst, cumulative[hi] - cumulative[lo])
        longest = max(longest, current.end - previous.start)
    return worst, longest


def main() -> None:
    from redis_cluster_support import local_server

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="traced load")
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("strace") is None:
        raise SystemExit("needs strace (apt-get install strace)")

    settings = load_settings(DEFAULT_CONFIG_PATH)
    world = simulate_world(args.customers, args.days)
    tmp = Path(tempfile.mkdtemp(prefix="vigil-redis-fsync-"))
    with local_server(tmp) as port:
        url = f"redis://127.0.0.1:{port}/0"
        pid = int(redis.Redis.from_url(url).info("server")["process_id"])
        online = OnlineFeatureComputer(settings.features, RedisStateStore(url, prefix="bench"))
        half = len(world.transactions) // 2
        warm(online, world.transactions[:half], world.frauds[:half])
        trace = tmp / "strace.log"
        tracer = subprocess.Popen(
            [
                "strace",
                "-f",
                "-ttt",
                "-T",
                "-e",
                "trace=write,fdatasync,fsync",
                "-o",
                str(trace),
                "-p",
                str(pid),
            ],
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)  # attached to every thread
        fds = aof_descriptors(pid)
        acks: list[tuple[float, int]] = []
        started = time.time()
        position = half
        while time.time() - started < args.seconds and position < len(world.transactions):
            batch = world.transactions[position : position + args.batch]
            online.features_for_batch(batch)
            acks.append((time.time(), len(batch)))
            position += len(batch)
        time.sleep(2.5)  # let everysec sync the tail
        tracer.send_signal(signal.SIGINT)
        tracer.wait()
        persistence = redis.Redis.from_url(url).info("persistence")
    calls = [call for call in parse_trace(trace) if call.fd in fds]
    syncs = [call for call in calls if call.call != "write"]
    writes = [call for call in calls if call.call == "write"]
    if len(syncs) < 2 or not acks:
        raise SystemExit(f"too few AOF syncs traced ({len(syncs)}): is strace allowed here?")
    gaps = [later.start - earlier.start for earlier, later in itertools.pairwise(syncs)]
    worst, longest = worst_exposure(syncs, acks)
    recorded = sum(count for _, count in acks)
    rate = recorded / (acks[-1][0] - started)
    print(f"load average: {os.getloadavg()}")
    print(f"traced: {recorded:,} transactions acknowledged in {acks[-1][0] - started:.1f} s")
    print(f"  ({rate:,.0f} tx/s under strace), {len(writes):,} AOF writes, {len(syncs)} syncs")
    print(f"fdatasync gaps: mean {sum(gaps) / len(gaps):.3f} s, max {max(gaps):.3f} s")
    print(f"aof_delayed_fsync: {persistence.get('aof_delayed_fsync', 'n/a')}")
    print(
        f"host crash at the worst instant: at most {worst:,} acknowledged transactions "
        f"({longest:.2f} s of writes) lost"
    )


if __name__ == "__main__":
    main()
