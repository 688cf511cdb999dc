"""Figures of a campaign from its records: SLO, surge, each fault's recovery, losses, accuracy.

Definitions (the report repeats them):
- a *second* is judged by the requests *scheduled* in it; it meets the SLO when at most 1 % of
  them got anything but 200 (a 503 counts) and their mean latency is at most 200 ms;
- *recovery time* of a fault: from the moment the fault was undone (for a kill, the moment
  it happened) to the start of the first second from which every second meets the SLO until
  the next fault; 0 when no second after the undo missed it;
- *lost*: an id answered 200 (or a stream message published with a confirm) with no row in
  the predictions table at the end.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vigil.data import schema
from vigil.fraud_metrics import average_precision, card_precision_at_k
from vigil.stress.loadgen import Records

SLO_MEAN_S = 0.200
SLO_ERRORS = 0.01
SURGE_P99_S = 0.050


@dataclass(frozen=True)
class Campaign:
    """A campaign's results JSON and records, loaded."""

    results: dict[str, Any]
    records: Records
    zero: float  # the generator's start (epoch)

    @classmethod
    def load(cls, path: Path) -> Campaign:
        """Read ``results.json`` and the records it names."""
        results = json.loads(Path(path).read_text())
        zero = next(e for e in results["events"] if e["name"] == "generator")["detail"]["zero"]
        return cls(results, Records.load(results["records"]), zero)

    @property
    def faults(self) -> list[dict[str, Any]]:
        """The fault events in order."""
        skip = {"locust", "generator", "surge"}
        return [e for e in self.results["events"] if e["name"] not in skip]


def per_second(records: Records, zero: float) -> pd.DataFrame:
    """One row per second of scheduled time: offered, ok, shed, errors, latencies of 200s."""
    t = np.floor(records.scheduled - zero).astype(int)
    latency = records.answered - records.scheduled
    frame = pd.DataFrame({"t": t, "status": records.status, "latency": latency})
    frame["ok"] = frame.status == 200
    frame["shed"] = frame.status == 503
    frame["error"] = ~frame.ok & ~frame.shed
    ok_latency = frame.latency.where(frame.ok)
    grouped = frame.assign(ok_latency=ok_latency).groupby("t")
    out = pd.DataFrame(
        {
            "offered": grouped.size(),
            "ok": grouped.ok.sum(),
            "shed": grouped.shed.sum(),
            "errors": grouped.error.sum(),
            "mean_s": grouped.latency.mean(),
            "ok_p99_s": grouped.ok_latency.quantile(0.99),
        }
    )
    out["not_ok_share"] = 1 - out.ok / out.offered
    # In counts, not the share: 1 - 99/100 is 0.0100000000000000009 > 0.01 in floating point.
    within = (out.offered - out.ok) <= np.floor(SLO_ERRORS * out.offered + 1e-9)
    out["meets_slo"] = within & (out.mean_s.fillna(0) <= SLO_MEAN_S)
    return out


def recovery_seconds(seconds: pd.DataFrame, undone: float, until: float) -> float | None:
    """Seconds from ``undone`` until every second up to ``until`` meets the SLO (None: never)."""
    window = seconds[(seconds.index >= np.floor(undone)) & (seconds.index < np.floor(until))]
    if window.empty or window.meets_slo.all():
        return 0.0
    missed = window.index[~window.meets_slo.to_numpy()]
    last_bad = int(missed.max())
    if last_bad >= np.floor(until) - 1:
        return None
    return max(0.0, last_bad + 1 - undone)


def uptime(seconds: pd.DataFrame, surge: tuple[float, float]) -> dict[str, Any]:
    """Share of the generator's seconds that met the SLO, with and without the 10x surge.

    ``surge`` is its (start, end) in seconds from the campaign's zero: offered ten times the
    capacity, those seconds shed by design, so the SLO uptime is also given without them.
    """
    in_surge = (seconds.index >= np.floor(surge[0])) & (seconds.index < np.floor(surge[1]))
    outside = seconds[~in_surge]
    return {
        "seconds": len(seconds),
        "seconds_meeting_slo": int(seconds.meets_slo.sum()),
        "slo_uptime": float(seconds.meets_slo.mean()),
        "slo_uptime_outside_surge": float(outside.meets_slo.mean()),
        "answered_share": float(1 - seconds.errors.sum() / seconds.offered.sum()),
        "ok_share": float(seconds.ok.sum() / seconds.offered.sum()),
    }


def _window_counts(records: Records, zero: float, start: float, end: float) -> dict[str, int]:
    t = records.scheduled - zero
    mask = (t >= start) & (t < end)
    status = records.status[mask]
    return {
        "requests": int(mask.sum()),
        "ok": int((status == 200).sum()),
        "shed_503": int((status == 503).sum()),
        "other_errors": int(((status != 200) & (status != 503)).sum()),
    }


def surge_figures(campaign: Campaign, seconds: pd.DataFrame) -> dict[str, Any]:
    """The surge: offered and accepted rates, p99 of accepted, 503 speed, recovery."""
    surge = next(e for e in campaign.results["events"] if e["name"] == "surge")
    start, end = surge["start"] - campaign.zero, surge["end"] - campaign.zero
    records, zero = campaign.records, campaign.zero
    t = records.scheduled - zero
    mask = (t >= start) & (t < end)
    latency = (records.answered - records.scheduled)[mask]
    server = (records.answered - records.sent)[mask]  # from the send: the generator's own lag out
    status = records.status[mask]
    ok, shed = status == 200, status == 503
    next_start = min([f["start"] - zero for f in campaign.faults] or [t.max()])
    recovery = recovery_seconds(seconds, end, next_start)
    return {
        **_window_counts(records, zero, start, end),
        "seconds": end - start,
        "offered_per_s": float(mask.sum() / (end - start)),
        "accepted_per_s": float(ok.sum() / (end - start)),
        "accepted_p99_ms": _ms(np.quantile(latency[ok], 0.99)) if ok.any() else None,
        "accepted_p50_ms": _ms(np.quantile(latency[ok], 0.50)) if ok.any() else None,
        "accepted_p99_from_send_ms": _ms(np.quantile(server[ok], 0.99)) if ok.any() else None,
        "shed_p99_ms": _ms(np.quantile(latency[shed], 0.99)) if shed.any() else None,
        "shed_p99_from_send_ms": _ms(np.quantile(server[shed], 0.99)) if shed.any() else None,
        "recovery_s": recovery,
        **_surge_server_side(campaign, records.transaction_id[mask][ok], start, end),
    }


def _surge_server_side(
    campaign: Campaign, accepted: np.ndarray, start: float, end: float
) -> dict[str, Any]:
    """Where the surge's time went, from the server's side: the p99 of the API's own latency
    for the accepted ones (``predictions.latency_ms``: arrival in its HTTP protocol to the
    decision, storage and the answer's write excluded; runs since 2026-12-06) and the API's
    CPU in the surge as a share of its quota (well below 1: it was waiting, not computing)."""
    out: dict[str, Any] = {}
    stored = pd.read_parquet(campaign.results["stored"])
    if "latency_ms" in stored and len(accepted):
        latency = stored.set_index(schema.TRANSACTION_ID).latency_ms.reindex(accepted).dropna()
        if len(latency):
            out["server_p99_ms"] = round(float(np.quantile(latency, 0.99)), 2)
    samples = pd.DataFrame(campaign.results["samples"])
    if not samples.empty:
        t = samples.t - campaign.zero
        inside = samples[(t >= start) & (t <= end)]
        if len(inside) >= 2:
            used = inside.api_cpu.iloc[-1] - inside.api_cpu.iloc[0]
            quota = campaign.results["plan"]["api"]["cpus"]
            seconds = inside.t.iloc[-1] - inside.t.iloc[0]
            out["api_cpu_of_quota"] = round(used / seconds / quota, 3)
    return out


def fault_figures(campaign: Campaign, seconds: pd.DataFrame) -> list[dict[str, Any]]:
    """Per fault: client-visible errors, recovery time, stream lag recovery."""
    zero, out = campaign.zero, []
    faults = campaign.faults
    end_of_load = float(np.nanmax(campaign.records.scheduled) - zero) + 1
    for index, fault in enumerate(faults):
        start, undone = fault["start"] - zero, fault["end"] - zero
        until = faults[index + 1]["start"] - zero if index + 1 < len(faults) else end_of_load
        out.append(
            {
                "fault": fault["name"],
                "at_s": round(start, 1),
                "held_s": round(undone - start, 1),
                **_window_counts(campaign.records, zero, start, until),
                "recovery_s": recovery_seconds(seconds, undone, until),
                "stream_recovery_s": stream_recovery(campaign, fault, until + zero),
                "detail": fault["detail"],
            }
        )
    return out


def alert_windows(campaign: Campaign) -> list[dict[str, Any]] | None:
    """Per window (the surge, then each fault until the next one): the alerts Prometheus had
    active, ``raised`` (became active in the window) or ``carried`` (active since before),
    each with the furthest state it reached (``firing``, else ``pending``: its condition held
    for less than its ``for``). None when no Prometheus ran."""
    polls = campaign.results.get("alerts")
    if polls is None:
        return None
    surge = next(e for e in campaign.results["events"] if e["name"] == "surge")
    faults = campaign.faults
    ends = [f["start"] for f in faults] + [float(np.nanmax(campaign.records.answered))]
    windows = [("surge", surge["start"], ends[0])]
    windows += [(f["name"], f["start"], end) for f, end in zip(faults, ends[1:], strict=True)]
    out = []
    for name, start, end in windows:
        raised: dict[str, str] = {}
        carried: dict[str, str] = {}
        for poll in polls:
            if not start <= poll["t"] < end:
                continue
            for alert, state, since in poll["active"]:
                into = raised if pd.Timestamp(since).timestamp() >= start else carried
                if into.get(alert) != "firing":
                    into[alert] = state
        carried = {a: s for a, s in carried.items() if a not in raised}
        out.append(
            {
                "window": name,
                "raised": _alert_list(raised),
                "carried": _alert_list(carried),
                "polls": sum(1 for poll in polls if start <= poll["t"] < end),
            }
        )
    return out


def _alert_list(alerts: dict[str, str]) -> str:
    return ", ".join(f"{a} ({s})" for a, s in sorted(alerts.items())) or "none"


def stream_recovery(campaign: Campaign, fault: dict[str, Any], until: float) -> float | None:
    """Seconds after the fault was undone until the worker's stored count is back where it
    would be had the stream never stopped (within two seconds of publishing); None when it
    is not before ``until`` (epoch)."""
    samples = pd.DataFrame(campaign.results["samples"])
    if samples.empty:
        return None
    rate = campaign.results["plan"]["stream_rate"]
    published = campaign.results["generator"].get("stream_published") or 0
    before = samples[samples.t <= fault["start"]]
    anchor = (before.t.iloc[-1], before.stream_stored.iloc[-1]) if len(before) else (0.0, 0)
    after = samples[(samples.t >= fault["end"]) & (samples.t < until)]
    expected = np.minimum(anchor[1] + rate * (after.t - anchor[0]), published)
    caught = after[after.stream_stored >= expected - 2 * rate]
    if caught.empty:
        return None
    return max(0.0, float(caught.t.iloc[0] - fault["end"]))


def losses(campaign: Campaign) -> dict[str, int]:
    """Acknowledged decisions missing from the database (must be 0), API and stream."""
    stored = pd.read_parquet(campaign.results["stored"])
    ids = set(stored.transaction_id.to_numpy().tolist())
    records = campaign.records
    acked = records.transaction_id[records.status == 200]
    published = campaign.results["generator"].get("stream_published") or 0
    stream = pd.read_parquet(campaign.results["world"]["stream"]).sort_values(
        schema.TX_DATETIME, kind="stable"
    )
    stream_ids = stream[schema.TRANSACTION_ID].head(published).to_numpy()
    return {
        "api_acknowledged": len(acked),
        "api_lost": int(sum(1 for i in acked.tolist() if i not in ids)),
        "stream_published": int(published),
        "stream_lost": int(sum(1 for i in stream_ids.tolist() if i not in ids)),
        "stored_rows": len(ids),
    }


def accuracy(campaign: Campaign, k: int = 100) -> dict[str, Any]:
    """AP and CP@k of the campaign's stored decisions vs offline scores of the same rows."""
    frame, stored = _scored_frame(campaign)
    out: dict[str, Any] = {"transactions": len(frame), "frauds": int(frame[schema.TX_FRAUD].sum())}
    for path in ("all", "api", "stream"):
        part = frame if path == "all" else frame[stored.loc[frame.index, "source"] == path]
        if part[schema.TX_FRAUD].nunique() < 2:
            continue
        days = part[schema.TX_DATETIME].dt.normalize()
        row = {}
        for name in ("live", "offline"):
            row[f"ap_{name}"] = average_precision(part[schema.TX_FRAUD], part[name])
            row[f"cp{k}_{name}"] = card_precision_at_k(
                days, part[schema.CUSTOMER_ID], part[schema.TX_FRAUD], part[name], k
            )
        row["mean_abs_score_diff"] = float((part.live - part.offline).abs().mean())
        if "seen" in part:
            row["ap_offline_seen"] = average_precision(part[schema.TX_FRAUD], part.seen)
        row["transactions"] = len(part)
        out[path] = row
    return out


def campaign_windows(campaign: Campaign) -> list[tuple[str, float, float]]:
    """The campaign's windows in epoch seconds: before the surge, the surge, after it, each
    fault until the next one (the last until the load ends), then the stream's drain."""
    events = campaign.results["events"]
    surge = next(e for e in events if e["name"] == "surge")
    faults = campaign.faults
    end_of_load = float(np.nanmax(campaign.records.scheduled)) + 1
    first_fault = faults[0]["start"] if faults else end_of_load
    windows = [
        ("before_surge", -np.inf, surge["start"]),
        ("surge", surge["start"], surge["end"]),
        ("after_surge", surge["end"], first_fault),
    ]
    ends = [f["start"] for f in faults[1:]] + [end_of_load]
    windows += [(f["name"], f["start"], end) for f, end in zip(faults, ends, strict=True)]
    windows.append(("after_load", end_of_load, np.inf))
    return windows


def _decision_times(campaign: Campaign, stored: pd.DataFrame) -> pd.Series:
    """Epoch seconds each stored decision was made: ``created_at`` when stored (runs since
    2026-12-06), else the API request's scheduled time (the stream's decisions then unknown)."""
    if "created_at" in stored:
        created = pd.to_datetime(stored["created_at"], utc=True)
        return (created - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    records = campaign.records
    scheduled = pd.Series(records.scheduled, index=records.transaction_id)
    scheduled = scheduled[~scheduled.index.duplicated(keep="last")]
    return scheduled.reindex(stored.index)


def _scored_frame(campaign: Campaign) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per decided transaction: labels, live and offline score (and the stored rows)."""
    stored = pd.read_parquet(campaign.results["stored"]).set_index(schema.TRANSACTION_ID)
    offline = pd.read_parquet(campaign.results["offline_scores"]).set_index(schema.TRANSACTION_ID)
    offered = pd.read_parquet(Path(campaign.results["offline_scores"]).with_name("offered.parquet"))
    frame = (
        offered.set_index(schema.TRANSACTION_ID)
        .join(stored.score.rename("live"), how="inner")
        .join(offline.score.rename("offline"), how="inner")
    )
    if campaign.results.get("offline_seen_scores"):  # runs since 2026-12-06
        seen = pd.read_parquet(campaign.results["offline_seen_scores"])
        frame = frame.join(seen.set_index(schema.TRANSACTION_ID).score.rename("seen"))
    return frame, stored


def accuracy_by_window(campaign: Campaign) -> list[dict[str, Any]]:
    """The live-vs-offline comparison split by campaign window (when the decision was made).

    Per window: decisions, frauds, AP live and offline within it, the mean absolute score
    difference, and ``ap_gap_share``: how much of the whole campaign's AP gap (offline minus
    live, all decisions) closes when this window's live scores alone are replaced by their
    offline ones (1.0: the window explains the whole gap; the shares need not add up to 1).
    """
    frame, stored = _scored_frame(campaign)
    frame["decided"] = _decision_times(campaign, stored).reindex(frame.index)
    labels = frame[schema.TX_FRAUD]
    ap_live = average_precision(labels, frame.live)
    gap = average_precision(labels, frame.offline) - ap_live
    out = []
    for name, start, end in campaign_windows(campaign):
        inside = (frame.decided >= start) & (frame.decided < end)
        part = frame[inside]
        if part.empty:
            continue
        row: dict[str, Any] = {
            "window": name,
            "decisions": len(part),
            "frauds": int(part[schema.TX_FRAUD].sum()),
            "ap_live": None,
            "ap_offline": None,
            "mean_abs_score_diff": float((part.live - part.offline).abs().mean()),
            "ap_gap_share": None,
        }
        if part[schema.TX_FRAUD].nunique() == 2:
            row["ap_live"] = average_precision(part[schema.TX_FRAUD], part.live)
            row["ap_offline"] = average_precision(part[schema.TX_FRAUD], part.offline)
            if "seen" in part:
                row["ap_offline_seen"] = average_precision(part[schema.TX_FRAUD], part.seen)
        if "seen" in part:
            row["mean_abs_diff_seen"] = float((part.live - part.seen).abs().mean())
        if gap > 0:
            swapped = frame.live.where(~inside, frame.offline)
            row["ap_gap_share"] = (average_precision(labels, swapped) - ap_live) / gap
        out.append(row)
    unplaced = int(frame.decided.isna().sum())
    if unplaced:
        out.append({"window": "time unknown", "decisions": unplaced, "frauds": None})
    return out


def stream_event_lag(campaign: Campaign, late_days: float = 1.0) -> dict[str, Any] | None:
    """How far the stream's events trailed the API's in event time, and what that did.

    Both paths replay one world and share its terminals, the API at the plan's rate and the
    stream at its own, slower one: a stream transaction is scored against terminal state the
    API has already carried days ahead. Per decision: the lag of its event time behind the
    newest event the API had decided by then; split at ``late_days``, the mean absolute
    difference between its live score and the ``seen`` batch score (None before 2026-12-06).
    """
    frame, stored = _scored_frame(campaign)
    if "seen" not in frame or "created_at" not in stored:
        return None
    frame["decided"] = _decision_times(campaign, stored).reindex(frame.index)
    source = stored.loc[frame.index, "source"]
    api = frame[source == "api"].sort_values("decided")
    stream = frame[source == "stream"].sort_values("decided")
    if api.empty or stream.empty:
        return None
    newest = api[schema.TX_DATETIME].cummax().to_numpy()
    before = np.searchsorted(api.decided.to_numpy(), stream.decided.to_numpy()) - 1
    front = pd.to_datetime(newest[np.clip(before, 0, None)])
    lag = (front - pd.DatetimeIndex(stream[schema.TX_DATETIME])).total_seconds() / 86_400
    lag_days = pd.Series(np.where(before >= 0, lag, 0.0), index=stream.index)
    diff = (stream.live - stream.seen).abs()
    late = lag_days > late_days
    return {
        "late_days": late_days,
        "decisions": len(stream),
        "max_lag_days": float(lag_days.max()),
        "on_time": int((~late).sum()),
        "on_time_mean_abs_diff": float(diff[~late].mean()) if (~late).any() else None,
        "late": int(late.sum()),
        "late_mean_abs_diff": float(diff[late].mean()) if late.any() else None,
    }


def locust_figures(results: dict[str, Any]) -> dict[str, Any]:
    """Locust's aggregated row and its per-second history."""
    prefix = results["locust"]["csv_prefix"]
    stats = pd.read_csv(f"{prefix}_stats.csv")
    total = stats[stats.Name == "Aggregated"].iloc[0]
    requests = int(total["Request Count"])
    event = next(e for e in results["events"] if e["name"] == "locust")
    return {
        "requests": requests,
        "failures": int(total["Failure Count"]),
        "error_share": float(total["Failure Count"]) / max(requests, 1),
        "req_per_s": float(total["Requests/s"]),
        "mean_ms": float(total["Average Response Time"]),
        "p50_ms": float(total["50%"]),
        "p99_ms": float(total["99%"]),
        "max_ms": float(total["Max Response Time"]),
        "cpu_seconds": results["locust"]["cpu_seconds"],
        "seconds": event["end"] - event["start"],
    }


def locust_history(results: dict[str, Any]) -> pd.DataFrame:
    """Locust's stats history (one row a second): time, req/s, failures/s, p99 ms."""
    history = pd.read_csv(f"{results['locust']['csv_prefix']}_stats_history.csv")
    rows = history[history.Name == "Aggregated"]
    columns = ["Timestamp", "Requests/s", "Failures/s", "99%", "Total Average Response Time"]
    return pd.DataFrame(rows[columns])


def _ms(seconds: float) -> float:
    return round(float(seconds) * 1000, 2)
