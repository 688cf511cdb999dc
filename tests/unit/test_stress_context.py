"""The stress report's CPU throttling by phase and its context for each second that missed
the SLO, on a synthetic campaign (no services: the campaign's results written by hand)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from vigil.cli import app
from vigil.stress import analysis, context
from vigil.stress.campaign import FULL, host_busy_seconds
from vigil.stress.loadgen import Records

ZERO = 1_800_000_000.0
RATE = 100  # requests a second
SECONDS = 100
SURGE = (10, 20)
# second -> requests shed (503) of its 100; every other second answers all 100 with 200
SHED = {**{s: 50 for s in range(*SURGE)}, 27: 3, 41: 100, 62: 5, 70: 2}
THROTTLED = {27: (0.04, 3)}  # second -> (API seconds held back, periods throttled)
# second -> the API's refusals by reason (its own counter); the surge's 50 a second: in_flight
# (41: none, the 503s of a database outage are not admission control's)
REASONS = {27: {"queued": 3}, 62: {"loop_lag": 5}, 70: {"in_flight": 2}}
LATE_PROBES = {27: (2, 1)}  # second -> loop probes over 20 ms, over 50 ms (of 200 a second)
FULL_GC = {27: 0.035}  # second -> seconds of full collections; young ones 1 ms every second


def _api_series() -> list[dict[str, float]]:
    """The API's cumulative counters as Prometheus gives them back, at each whole second."""
    rows, totals = [], dict.fromkeys(("in_flight", "queued", "loop_lag"), 0.0)
    probes = within_20 = within_50 = full = young = 0.0
    for second in range(SECONDS + 1):
        rows.append(
            {"t": ZERO + second, **{f"shed_{r}": v for r, v in totals.items()}}
            | {"loop_probes": probes, "loop_probes_within_20ms": within_20}
            | {"loop_probes_within_50ms": within_50}
            | {"gc_full_seconds": full, "gc_young_seconds": young}
        )
        full, young = full + FULL_GC.get(second, 0.0), young + 0.001
        surge = {"in_flight": 50} if SURGE[0] <= second < SURGE[1] else {}
        for reason, count in (REASONS.get(second) or surge).items():
            totals[reason] += count
        over_20, over_50 = LATE_PROBES.get(second, (0, 0))
        probes, within_20, within_50 = (
            probes + 200,
            within_20 + 200 - over_20,
            within_50 + 200 - over_50,
        )
    return rows


def _logged(second: float) -> str:
    """The PostgreSQL log's time stamp of ``second`` after the generator's start."""
    return datetime.fromtimestamp(ZERO + second, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


# The campaign's PostgreSQL log: a checkpoint from 25.0 to 27.2 s and an autovacuum of a
# partition ending at 27.5 s (0.42 s long) overlap second 27; a catalog's 0.00 s analyze and
# a checkpoint long before do not show.
POSTGRES_LOG = f"""{_logged(-30)} UTC [11] LOG:  checkpoint starting: time
{_logged(-29)} UTC [11] LOG:  checkpoint complete: wrote 3 buffers (0.0%); write=0.5 s, sync=0.1 s, total=1.0 s; sync files=2
{_logged(25)} UTC [11] LOG:  checkpoint starting: wal
{_logged(27.2)} UTC [11] LOG:  checkpoint complete: wrote 1713 buffers (10.5%); 0 WAL file(s) added, 0 removed, 1 recycled; write=1.900 s, sync=0.153 s, total=2.200 s; sync files=33
{_logged(27.3)} UTC [12] LOG:  automatic analyze of table "postgres.pg_catalog.pg_class"
\tsystem usage: CPU: user: 0.00 s, system: 0.00 s, elapsed: 0.00 s
{_logged(27.5)} UTC [12] LOG:  automatic vacuum of table "postgres.public.predictions_p20261206": index scans: 0
\tpages: 0 removed, 1667 remain, 1667 scanned (100.00% of total)
\tsystem usage: CPU: user: 0.01 s, system: 0.00 s, elapsed: 0.42 s
"""  # noqa: E501


def _samples(throttling: bool) -> list[dict[str, Any]]:
    """One sample at each whole second from Locust's start (-40 s) to the end of the load:
    the API uses half a core (a full one in the surge), throttled as ``THROTTLED`` says (and
    10 ms a second in the surge); the host is one core busy, 1.9 in second 27."""
    rows, api_cpu, throttled, periods, host = [], 0.0, 0.0, 0, 0.0
    for second in range(-40, SECONDS + 1):
        row: dict[str, Any] = {
            "t": ZERO + second,
            "api_memory": 100,
            "api_cpu": api_cpu,
            "worker_memory": 100,
            "worker_cpu": 0.1 * (second + 40),
            "stream_stored": 0,
        }
        if throttling:
            row |= {
                "api_throttled": throttled,
                "api_throttled_periods": periods,
                "worker_throttled": 0.0,
                "worker_throttled_periods": 0,
                "host_busy": host,
            }
        rows.append(row)
        surge = SURGE[0] <= second < SURGE[1]
        api_cpu += 1.0 if surge else 0.5
        held, count = THROTTLED.get(second, (0.01, 1) if surge else (0.0, 0))
        throttled, periods = throttled + held, periods + count
        host += 1.9 if second == 27 else 1.0
    return rows


def _campaign(folder: Path, throttling: bool = True) -> Path:
    """A campaign's results: Locust 40 s, then the generator's 100 s (surge at 10-20 s, a
    PostgreSQL stop at 40-45 s, a Redis kill at 60 s re-warmed for 5 s, the worker restarted
    at 70.2 s); each second's requests scheduled evenly, shed as ``SHED`` says. Without
    ``throttling``, a run from before: no throttling sampled, no PostgreSQL log."""
    n = RATE * SECONDS
    t = np.arange(n) / RATE
    shed = np.zeros(n, bool)
    for second, count in SHED.items():
        shed[second * RATE : second * RATE + count] = True
    status = np.where(shed, 503, 200).astype(np.int32)
    ids = np.arange(10_000, 10_000 + n)
    Records(ZERO + t, ZERO + t, ZERO + t + 0.01, status, ids).save(str(folder / "records.npz"))
    ok = ids[~shed]
    fraud = (ok % 10 == 0).astype(int)
    created = [datetime.fromtimestamp(ZERO + s, UTC) for s in t[~shed]]
    pd.DataFrame(
        {"transaction_id": ok, "score": 0.1 + 0.8 * fraud, "label": fraud, "source": "api"}
        | {"created_at": created, "latency_ms": 5.0}
    ).to_parquet(folder / "stored.parquet")
    pd.DataFrame({"transaction_id": ok, "score": 0.1 + 0.8 * fraud}).to_parquet(
        folder / "offline.parquet"
    )
    pd.DataFrame(
        {
            "transaction_id": ok,
            "tx_datetime": [datetime(2019, 3, 11) + timedelta(seconds=int(i)) for i in ok],
            "customer_id": ok % 97,
            "terminal_id": ok % 31,
            "tx_amount": 10.0,
            "tx_fraud": fraud,
        }
    ).to_parquet(folder / "offered.parquet")
    no_stream = {"transaction_id": "int64", "tx_datetime": "datetime64[ns]"}
    pd.DataFrame({c: pd.Series([], dtype=t) for c, t in no_stream.items()}).to_parquet(
        folder / "stream.parquet"
    )
    pd.DataFrame(
        [
            {"Name": "Aggregated", "Request Count": 4000, "Failure Count": 0}
            | {"Requests/s": 100.0, "Average Response Time": 9.0, "50%": 8, "99%": 30}
            | {"Max Response Time": 40.0}
        ]
    ).to_csv(folder / "locust_stats.csv", index=False)
    pd.DataFrame(
        [
            {"Name": "Aggregated", "Timestamp": ZERO - 40 + s, "Requests/s": 100.0}
            | {"Failures/s": 0.0, "99%": 30, "Total Average Response Time": 9.0}
            for s in range(40)
        ]
    ).to_csv(folder / "locust_stats_history.csv", index=False)
    faults = [
        ("postgres_stop", 40.0, 45.0, {"down_s": 5}),
        ("redis_kill", 60.0, 60.1, {"rewarm_s": 5.0}),
    ]
    results = {
        "plan": {
            **{k: v for k, v in vars(FULL).items() if k not in ("api", "worker")},
            "api": {"memory_bytes": 2**31, "cpus": 1.0},
            "worker": {"memory_bytes": 2**31, "cpus": 1.0},
            "surge_s": SURGE[1] - SURGE[0],
        },
        "started": ZERO - 100,
        "prepared": ZERO - 80,
        "finished": ZERO + SECONDS + 10,
        "world": {"stream": str(folder / "stream.parquet")},
        "model": "model.onnx",
        "events": [
            {"name": "locust", "start": ZERO - 40, "end": ZERO, "detail": {}},
            {"name": "generator", "start": ZERO, "end": ZERO, "detail": {"zero": ZERO}},
            {"name": "surge", "start": ZERO + SURGE[0], "end": ZERO + SURGE[1], "detail": {}},
            *(
                {"name": name, "start": ZERO + start, "end": ZERO + end, "detail": detail}
                for name, start, end, detail in faults
            ),
        ],
        "samples": _samples(throttling),
        "locust": {"csv_prefix": str(folder / "locust"), "cpu_seconds": 10.0},
        "generator": {"cpu_seconds": 5.0, "seconds": SECONDS, "stream_published": 0},
        "records": str(folder / "records.npz"),
        "restarts": {"api": [], "worker": [ZERO + 70.2]},
        "alerts": None,
        "uptime": ["1.00", "1.00", "1.00"],
        "host_cpus": 2,
        "stored": str(folder / "stored.parquet"),
        "offline_scores": str(folder / "offline.parquet"),
    }
    if throttling:  # a run since 2026-12-06 16:30 UTC: throttling sampled, PostgreSQL's log kept
        (folder / "postgres.log").write_text(POSTGRES_LOG)
        results["postgres_log"] = str(folder / "postgres.log")
        results["api_series"] = _api_series()
    path = folder / "results.json"
    path.write_text(json.dumps(results))
    return path


def _load(folder: Path, throttling: bool = True) -> tuple[analysis.Campaign, pd.DataFrame]:
    campaign = analysis.Campaign.load(_campaign(folder, throttling))
    return campaign, analysis.per_second(campaign.records, campaign.zero)


def test_each_missed_second_outside_the_surge_comes_with_its_context(tmp_path: Path) -> None:
    campaign, seconds = _load(tmp_path)
    rows = {r["t_s"]: r for r in context.missed_seconds(campaign, seconds, skip=SURGE)}

    assert sorted(rows) == [27, 41, 62, 70]  # 3 % shed misses; the surge's seconds are skipped
    blip = rows[27]
    assert (blip["during"], blip["offered"], blip["shed_503"]) == ("after_surge +7 s", 100, 3)
    assert blip["shed_by_reason"] == "queued 3"
    assert (blip["loop_late_20ms"], blip["loop_late_50ms"]) == (2.0, 1.0)
    assert blip["gc_full_ms"] == pytest.approx(35.0) and blip["gc_young_ms"] == pytest.approx(1)
    assert rows[62]["gc_full_ms"] == 0
    assert rows[62]["shed_by_reason"] == "loop_lag 5" and rows[62]["loop_late_20ms"] == 0
    assert rows[41]["shed_by_reason"] == "other 100"
    assert blip["api_throttled_ms"] == pytest.approx(40.0)
    assert blip["api_throttled_periods"] == pytest.approx(3.0)
    assert blip["api_cpu_ms"] == pytest.approx(500.0)
    assert blip["host_busy_cores"] == pytest.approx(1.9)
    assert blip["also"] == (
        "PostgreSQL checkpoint (wal; sync 0.153 s), "
        "autovacuum: vacuum predictions_p20261206 (0.42 s)"
    )
    assert rows[41]["during"] == "postgres_stop held, +1 s"
    assert rows[41]["api_throttled_ms"] == pytest.approx(0.0)
    assert rows[62]["during"] == "redis_kill +2 s after undone"
    assert rows[62]["also"] == "Redis re-warm (vigil warm-state)"
    assert rows[70]["also"] == "worker restarted"
    every = context.missed_seconds(campaign, seconds)
    assert len(every) == len(rows) + SURGE[1] - SURGE[0]


def test_throttling_by_phase_is_each_phases_share_of_its_counters(tmp_path: Path) -> None:
    campaign, _ = _load(tmp_path)
    phases = {p["phase"]: p for p in context.throttling_by_phase(campaign) or []}

    assert list(phases) == [
        "locust",
        "before_surge",
        "surge",
        "after_surge",
        "postgres_stop",
        "redis_kill",
    ]
    surge, after = phases["surge"], phases["after_surge"]
    assert surge["api_cpu_of_quota"] == pytest.approx(1.0)
    assert surge["api_throttled_ms_per_s"] == pytest.approx(10.0)
    assert surge["api_throttled_periods_share"] == pytest.approx(0.1)  # 1 of 10 periods
    assert after["api_cpu_of_quota"] == pytest.approx(0.5)
    assert after["api_throttled_ms_per_s"] == pytest.approx(40.0 / 20)  # second 27's 40 ms
    assert after["host_busy_cores"] == pytest.approx((19 + 1.9) / 20)
    assert phases["locust"]["api_throttled_ms_per_s"] == pytest.approx(0.0)
    assert phases["redis_kill"]["seconds"] == pytest.approx(40.0)  # till the last sample


def test_a_run_without_throttling_samples_says_so(tmp_path: Path) -> None:
    campaign, seconds = _load(tmp_path, throttling=False)

    assert context.throttling_by_phase(campaign) is None
    blip = next(r for r in context.missed_seconds(campaign, seconds) if r["t_s"] == 27)
    assert blip["shed_503"] == 3 and blip["during"] == "after_surge +7 s"
    assert blip["api_throttled_ms"] is None and blip["host_busy_cores"] is None
    assert blip["shed_by_reason"] is None and blip["loop_late_20ms"] is None
    assert blip["gc_full_ms"] is None


def test_the_report_shows_throttling_by_phase_and_the_missed_seconds(tmp_path: Path) -> None:
    results = _campaign(tmp_path)
    out = tmp_path / "docs" / "STRESS_REPORT.md"

    answer = CliRunner().invoke(
        app, ["stress", "report", "--results", str(results), "--out", str(out)]
    )

    assert answer.exit_code == 0, answer.output
    text = out.read_text()
    throttling = text.split("### CPU and throttling by phase")[1].split("###")[0]
    assert "| after_surge | 20.0 | 0.500 | 0.015 | 2.000 |" in throttling
    missed = text.split("### Seconds that missed the SLO")[1].split("###")[0]
    assert "4 seconds missed the SLO outside the surge (10 of the surge's 10 seconds" in missed
    assert (
        "| 27 | after_surge +7 s | 100 | 97 | 3 | 0 | 10.000 | 10.000 | queued 3 | 2.000 |"
        in missed
    )
    assert "| 70 | redis_kill +10 s after undone |" in missed and "worker restarted |" in missed
    assert "t = 27 s, 7 s after the surge ended (100 requests: 3 shed" in text


def test_the_report_of_an_earlier_run_says_throttling_was_not_sampled(tmp_path: Path) -> None:
    out = tmp_path / "STRESS_REPORT.md"
    answer = CliRunner().invoke(
        app,
        ["stress", "report", "--results", str(_campaign(tmp_path, False)), "--out", str(out)],
    )

    assert answer.exit_code == 0, answer.output
    text = out.read_text()
    assert "(Not sampled in this run" in text
    assert "from its log: not kept in this run" in text
    assert "| 27 | after_surge +7 s | 100 | 97 | 3 | 0 |" in text


def test_the_host_is_busy_outside_idle_io_wait_and_steal() -> None:
    stat = "cpu  100 20 30 1000 50 5 5 40 0 0\ncpu0 50 10 15 500 25 2 3 20 0 0\n"
    assert host_busy_seconds(stat, 100.0) == pytest.approx(1.6)
    with pytest.raises(ValueError):
        host_busy_seconds("intr 1 2 3\n", 100.0)


def test_store_events_are_the_checkpoints_and_autovacuum_runs_with_their_spans() -> None:
    events = context.store_events(POSTGRES_LOG)

    assert [(round(a - ZERO, 1), round(b - ZERO, 1), what) for a, b, what in events] == [
        (-30.0, -29.0, "PostgreSQL checkpoint (time; sync 0.1 s)"),
        (25.0, 27.2, "PostgreSQL checkpoint (wal; sync 0.153 s)"),
        (27.1, 27.5, "autovacuum: vacuum predictions_p20261206 (0.42 s)"),
    ]


def test_prometheus_range_queries_come_back_as_points() -> None:
    """``PrivatePrometheus.query_range`` against a stand-in for Prometheus's HTTP API."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from urllib.parse import parse_qs, urlparse

    from vigil.stress.services import PrivatePrometheus

    asked: list[dict[str, list[str]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlparse(self.path).query)
            asked.append(query)
            values = [[ZERO, "1"], [ZERO + 1, "4"]] if query["query"] == ["up"] else None
            result = [{"metric": {}, "values": values}] if values else []
            body = json.dumps({"status": "success", "data": {"result": result}}).encode()
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        prometheus = PrivatePrometheus(Path("."), Path("."), {}, port=server.server_port)
        assert prometheus.query_range("up", ZERO, ZERO + 1) == [[ZERO, 1.0], [ZERO + 1, 4.0]]
        assert prometheus.query_range("absent", ZERO, ZERO + 1) == []
    finally:
        server.shutdown()
    assert asked[0]["step"] == ["1.0"] and asked[0]["start"] == [str(ZERO)]


def test_a_second_a_fault_began_in_is_the_faults_and_phases_start_at_the_first_sample(
    tmp_path: Path,
) -> None:
    campaign, _ = _load(tmp_path)
    stop = next(e for e in campaign.results["events"] if e["name"] == "postgres_stop")
    stop["start"] = ZERO + 39.6  # injected part-way through second 39
    next(e for e in campaign.results["events"] if e["name"] == "locust")["start"] -= 5

    assert context._during(campaign, ZERO + 39) == "postgres_stop held, +0 s"
    assert context._during(campaign, ZERO + 38) == "after_surge +18 s"
    phases = {p["phase"]: p for p in context.throttling_by_phase(campaign) or []}
    assert phases["locust"]["seconds"] == 40.0  # from the first sample, not Locust's start
    assert phases["locust"]["api_cpu_of_quota"] == pytest.approx(0.5)
