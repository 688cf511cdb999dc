"""``docs/STRESS_REPORT.md`` from a campaign's results: tables, plots, definitions."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vigil.stress import analysis, context

GiB = 2**30
# Below this share of its CPU quota during the surge, the API was mostly waiting, not computing.
WAITING_BELOW_QUOTA_SHARE = 0.8
FAULT_TEXT = {
    "postgres_stop": "PostgreSQL stopped (`pg_ctl stop -m fast`), started again",
    "redis_kill": "Redis SIGKILLed, restarted empty, re-warmed (`vigil warm-state`)",
    "broker_cut": "RabbitMQ unreachable from the worker (proxy refuses and resets)",
    "store_latency": "latency added between the API and PostgreSQL + Redis (proxy)",
    "connections_dropped": "every connection to PostgreSQL, Redis, RabbitMQ reset (proxy)",
    "worker_oom": "worker OOM-killed by its cgroup (balloon), restarted by the supervisor",
}


def _plot(campaign: analysis.Campaign, seconds: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = pd.DataFrame(campaign.results["samples"])
    fig, axes = plt.subplots(4, 1, figsize=(11, 11), sharex=True)
    ax = axes[0]
    ax.plot(seconds.index, seconds.ok, label="200 (accepted)", color="tab:green")
    ax.plot(seconds.index, seconds.shed, label="503 shed", color="tab:orange")
    ax.plot(seconds.index, seconds.errors, label="other errors", color="tab:red")
    ax.set_ylabel("requests / s")
    ax.set_yscale("symlog", linthresh=10)
    ax.legend(loc="upper right", fontsize=8)
    ax = axes[1]
    ax.plot(seconds.index, seconds.ok_p99_s * 1000, label="p99 of 200s", color="tab:blue")
    ax.plot(seconds.index, seconds.mean_s * 1000, label="mean, all answers", color="tab:gray")
    ax.axhline(50, ls="--", color="tab:blue", lw=0.8)
    ax.axhline(200, ls="--", color="tab:gray", lw=0.8)
    ax.set_yscale("log")
    ax.set_ylabel("latency (ms)")
    ax.legend(loc="upper right", fontsize=8)
    ax = axes[2]
    ax.plot(seconds.index, 100 * seconds.not_ok_share, color="tab:red")
    ax.axhline(1, ls="--", color="tab:red", lw=0.8)
    ax.set_ylabel("not 200 (%)")
    ax = axes[3]
    if not samples.empty:
        t = samples.t - campaign.zero
        ax.plot(t, samples.api_memory / 2**20, label="API cgroup memory (MiB)")
        ax.plot(t, samples.worker_memory / 2**20, label="worker cgroup memory (MiB)")
        cpu = samples[["api_cpu", "worker_cpu"]].diff().div(samples.t.diff(), axis=0) * 100
        twin = ax.twinx()
        twin.plot(t, cpu.api_cpu, color="tab:green", lw=0.7, label="API CPU (%)")
        twin.plot(t, cpu.worker_cpu, color="tab:olive", lw=0.7, label="worker CPU (%)")
        twin.set_ylabel("CPU (% of one core)")
        twin.legend(loc="lower right", fontsize=8)
    ax.set_ylabel("MiB")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_xlabel("seconds since the load generator started")
    for event in campaign.results["events"]:
        if event["name"] in ("locust", "generator"):
            continue
        start, end = event["start"] - campaign.zero, max(event["end"], event["start"] + 1)
        for axis in axes:
            axis.axvspan(start, end - campaign.zero, color="tab:red", alpha=0.12)
        axes[0].annotate(
            event["name"], (start, axes[0].get_ylim()[1]), fontsize=7, rotation=90, va="top"
        )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _plot_locust(history: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 3))
    t = history.Timestamp - history.Timestamp.iloc[0]
    ax.plot(t, history["Requests/s"], label="req/s", color="tab:green")
    ax.plot(t, history["Failures/s"], label="failures/s", color="tab:red")
    ax.set_ylabel("req / s")
    twin = ax.twinx()
    twin.plot(t, history["99%"], label="p99 (ms)", color="tab:blue", lw=0.8)
    twin.plot(t, history["Total Average Response Time"], label="mean (ms)", color="tab:gray")
    twin.set_ylabel("ms")
    ax.legend(loc="upper left", fontsize=8)
    twin.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("seconds since Locust started")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    return head + "".join(
        "| " + " | ".join(_cell(r.get(c)) for c in columns) + " |\n" for r in rows
    )


def _cell(value: Any) -> str:
    if value is None:
        return "not recovered"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


OFFLINE_START, OFFLINE_END = "<!-- offline-stages -->", "<!-- /offline-stages -->"


def _offline_block(report: Path) -> str:
    """The offline stages' section of the report already there (written by hand from the
    offline benchmarks, issue 15 items 2-4), kept as it is; a placeholder otherwise."""
    if report.exists():
        text = report.read_text()
        if OFFLINE_START in text and OFFLINE_END in text:
            return text[text.index(OFFLINE_START) : text.index(OFFLINE_END) + len(OFFLINE_END)]
    return "\n".join(
        [OFFLINE_START, "(Offline stages under the same limits: not recorded yet.)", OFFLINE_END]
    )


def _alerts_block(windows: list[dict[str, Any]] | None) -> str:
    """The alerts each window raised, from a Prometheus that evaluated the repository's rules."""
    if windows is None:
        return "(Prometheus was not installed: the alert rules were not evaluated.)"
    return "\n".join(
        [
            "A Prometheus of the campaign's own scraped the API and the worker every second "
            "and evaluated `deploy/prometheus/rules` every second; its active alerts were "
            "polled every second (`/api/v1/alerts`). *pending*: the alert's condition held, "
            "for less than the rule's `for` (minutes: a 10 s fault should not page); "
            "*firing*: it would have been sent to Alertmanager. *raised*: became active in "
            "the window (from the fault to the next one); *carried*: active since before.",
            "",
            _table(windows, ["window", "raised", "carried", "polls"]),
        ]
    )


def write_report(results_path: Path, report: Path) -> Path:
    """Analyse ``results_path`` and write ``report`` (plots beside it in ``images/``)."""
    campaign = analysis.Campaign.load(results_path)
    results = campaign.results
    seconds = analysis.per_second(campaign.records, campaign.zero)
    images = report.parent / "images"
    images.mkdir(parents=True, exist_ok=True)
    timeline, locust_png = images / "stress-timeline.png", images / "stress-locust.png"
    _plot(campaign, seconds, timeline)
    locust = analysis.locust_figures(results)
    _plot_locust(analysis.locust_history(results), locust_png)
    surge = analysis.surge_figures(campaign, seconds)
    faults = analysis.fault_figures(campaign, seconds)
    lost = analysis.losses(campaign)
    accuracy = analysis.accuracy(campaign)
    plan = results["plan"]
    generator = results["generator"]
    slo_ok = locust["error_share"] <= analysis.SLO_ERRORS and locust["mean_ms"] <= 200
    surge_ok = (surge["accepted_p99_from_send_ms"] or 1e9) <= 50 and surge["recovery_s"] is not None
    when = dt.datetime.fromtimestamp(results["started"], dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    run_minutes = (results["finished"] - results["started"]) / 60
    samples = pd.DataFrame(results["samples"])
    peak_api = samples.api_memory.max() / 2**20 if not samples.empty else float("nan")
    peak_worker = samples.worker_memory.max() / 2**20 if not samples.empty else float("nan")
    rel = os.path.relpath(images, report.parent)
    lines = [
        "# Stress campaign report",
        "",
        f"Generated by `vigil stress run --plan {plan['name']}` (`make stress`) on {when}; "
        f"the whole run took {run_minutes:.1f} min (world and model preparation "
        f"{(results['prepared'] - results['started']) / 60:.1f} min). Machine: 2 cores, shared; "
        f"load average at the end {' / '.join(results['uptime'])} (1 / 5 / 15 min).",
        "",
        "## Set-up and limits",
        "",
        f"- API (`vigil serve`, one process) in a cgroup of **{plan['api']['cpus']:g} CPU / "
        f"{plan['api']['memory_bytes'] / GiB:g} GiB**; stream worker (`vigil worker`) in its own "
        f"cgroup of **{plan['worker']['cpus']:g} CPU / {plan['worker']['memory_bytes'] / GiB:g} "
        "GiB** (cgroup v1 `cpu.cfs_quota_us` and `memory.limit_in_bytes`, "
        "`vigil.stress.cgroup`); a supervisor restarts either when it exits.",
        "- Private PostgreSQL (`initdb`/`pg_ctl` in the work folder) and Redis (`redis-server`,"
        " no persistence) on free ports; the worker uses the machine's RabbitMQ with queues of"
        " its own, through a fault proxy that cuts it (the shared broker is never stopped); the"
        " API reaches PostgreSQL and Redis through fault proxies (`vigil.stress.proxy`).",
        f"- World: {plan['customers']:,} customers, {plan['warm_days']} days of history "
        f"(warm-up and training), then live traffic; requests replay the simulated transactions"
        f" in order (customers whose id is a multiple of 10 go to the stream instead). Model: "
        f"`{Path(results['model']).name}`.",
        "- Admission control (ADR 0019): `serving.max_in_flight` of `configs/vigil.yaml`, "
        f"`serving.latency_target_ms={plan.get('latency_target_ms', 0):g}` (the in-flight "
        f"limit follows latency), `serving.max_queue_ms={plan.get('max_queue_ms', 0):g}`, "
        f"`serving.max_loop_lag_ms={plan['max_loop_lag_ms']:g}`.",
        "",
        "## 1. Course SLO with Locust",
        "",
        f"Locust ({plan['locust_users']} users x 10 req/s, `locustfile.py`) for "
        f"{locust['seconds']:.0f} s, outside the API's cgroup; Locust itself used "
        f"{locust['cpu_seconds']:.0f} s of CPU ({100 * locust['cpu_seconds'] / max(locust['seconds'], 1):.0f} % of a core).",  # noqa: E501
        "",
        _table(
            [locust],
            [
                "requests",
                "failures",
                "error_share",
                "req_per_s",
                "mean_ms",
                "p50_ms",
                "p99_ms",
                "max_ms",
            ],
        ),
        f"**SLO (mean <= 200 ms, errors <= 1 %): {'met' if slo_ok else 'MISSED'}.**",
        "",
        f"![Locust phase]({rel}/{locust_png.name})",
        "",
        "## 2. Surge: 10x the load",
        "",
        f"Open-loop generator (`vigil stress load`: requests scheduled at a fixed rate, latency "
        f"counted from the scheduled time, so waiting in the generator counts): "
        f"{plan['baseline_rate']:g} req/s, then {plan['surge_rate']:g} req/s for "
        f"{plan['surge_s']:g} s, then {plan['baseline_rate']:g} req/s. Locust cannot offer "
        f"10,000 req/s on this machine (about {locust['req_per_s'] / max(locust['cpu_seconds'] / max(locust['seconds'], 1), 1e-9):,.0f} req/s per core of its own CPU); "  # noqa: E501
        f"the generator used {generator['cpu_seconds']:.0f} s of CPU over its "
        f"{generator['seconds']:.0f} s.",
        "",
        _table(
            [surge],
            [
                "offered_per_s",
                "accepted_per_s",
                "ok",
                "shed_503",
                "other_errors",
                "accepted_p50_ms",
                "accepted_p99_ms",
                "accepted_p99_from_send_ms",
                "shed_p99_ms",
                "shed_p99_from_send_ms",
                "recovery_s",
            ],
        ),
        _surge_server_side(surge),
        "Latencies count from the request's scheduled time (what a client sees, the "
        "generator's own delays included) and, `_from_send`, from the moment it went on the "
        "socket (what the server controls).",
        "",
        "**Targets: p99 of accepted <= 50 ms (from the send), recovery to the SLO <= 10 s, "
        "fast 503s: "
        f"{'met' if surge_ok and (surge['recovery_s'] or 0) <= 10 else 'MISSED (see below)'}.**",
        "",
        _recovery_reading(campaign, seconds, surge),
        "",
        "## 3. Faults under load",
        "",
        f"At {plan['baseline_rate']:g} req/s on the API and {plan['stream_rate']:g} tx/s on the"
        f" stream; timed faults last {plan['fault_s']:g} s, then {plan['settle_s']:g} s of "
        "load without faults. Requests counted from the fault to the next one.",
        "",
        _table(
            [{**f, "what": FAULT_TEXT.get(f["fault"], "")} for f in faults],
            [
                "fault",
                "what",
                "at_s",
                "held_s",
                "requests",
                "ok",
                "shed_503",
                "other_errors",
                "recovery_s",
                "stream_recovery_s",
            ],
        ),
        "",
        "Details: "
        + "; ".join(f"{f['fault']}: {f['detail']}" for f in faults)
        + f". Restarts by the supervisor: API {len(results['restarts']['api'])}, worker "
        f"{len(results['restarts']['worker'])}.",
        "",
        _fault_reading(faults, plan),
        "",
        "### Uptime",
        "",
        _uptime_block(campaign, seconds, results),
        "",
        "### CPU and throttling by phase",
        "",
        _throttling_block(campaign),
        "",
        "### Seconds that missed the SLO",
        "",
        _missed_block(campaign, seconds),
        "",
        "### Alerts",
        "",
        _alerts_block(analysis.alert_windows(campaign)),
        "",
        "### Acknowledged data lost",
        "",
        _table(
            [lost],
            ["api_acknowledged", "api_lost", "stream_published", "stream_lost", "stored_rows"],
        ),
        "",
        f"![Timeline]({rel}/{timeline.name})",
        "",
        f"Peak cgroup memory (page cache included): API {peak_api:,.0f} MiB, worker "
        f"{peak_worker:,.0f} MiB.",
        "",
        "## 4. Accuracy under stress",
        "",
        "Average precision and card precision@100 of the decisions stored during the campaign "
        "against batch scores (`vigil predict` with the full history) of the same transactions,"
        " both judged by the simulator's labels.",
        "",
        _accuracy_table(accuracy),
        "",
        "By window (when the decision was made). `ap_offline_seen`: batch scores from the "
        "history and the transactions the services stored only (a transaction shed with a 503"
        " never reaches the live state, so later features of its card and terminal miss it); "
        "`ap_offline`: from every offered transaction, as above. Live vs `seen` is how well "
        "the live state was kept (a Redis loss, say); `seen` vs offline is what shedding cost."
        " `ap_gap_share`: the share of the campaign's AP gap (offline minus live) that closes "
        "when only that window's live scores are replaced by their offline ones.",
        "",
        _accuracy_windows_table(analysis.accuracy_by_window(campaign)),
        "",
        _stream_lag_reading(analysis.stream_event_lag(campaign)),
        "",
        "## 5. Offline stages under the same limits",
        "",
        _offline_block(report),
        "",
        "## Failures found while building the campaign, and fixed",
        "",
        "- **Stream worker idle after a broker connection loss.** When RabbitMQ went away in the "
        "middle of a micro-batch, the worker's nack of that batch raised on the dead channel, "
        "which killed its micro-batcher: the robust connection came back, but nothing was "
        "consumed any more (the worker looked alive). Now a nack that cannot be sent is logged "
        "and skipped (the broker redelivers a closed channel's unacked messages); "
        "`tests/unit/test_streaming.py::test_requeue_survives_a_closed_channel`, and the "
        "`broker_cut` and `connections_dropped` faults above.",
        "- **Overload answered late instead of refused.** With every request admitted, a surge "
        "queued in the socket buffers and the event loop and every answer became late. The "
        "admission gate (ADR 0019) refuses past `serving.max_in_flight` or while the loop lags; "
        "refusing through the ASGI app still cost a full uvicorn request cycle, so `vigil serve` "
        "refuses inside its HTTP protocol (`serving/shedding.py`) before any task exists.",
        "- **Admitted requests late under the surge.** The first short-plan run (2026-12-04) "
        "shed 9,180 of 10,000 req/s but answered the ~820 req/s it admitted in 464 ms p99 from "
        "the send (target 50): at the ~1,000 answers a second of one core, 128 requests in "
        "flight are 128 ms of queueing. The in-flight limit now follows latency "
        "(`serving.latency_target_ms`, AIMD) and a request that waited more than "
        "`serving.max_queue_ms` before its handler is refused before any work (ADR 0019, "
        "amended); `tests/unit/test_api_admission.py`.",
        "- **A PostgreSQL restart left the API refusing for two minutes.** After `postgres_stop` "
        "the burst of idempotency look-ups opened a connection each and kept them: PostgreSQL "
        "answered `too many clients` until the connections were reset. The sink now holds at "
        "most `concurrency` connections (ADR 0008; "
        "`tests/integration/test_sink_connections.py`).",
        "- **No alert for a database, broker or process outage.** The first run evaluated no "
        "alert rules; the campaign now runs Prometheus with `deploy/prometheus/rules`, and "
        "`VigilDatabaseDown`, `VigilBrokerDisconnected`, `VigilProcessRestarted` and "
        "`VigilShedding` were added (promtool tests in `deploy/prometheus/tests`).",
        "",
        "## Definitions",
        "",
        (analysis.__doc__ or "").split("Definitions (the report repeats them):")[-1].strip(),
        "",
    ]
    report.write_text("\n".join(lines))
    return report


def _accuracy_table(accuracy: dict[str, Any]) -> str:
    rows = [
        {"path": path, **accuracy[path]} for path in ("all", "api", "stream") if path in accuracy
    ]
    if not rows:
        return f"Not enough labelled decisions ({accuracy.get('transactions', 0)} transactions)."
    seen = ["ap_offline_seen"] if any("ap_offline_seen" in r for r in rows) else []
    return _table(
        rows,
        [
            "path",
            "transactions",
            "ap_live",
            *seen,
            "ap_offline",
            "cp100_live",
            "cp100_offline",
            "mean_abs_score_diff",
        ],
    )


def _stream_lag_reading(lag: dict[str, Any] | None) -> str:
    """The stream path's live-vs-seen gap against how late its events were (runs since
    2026-12-06)."""
    if lag is None or lag["late"] == 0 or lag["on_time"] == 0:
        return ""
    return (
        f"The stream path's gap is the harness's, not a fault's: its transactions replay the "
        f"same world (sharing terminals) at its own slower rate, so by the end its events "
        f"trailed the API's newest by up to {lag['max_lag_days']:.0f} days of event time. Of "
        f"its {lag['decisions']:,} decisions, the {lag['on_time']:,} less than "
        f"{lag['late_days']:g} day behind the API differ from their `seen` batch scores by "
        f"{lag['on_time_mean_abs_diff']:.3f} on average; the {lag['late']:,} later ones by "
        f"{lag['late_mean_abs_diff']:.3f}. Our reading (the figures show only that the "
        "difference comes with the lag): a late event is scored against terminal state that "
        "newer events have already moved on (a late arrival is accepted without disturbing "
        "newer history, ADR 0012's event-time policy), which a batch replay in event order "
        "does not see."
    )


def _accuracy_windows_table(windows: list[dict[str, Any]]) -> str:
    if not windows:
        return "No decision could be placed in a window."
    columns = ["window", "decisions", "frauds", "ap_live", "ap_offline_seen", "ap_offline"]
    columns += ["mean_abs_diff_seen", "mean_abs_score_diff", "ap_gap_share"]
    if not any("ap_offline_seen" in w for w in windows):  # a run before 2026-12-06
        columns = [c for c in columns if "seen" not in c]
    rows = [{c: "–" if w.get(c) is None else w[c] for c in columns} for w in windows]
    return _table(rows, columns)


def _surge_server_side(surge: dict[str, Any]) -> str:
    """The API's own side of the surge (runs since 2026-12-06), when recorded."""
    parts = []
    if surge.get("server_p99_ms") is not None:
        parts.append(
            f"p99 of the API's own latency for the accepted (arrival in its HTTP protocol to "
            f"the decision, `predictions.latency_ms`) {surge['server_p99_ms']:.1f} ms"
        )
    share = surge.get("api_cpu_of_quota")
    if share is not None:
        waiting = share < WAITING_BELOW_QUOTA_SHARE
        parts.append(
            f"API CPU during the surge {100 * share:.0f} % of its quota"
            + (
                " (well below 100 %: the API waited for a core, its stores or its answers' "
                "reader, rather than computing)"
                if waiting
                else " (near its quota: the API was computing)"
            )
        )
    return ("Server side: " + "; ".join(parts) + ".\n") if parts else ""


def _uptime_block(
    campaign: analysis.Campaign, seconds: pd.DataFrame, results: dict[str, Any]
) -> str:
    """Seconds meeting the SLO over the generator's whole run, and the processes' restarts."""
    surge = next(e for e in results["events"] if e["name"] == "surge")
    figures = analysis.uptime(
        seconds, (surge["start"] - campaign.zero, surge["end"] - campaign.zero)
    )
    return (
        f"Of the generator's {figures['seconds']:,} seconds (surge and every fault included), "
        f"{figures['seconds_meeting_slo']:,} met the SLO: **{100 * figures['slo_uptime']:.1f} %"
        f"**, {100 * figures['slo_uptime_outside_surge']:.1f} % outside the 10x surge (which "
        f"sheds by design). Requests answered at all (200, or a 503 with `Retry-After`): "
        f"{100 * figures['answered_share']:.2f} %; answered 200: "
        f"{100 * figures['ok_share']:.1f} %. Process restarts: API "
        f"{len(results['restarts']['api'])}, worker {len(results['restarts']['worker'])} (the "
        "OOM kill of the plan)."
    )


def _fault_reading(faults: list[dict[str, Any]], plan: dict[str, Any]) -> str:
    """What the PostgreSQL stop's 503s and the Redis re-warm mean, with this run's figures."""
    by_name = {f["fault"]: f for f in faults}
    lines = []
    stop = by_name.get("postgres_stop")
    if stop is not None:
        held = float(stop["held_s"])
        during = held * plan["baseline_rate"]
        recovery = stop["recovery_s"]
        after = "not recovered" if recovery is None else f"then {recovery:.1f} s to recover"
        lines.append(
            f"- **postgres_stop**: {stop['shed_503']:,} answers were 503 against about "
            f"{during:,.0f} requests made while PostgreSQL was stopped and started again "
            f"({held:.1f} s at {plan['baseline_rate']:g} req/s; {after}). That is the "
            "durability contract, kept on purpose: `/predict` answers 200 only once its "
            "decision is committed (ADR 0008, ADR 0012), so a decision that cannot be stored "
            "is not acknowledged: a client retrying after `Retry-After` loses nothing (the "
            "campaign's generator does not retry; it counts those requests as shed, and none "
            "that was acknowledged is lost). "
            "Accepting during the outage would need a durable store of the API's own (a local "
            "write-ahead spool replayed into PostgreSQL): not done; until then an outage of "
            "the database is an outage of `/predict`, answered fast."
        )
    kill = by_name.get("redis_kill")
    if kill is not None and "rewarm_s" in kill["detail"]:
        lines.append(
            f"- **redis_kill**: the API kept answering from the empty store (`/health` "
            f"`degraded`, every card new) while `vigil warm-state --stored` bulk-loaded the "
            f"history and the transactions stored in PostgreSQL since, in "
            f"{kill['detail']['rewarm_s']:g} s; the decisions of that window are the ones "
            "section 4 shows apart."
        )
    return "\n".join(lines)


def _dashes(rows: list[dict[str, Any]], columns: list[str]) -> list[dict[str, Any]]:
    """``rows`` with a dash for each figure not recorded (None would read "not recovered")."""
    return [{c: "–" if r.get(c) is None else r[c] for c in columns} for r in rows]


def _surge_seconds(campaign: analysis.Campaign) -> tuple[float, float]:
    surge = next(e for e in campaign.results["events"] if e["name"] == "surge")
    return surge["start"] - campaign.zero, surge["end"] - campaign.zero


def _recovery_reading(
    campaign: analysis.Campaign, seconds: pd.DataFrame, surge: dict[str, Any]
) -> str:
    """Which missed second set the surge's recovery time (its context: section 3)."""
    recovery = surge["recovery_s"]
    if not recovery:
        return ""
    end = _surge_seconds(campaign)[1]
    last = round(end + recovery) - 1  # recovery = the last missed second + 1 - the end
    if last not in seconds.index:
        return ""
    row = seconds.loc[last]
    return (
        f"The recovery time is set by the last second that missed the SLO before the first "
        f"fault: t = {last} s, {last - end:.0f} s after the surge ended ({int(row.offered):,} "
        f"requests: {int(row.shed):,} shed, {int(row.errors):,} other errors, mean "
        f"{1000 * row.mean_s:.1f} ms). What else happened in that second: section 3, "
        "*Seconds that missed the SLO*."
    )


def _throttling_block(campaign: analysis.Campaign) -> str:
    """Per phase: the API's and the worker's CPU against their quota, how often and how long
    the quota held them back, and the host's busy cores."""
    rows = context.throttling_by_phase(campaign)
    if rows is None:
        return "(Not sampled in this run: the campaign samples cgroup throttling since 2026-12-06.)"
    host = campaign.results.get("host_cpus")
    columns = ["phase", "seconds"]
    for group in ("api", "worker"):
        columns += [
            f"{group}_cpu_of_quota",
            f"{group}_throttled_periods_share",
            f"{group}_throttled_ms_per_s",
        ]
    columns.append("host_busy_cores")
    return "\n".join(
        [
            "From the cgroups' `cpu.stat` and `cpuacct.usage` and the host's `/proc/stat`, "
            "sampled about once a second (`vigil.stress.context`). `cpu_of_quota`: CPU used "
            "over the phase against the group's quota; `throttled_periods_share`: the share of "
            "the phase's 100 ms CFS periods in which the group used up its quota and waited "
            "for the next; `throttled_ms_per_s`: the time held back, summed over the CPUs its "
            "threads waited on, per second; `host_busy_cores`: every process of the machine "
            f"({host or 'unknown'} cores), the stores, the load generators and anything else "
            "running included.",
            "",
            _table(_dashes(rows, columns), columns),
        ]
    )


def _missed_block(campaign: analysis.Campaign, seconds: pd.DataFrame) -> str:
    """Each second that missed the SLO outside the surge, with what else happened then."""
    surge = _surge_seconds(campaign)
    rows = context.missed_seconds(campaign, seconds, skip=surge)
    inside = (seconds.index >= np.floor(surge[0])) & (seconds.index < np.floor(surge[1]))
    surge_missed = int((~seconds.meets_slo[inside]).sum())
    lead = (
        f"{len(rows):,} seconds missed the SLO outside the surge ({surge_missed:,} of the "
        f"surge's {surge[1] - surge[0]:.0f} seconds did, by design: section 2). For each, its "
        "requests; why the API refused (`shed_by_reason`: `in_flight` the in-flight limit, "
        "cut when answers were late; `queued` waited past `serving.max_queue_ms` before its "
        "handler; `loop_lag` the event loop late on two probes in a row) and how many of its "
        "loop probes (one every ~5 ms) woke up more than 20 and 50 ms late, and how long its "
        "garbage collections stopped it (`gc_full_ms`: full ones; `gc_young_ms`: the "
        "others), from its own metrics as the campaign's Prometheus scraped them once a "
        "second; then what the "
        "sampled counters show for that second (interpolated "
        "between samples about a second apart, so a burst shows spread over the seconds "
        "around it): the API's CPU and the time its quota held it back (and in how many of "
        "the 10 periods), the worker's, the host's busy cores; the window it fell in; what "
        "else ran (the Redis re-warm, a restart, a checkpoint or an autovacuum run of the "
        "campaign's PostgreSQL, from its log"
        + ("" if _kept(campaign.results.get("postgres_log")) else ": not kept in this run")
        + ")."
    )
    if not rows:
        return lead
    columns = [
        "t_s",
        "during",
        "offered",
        "ok",
        "shed_503",
        "other_errors",
        "mean_ms",
        "ok_p99_ms",
        "shed_by_reason",
        "loop_late_20ms",
        "loop_late_50ms",
        "gc_full_ms",
        "gc_young_ms",
        "api_cpu_ms",
        "api_throttled_ms",
        "api_throttled_periods",
        "worker_throttled_ms",
        "host_busy_cores",
        "also",
    ]
    return lead + "\n\n" + _table(_dashes(rows, columns), columns)


def _kept(path: str | None) -> bool:
    return bool(path) and Path(str(path)).exists()
