"""Admission control under a 10x surge: a fixed in-flight bound against one that follows latency.

The API (``vigil serve``, one process) in a 1 CPU / 2 GiB cgroup, on a private PostgreSQL and
``redis-server`` warmed with a stress-campaign world (``make stress`` or ``vigil stress run``
builds it in ``--workdir``); the campaign's open-loop generator offers ``--baseline`` req/s,
then ``--surge`` req/s, then ``--baseline`` again. Each variant serves its own slice of the
world's transactions (no repeated ids), in turn, ``--pairs`` times (fixed, latency, fixed,
latency, ...), so both see the same machine. Needs root (cgroups, ``runuser postgres``).

    .venv/bin/python benchmarks/bench_surge.py --workdir data/stress --pairs 2

Prints per run: accepted req/s and p99 of accepted from the send during the surge, p99 of the
503s, the seconds until every second met the SLO again; last, the medians' ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from vigil.stress.analysis import per_second, recovery_seconds
from vigil.stress.campaign import SERVICE_LIMITS, Plan
from vigil.stress.cgroup import LimitedGroup
from vigil.stress.loadgen import Records, needed_rows, parse_phases
from vigil.stress.services import PrivatePostgres, PrivateRedis, free_port
from vigil.stress.world import VIGIL, world_settings

# serving.* of each variant; both with the campaign's loop-lag bound
VARIANTS = {
    "fixed": {"latency_target_ms": 0, "max_queue_ms": 0},
    "latency": {"latency_target_ms": 20, "max_queue_ms": 15},
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("data/stress"))
    parser.add_argument("--plan", default="short", help="the campaign plan that built the world")
    parser.add_argument("--baseline", type=float, default=1000.0)
    parser.add_argument("--surge", type=float, default=10000.0)
    parser.add_argument("--before", type=float, default=10.0, help="seconds before the surge")
    parser.add_argument("--surge-seconds", type=float, default=15.0)
    parser.add_argument("--after", type=float, default=15.0, help="seconds after the surge")
    parser.add_argument("--pairs", type=int, default=1)
    return parser.parse_args()


def _vigil(*args: str, log: Path) -> None:
    with log.open("ab") as out:
        subprocess.run([*VIGIL, *args], check=True, stdout=out, stderr=subprocess.STDOUT)


def _wait_ready(port: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()["status"] == "ready":
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError("the API did not become ready")


def surge_figures(records: Records, zero: float, args: argparse.Namespace) -> dict[str, object]:
    """The surge window's accepted rate and latencies, and the recovery after it."""
    start, end = args.before, args.before + args.surge_seconds
    t = records.scheduled - zero
    mask = (t >= start) & (t < end)
    status = records.status[mask]
    from_send = (records.answered - records.sent)[mask]
    ok, shed = status == 200, status == 503
    total = args.before + args.surge_seconds + args.after
    recovery = recovery_seconds(per_second(records, zero), end, total)
    return {
        "accepted_per_s": round(int(ok.sum()) / args.surge_seconds, 1),
        "shed_per_s": round(int(shed.sum()) / args.surge_seconds, 1),
        "other_errors": int((~ok & ~shed).sum()),
        "accepted_p99_from_send_ms": round(float(np.quantile(from_send[ok], 0.99)) * 1000, 1)
        if ok.any()
        else None,
        "shed_p99_from_send_ms": round(float(np.quantile(from_send[shed], 0.99)) * 1000, 1)
        if shed.any()
        else None,
        "recovery_s": recovery,
    }


def main() -> None:
    args = parse_args()
    from vigil.stress.campaign import PLANS

    plan: Plan = PLANS[args.plan]
    work = args.workdir.resolve()
    out = work / "bench_surge"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    phases = f"{args.before:g}:{args.baseline:g},{args.surge_seconds:g}:{args.surge:g},"
    phases += f"{args.after:g}:{args.baseline:g}"
    per_run = needed_rows(parse_phases(phases))
    api = pd.read_parquet(work / "api.parquet")
    overrides = world_settings(plan.customers, plan.warm_days + plan.traffic_days)
    postgres = PrivatePostgres().init()
    postgres.start()
    redis = PrivateRedis(out / "redis")
    redis.start()
    results: list[dict[str, object]] = []
    try:
        settings = [
            *overrides,
            "--set",
            f"inference.model_path={work / 'model.onnx'}",
            "--set",
            f"storage.database_url={postgres.url}",
            "--set",
            f"storage.state_url={redis.url}",
            "--set",
            f"monitoring.marts_dir={out / 'marts'}",
            "--set",
            f"serving.max_loop_lag_ms={plan.max_loop_lag_ms:g}",
        ]
        _vigil("db", "upgrade", *settings, log=out / "setup.log")
        history = str(work / "history.parquet")
        _vigil("warm-state", "--input", history, *settings, log=out / "setup.log")
        runs = [name for _ in range(args.pairs) for name in VARIANTS]
        for index, name in enumerate(runs):
            if (index + 1) * per_run > len(api):
                raise SystemExit(f"the world has transactions for {index} runs only")
            part = out / f"api-{index}.parquet"
            api.iloc[index * per_run : (index + 1) * per_run].to_parquet(part, index=False)
            serving = [a for k, v in VARIANTS[name].items() for a in ("--set", f"serving.{k}={v}")]
            port = free_port()
            with (
                LimitedGroup(f"bench-surge-{index}", SERVICE_LIMITS) as group,
                (out / f"api-{index}.log").open("ab") as log,
            ):
                server = group.popen(
                    [*VIGIL, "serve", "--port", str(port), *settings, *serving],
                    env={**os.environ, "VIGIL_SERVING__API_KEY": os.urandom(16).hex()},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
                try:
                    _wait_ready(port)
                    records_path = out / f"records-{index}.npz"
                    load = [*VIGIL, "stress", "load", "--port", str(port), "--phases", phases]
                    load += ["--transactions", str(part), "--out", str(records_path)]
                    generator = subprocess.run(load, check=True, capture_output=True, text=True)
                    zero = float(generator.stdout.split()[1])
                finally:
                    server.terminate()
                    server.wait(60)
            figures = surge_figures(Records.load(str(records_path)), zero, args)
            load_avg = Path("/proc/loadavg").read_text().split()[0]
            results.append({"run": index, "variant": name, **figures, "load_1min": load_avg})
            print(results[-1], flush=True)
    finally:
        redis.stop()
        postgres.remove()
    table = pd.DataFrame(results)
    print(table.to_string(index=False))

    def median(variant: str, column: str) -> float:
        values = [r[column] for r in results if r["variant"] == variant and r[column] is not None]
        return float(statistics.median(values)) if values else float("nan")

    fixed, latency = (median(v, "accepted_p99_from_send_ms") for v in ("fixed", "latency"))
    rate = median("latency", "accepted_per_s") / max(median("fixed", "accepted_per_s"), 1e-9)
    print(
        f"surge {args.surge:g} req/s: p99 of accepted from the send {latency:.1f} ms "
        f"(latency-following) vs {fixed:.1f} ms (fixed), accepted rate x{rate:.2f}"
    )


if __name__ == "__main__":
    main()
