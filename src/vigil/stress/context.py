"""What else happened while the campaign ran, per phase and per second: CPU, throttling, faults.

The campaign samples cumulative counters about once a second (``campaign.Sample``): each
cgroup's CPU seconds, the time its CPU quota held it back (``throttled_time``: summed over
the CPUs its threads waited on) and the 100 ms periods in which it used up its quota
(``nr_throttled``), and the host's busy CPU seconds over every core (every process: the
private PostgreSQL and Redis, Prometheus, the load generators, anything else on the machine).
A counter's value at any moment is interpolated linearly between the two samples around it,
so a phase's or a second's figure is the difference at its two ends; a second's figure is
spread over the ~1 s sampling interval around it (a burst shows at a fraction of its height
in the seconds either side).

- :func:`throttling_by_phase`: per phase (Locust, before the surge, the surge, after it, each
  fault until the next, the stream's drain), the API's and the worker's CPU against their
  quota and how often the quota held them back, and the host's busy cores;
- :func:`missed_seconds`: each second that missed the SLO, with the same figures for that
  second and what else was going on (the fault held or the seconds since it was undone, the
  Redis re-warm, a restart by the supervisor, a checkpoint or an autovacuum run of the
  campaign's PostgreSQL: :func:`store_events`, from its log).

The API's own counters are read back from the campaign's Prometheus once a second
(``api_series``, :data:`vigil.stress.campaign.API_SERIES`): its refusals by reason (the
in-flight limit, a request queued past ``max_queue_ms``, the loop's lag), its event loop's
lag as the admission probe measured it (probes later than 20 and 50 ms) and the time its
garbage collections stopped it (full ones apart). Runs before these were recorded
(2026-12-06) give None for the figures they lack.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vigil.stress.analysis import Campaign, campaign_windows
from vigil.stress.cgroup import CFS_PERIOD_US

COUNTERS = (
    "api_cpu",
    "api_throttled",
    "api_throttled_periods",
    "worker_cpu",
    "worker_throttled",
    "worker_throttled_periods",
    "host_busy",
)
PERIODS_PER_SECOND = 1e6 / CFS_PERIOD_US
API_COUNTERS = (
    "shed_in_flight",
    "shed_queued",
    "shed_loop_lag",
    "loop_probes",
    "loop_probes_within_20ms",
    "loop_probes_within_50ms",
    "gc_full_seconds",
    "gc_young_seconds",
)


def _samples(campaign: Campaign) -> pd.DataFrame | None:
    """The campaign's samples in time order, or None when they carry no throttling."""
    samples = pd.DataFrame(campaign.results.get("samples") or [])
    if len(samples) < 2 or "api_throttled" not in samples:
        return None
    return samples.sort_values("t", ignore_index=True)


def counters_between(
    samples: pd.DataFrame,
    starts: np.ndarray,
    ends: np.ndarray,
    columns: tuple[str, ...] = COUNTERS,
) -> pd.DataFrame:
    """Each counter's increase from ``starts`` to ``ends`` (epoch seconds), interpolated
    between samples; NaN where a span reaches outside the sampled time, or where the counter
    went down (its process restarted: the span's increase is unknown)."""
    t = samples.t.to_numpy(float)
    outside = (starts < t[0]) | (ends > t[-1])
    out = {}
    for column in columns:
        values = samples[column].to_numpy(float)
        increase = np.interp(ends, t, values) - np.interp(starts, t, values)
        out[column] = np.where(outside | (increase < 0), np.nan, increase)
    return pd.DataFrame(out)


def _api_counters(campaign: Campaign, starts: np.ndarray) -> dict[str, np.ndarray] | None:
    """Per second from ``starts``: the API's refusals by reason and its late probes (over 20
    and 50 ms), from ``api_series``; None when the run has none."""
    rows = campaign.results.get("api_series") or []
    series = pd.DataFrame(rows)
    if len(series) < 2:
        return None
    series = series.reindex(columns=["t", *API_COUNTERS]).sort_values("t", ignore_index=True)
    series["late_20ms"] = series.loop_probes - series.loop_probes_within_20ms
    series["late_50ms"] = series.loop_probes - series.loop_probes_within_50ms
    names: tuple[str, ...] = ("shed_in_flight", "shed_queued", "shed_loop_lag")
    names += ("late_20ms", "late_50ms", "gc_full_seconds", "gc_young_seconds")
    used = counters_between(series, starts, starts + 1, names)
    return {name: used[name].to_numpy(float) for name in names}


def _shed_reasons(counts: dict[str, np.ndarray] | None, i: int, shed: int) -> str | None:
    """``queued 20, in_flight 3``: the second's refusals by reason, the most first; the rest
    of its ``shed`` 503s as ``other`` (not admission control's: a database outage, say)."""
    if counts is None:
        return None
    found = {r: counts[f"shed_{r}"][i] for r in ("in_flight", "queued", "loop_lag")}
    if any(np.isnan(v) for v in found.values()):
        return None
    found["other"] = max(0.0, shed - sum(found.values()))
    ranked = sorted(((v, r) for r, v in found.items() if round(v) > 0), reverse=True)
    return ", ".join(f"{r} {v:.0f}" for v, r in ranked) or "none"


def phases(campaign: Campaign) -> list[tuple[str, float, float]]:
    """(name, start, end) in epoch seconds: Locust's run, then the generator's windows
    (:func:`~vigil.stress.analysis.campaign_windows`) from its start to the last sample."""
    events = campaign.results["events"]
    samples = campaign.results.get("samples") or []
    first = min((s["t"] for s in samples), default=campaign.zero)
    last = max((s["t"] for s in samples), default=campaign.zero)
    spans = [(e["name"], e["start"], e["end"]) for e in events if e["name"] == "locust"]
    spans += [(n, max(a, campaign.zero), b) for n, a, b in campaign_windows(campaign)]
    clipped = [(name, max(start, first), min(end, last)) for name, start, end in spans]
    return [(name, start, end) for name, start, end in clipped if end > start]


def _value(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def throttling_by_phase(campaign: Campaign) -> list[dict[str, Any]] | None:
    """Per phase: CPU used as a share of the quota, the share of 100 ms periods in which the
    quota ran out and the time it held the group back per second, for the API and the
    worker; the host's busy cores. None when the run sampled no throttling."""
    samples = _samples(campaign)
    if samples is None:
        return None
    spans = phases(campaign)
    starts = np.array([start for _, start, _ in spans])
    ends = np.array([end for _, _, end in spans])
    used = counters_between(samples, starts, ends)
    plan = campaign.results["plan"]
    rows = []
    for (name, start, end), (_, row) in zip(spans, used.iterrows(), strict=True):
        seconds = end - start
        out: dict[str, Any] = {"phase": name, "seconds": round(seconds, 1)}
        for group in ("api", "worker"):
            quota = plan[group]["cpus"]
            out[f"{group}_cpu_of_quota"] = _value(row[f"{group}_cpu"] / seconds / quota)
            periods = row[f"{group}_throttled_periods"] / (seconds * PERIODS_PER_SECOND)
            out[f"{group}_throttled_periods_share"] = _value(periods)
            out[f"{group}_throttled_ms_per_s"] = _value(1000 * row[f"{group}_throttled"] / seconds)
        out["host_busy_cores"] = _value(row["host_busy"] / seconds)
        rows.append(out)
    return rows


def _during(campaign: Campaign, moment: float) -> str:
    """Which window the second from ``moment`` (epoch) falls in, and where in it; a fault
    held during any of that second names it."""
    for held in campaign.faults:
        if held["start"] < moment + 1 and moment < held["end"]:
            return f"{held['name']} held, +{max(0.0, moment - held['start']):.0f} s"
    faults = {f["name"]: f for f in campaign.faults}
    for name, start, end in campaign_windows(campaign):
        if not start <= moment < end:
            continue
        fault = faults.get(name)
        if fault is not None:
            if moment < fault["end"]:
                return f"{name} held, +{moment - fault['start']:.0f} s"
            return f"{name} +{moment - fault['end']:.0f} s after undone"
        if name == "before_surge":
            return f"{name} +{moment - campaign.zero:.0f} s"
        return f"{name} +{moment - start:.0f} s"
    return "outside the load"


_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) UTC \[\d+\] LOG:  (.*)$")
_ELAPSED = re.compile(r"elapsed: ([\d.]+) s")
_TOTAL = re.compile(r"total=([\d.]+) s")
_SYNC = re.compile(r"sync=([\d.]+) s")
_TABLE = re.compile(r'automatic (?:aggressive )?(vacuum|analyze) of table "(?:[^".]+\.){2}([^"]+)"')
MIN_STORE_EVENT_S = 0.01  # shorter autovacuum runs (the catalogs') are left out


def store_events(log_text: str) -> list[tuple[float, float, str]]:
    """(start, end, what) in epoch seconds of each checkpoint and autovacuum run in the text
    of a PostgreSQL log written with ``log_checkpoints``, ``log_autovacuum_min_duration=0``
    and ``log_timezone=UTC`` (``services.PrivatePostgres``): each is logged when it ends,
    with its duration (a checkpoint's ``total``, an autovacuum run's ``elapsed``)."""
    entries: list[tuple[float, str]] = []
    for line in log_text.splitlines():
        match = _LOG_LINE.match(line)
        if match:
            when = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
            entries.append((when.timestamp(), match[2]))
        elif entries and line.startswith("\t"):  # a multi-line message's continuation
            entries[-1] = (entries[-1][0], entries[-1][1] + "\n" + line.strip())
    events, reason = [], "checkpoint"
    for end, message in entries:
        if message.startswith("checkpoint starting: "):
            reason = message.removeprefix("checkpoint starting: ")
        elif message.startswith("checkpoint complete: ") and (total := _TOTAL.search(message)):
            sync = _SYNC.search(message)
            what = f"PostgreSQL checkpoint ({reason}; sync {sync[1] if sync else '?'} s)"
            events.append((end - float(total[1]), end, what))
        elif (table := _TABLE.search(message)) and (elapsed := _ELAPSED.search(message)):
            seconds = float(elapsed[1])
            what = f"autovacuum: {table[1]} {table[2]} ({elapsed[1]} s)"
            events += [(end - seconds, end, what)] if seconds >= MIN_STORE_EVENT_S else []
    return events


def _campaign_store_events(campaign: Campaign) -> list[tuple[float, float, str]]:
    """The store events of the campaign's PostgreSQL log (none when it was not kept)."""
    path = campaign.results.get("postgres_log")
    if not path or not Path(path).exists():
        return []
    return store_events(Path(path).read_text(errors="replace"))


def _also(
    campaign: Campaign,
    start: float,
    end: float,
    stores: list[tuple[float, float, str]] | None = None,
) -> str:
    """What else ran in ``[start, end)`` (epoch): the Redis re-warm, restarts, ``stores``'
    checkpoints and autovacuum runs."""
    found = [what for began, ended, what in stores or [] if began < end and start <= ended]
    for fault in campaign.faults:
        rewarm = fault["detail"].get("rewarm_s") if fault["name"] == "redis_kill" else None
        if rewarm is not None and fault["end"] < end and start < fault["end"] + rewarm:
            found.append("Redis re-warm (vigil warm-state)")
    restarts = campaign.results.get("restarts") or {}
    for service in ("api", "worker"):
        if any(start - 1 <= when < end for when in restarts.get(service, [])):
            found.append(f"{service} restarted")
    return ", ".join(found) or "–"


def missed_seconds(
    campaign: Campaign, seconds: pd.DataFrame, skip: tuple[float, float] | None = None
) -> list[dict[str, Any]]:
    """Each second (of ``analysis.per_second``) that missed the SLO, outside ``skip`` (start,
    end in seconds from the generator's start: the surge, which sheds by design): its
    requests, the API's CPU and throttling, the worker's throttling, the host's busy cores
    in that second (None when not sampled), the window it fell in, what else ran."""
    missed = seconds[~seconds.meets_slo.to_numpy()]
    if skip is not None:
        inside = (missed.index >= np.floor(skip[0])) & (missed.index < np.floor(skip[1]))
        missed = missed[~inside]
    starts = campaign.zero + missed.index.to_numpy(float)
    samples = _samples(campaign)
    nothing = np.full(len(missed), np.nan)
    used = (
        {c: v.to_numpy(float) for c, v in counters_between(samples, starts, starts + 1).items()}
        if samples is not None
        else dict.fromkeys(COUNTERS, nothing)
    )
    figures = {c: missed[c].to_numpy(float) for c in ("offered", "ok", "shed", "errors")}
    stores = _campaign_store_events(campaign)
    api = _api_counters(campaign, starts)
    nothing_api = dict.fromkeys(
        ("late_20ms", "late_50ms", "gc_full_seconds", "gc_young_seconds"), nothing
    )
    latency = {c: 1000 * missed[c].to_numpy(float) for c in ("mean_s", "ok_p99_s")}
    rows = []
    for i, start in enumerate(starts):
        rows.append(
            {
                "t_s": int(missed.index[i]),
                "during": _during(campaign, start),
                "offered": int(figures["offered"][i]),
                "ok": int(figures["ok"][i]),
                "shed_503": int(figures["shed"][i]),
                "other_errors": int(figures["errors"][i]),
                "mean_ms": _value(latency["mean_s"][i]),
                "ok_p99_ms": _value(latency["ok_p99_s"][i]),
                "shed_by_reason": _shed_reasons(api, i, int(figures["shed"][i])),
                "loop_late_20ms": _value((api or nothing_api)["late_20ms"][i]),
                "loop_late_50ms": _value((api or nothing_api)["late_50ms"][i]),
                "gc_full_ms": _value(1000 * (api or nothing_api)["gc_full_seconds"][i]),
                "gc_young_ms": _value(1000 * (api or nothing_api)["gc_young_seconds"][i]),
                "api_cpu_ms": _value(1000 * used["api_cpu"][i]),
                "api_throttled_ms": _value(1000 * used["api_throttled"][i]),
                "api_throttled_periods": _value(used["api_throttled_periods"][i]),
                "worker_throttled_ms": _value(1000 * used["worker_throttled"][i]),
                "worker_throttled_periods": _value(used["worker_throttled_periods"][i]),
                "host_busy_cores": _value(used["host_busy"][i]),
                "also": _also(campaign, start, start + 1, stores),
            }
        )
    return rows
