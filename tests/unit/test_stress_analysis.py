"""The stress report's accuracy by campaign window (issue 15, item 7), from a stored run."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vigil.stress import analysis
from vigil.stress.loadgen import Records
from vigil.stress.report import _stream_lag_reading, _surge_server_side

ZERO = 1_800_000_000.0


def _run(tmp_path: Path) -> Path:
    """A run of 100 s: a surge at 10-20 s, a Redis kill at 40 s; 1 decision a second, each
    second's transaction a fraud when t % 5 == 0. Live scores are perfect except after the
    kill, where they are inverted; offline scores are perfect throughout."""
    t = np.arange(100.0)
    ids = np.arange(1_000, 1_100)
    fraud = (t % 5 == 0).astype(int)
    Records(ZERO + t, ZERO + t, ZERO + t + 0.01, np.full(100, 200, np.int32), ids).save(
        str(tmp_path / "records.npz")
    )
    live = np.where(t < 40, fraud, 1 - fraud) * 0.8 + 0.1
    created = [datetime.fromtimestamp(ZERO + s + 0.01, UTC) for s in t]
    pd.DataFrame(
        {"transaction_id": ids, "score": live, "label": 0, "source": "api", "created_at": created}
    ).to_parquet(tmp_path / "stored.parquet")
    pd.DataFrame({"transaction_id": ids, "score": fraud * 0.8 + 0.1}).to_parquet(
        tmp_path / "offline.parquet"
    )
    pd.DataFrame(
        {
            "transaction_id": ids,
            "tx_datetime": [datetime(2019, 3, 11) + timedelta(minutes=int(s)) for s in t],
            "customer_id": ids % 7,
            "terminal_id": ids % 11,
            "tx_amount": 10.0,
            "tx_fraud": fraud,
        }
    ).to_parquet(tmp_path / "offered.parquet")
    events = [
        {"name": "generator", "start": ZERO, "end": ZERO, "detail": {"zero": ZERO}},
        {"name": "surge", "start": ZERO + 10, "end": ZERO + 20, "detail": {}},
        {"name": "postgres_stop", "start": ZERO + 30, "end": ZERO + 32, "detail": {}},
        {"name": "redis_kill", "start": ZERO + 40, "end": ZERO + 40.1, "detail": {}},
    ]
    results = {
        "events": events,
        "records": str(tmp_path / "records.npz"),
        "stored": str(tmp_path / "stored.parquet"),
        "offline_scores": str(tmp_path / "offline.parquet"),
    }
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    return path


def test_accuracy_by_window_puts_the_gap_where_the_decisions_went_wrong(tmp_path: Path) -> None:
    campaign = analysis.Campaign.load(_run(tmp_path))
    windows = {w["window"]: w for w in analysis.accuracy_by_window(campaign)}
    assert list(windows) == ["before_surge", "surge", "after_surge", "postgres_stop", "redis_kill"]
    assert [w["decisions"] for w in windows.values()] == [10, 10, 10, 10, 60]
    for name in ("before_surge", "surge", "after_surge", "postgres_stop"):
        assert windows[name]["ap_live"] == pytest.approx(1.0)
        assert windows[name]["mean_abs_score_diff"] == 0
        assert windows[name]["ap_gap_share"] == pytest.approx(0.0)
    kill = windows["redis_kill"]
    assert kill["ap_live"] < 0.5 and kill["ap_offline"] == pytest.approx(1.0)
    assert kill["ap_gap_share"] == pytest.approx(1.0)  # the whole gap is the kill's


def test_a_second_with_exactly_one_percent_not_ok_meets_the_slo() -> None:
    """'At most 1 %': 1 of 100 (and 10 of 1,000) meets it; 1 - 99/100 is 0.0100000000000000009
    in floating point, which made such a second miss it."""
    status = np.array([200] * 99 + [503] + [200] * 990 + [503] * 10 + [200] * 98 + [503] * 2)
    n = len(status)
    t = np.concatenate([np.full(100, 0.5), np.linspace(1, 1.99, 1000), np.full(100, 2.5)])
    records = Records(ZERO + t, ZERO + t, ZERO + t + 0.01, status.astype(np.int32), np.arange(n))
    seconds = analysis.per_second(records, ZERO)
    assert seconds.meets_slo.tolist() == [True, True, False]


def test_the_samplers_stream_count_equals_a_full_count(tmp_path: Path) -> None:
    """The campaign's once-a-second count of stored stream decisions, incremental by
    created_at instead of a full scan, agrees with the full count as rows arrive."""
    from sqlalchemy import func, insert, select

    from vigil.storage.engine import create_db_engine
    from vigil.storage.tables import metadata, predictions
    from vigil.stress.campaign import StreamCount

    engine = create_db_engine(f"sqlite:///{tmp_path / 'p.db'}")
    metadata.create_all(engine, tables=[predictions])
    start = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)
    counter, next_id = StreamCount(margin_s=5), 0
    with engine.begin() as connection:
        for second in range(30):
            now = start + timedelta(seconds=second)
            rows = []
            for k in range(3):  # two stream decisions and one API decision a second; one
                late = 2 if k == 0 else 0  # committed two seconds after its created_at
                rows.append(
                    {
                        "transaction_id": next_id, "score": 0.1, "label": 0, "threshold": 0.5,
                        "reason_codes": [], "model_version": "m", "latency_ms": 1.0,
                        "source": "api" if k == 2 else "stream",
                        "created_at": now - timedelta(seconds=late),
                    }
                )  # fmt: skip
                next_id += 1
            connection.execute(insert(predictions), rows)
            full = connection.execute(
                select(func.count()).where(predictions.c.source == "stream")
            ).scalar_one()
            assert counter.read(connection, now) == full
    assert full == 60


@pytest.mark.parametrize(
    ("share", "reading"),
    [(0.36, "waited for a core"), (0.95, "was computing")],
)
def test_the_surge_reading_follows_the_apis_cpu_share(share: float, reading: str) -> None:
    text = _surge_server_side({"server_p99_ms": 12.0, "api_cpu_of_quota": share})

    assert f"{100 * share:.0f} % of its quota" in text
    assert reading in text


def test_uptime_counts_seconds_meeting_the_slo_inside_and_outside_the_surge() -> None:
    seconds = pd.DataFrame(
        {
            "offered": [100, 100, 1000, 1000, 100],
            "ok": [100, 99, 200, 200, 90],
            "errors": [0, 0, 0, 0, 5],
            "meets_slo": [True, True, False, False, False],
        },
        index=[0, 1, 2, 3, 4],
    )

    figures = analysis.uptime(seconds, (2.0, 4.0))

    assert figures["seconds"] == 5 and figures["seconds_meeting_slo"] == 2
    assert figures["slo_uptime"] == pytest.approx(0.4)
    assert figures["slo_uptime_outside_surge"] == pytest.approx(2 / 3)
    assert figures["answered_share"] == pytest.approx(1 - 5 / 2300)
    assert figures["ok_share"] == pytest.approx(689 / 2300)


def test_the_stream_lag_reading_says_how_late_events_scored() -> None:
    lag = {
        "late_days": 1.0,
        "decisions": 100,
        "max_lag_days": 52.2,
        "on_time": 10,
        "on_time_mean_abs_diff": 0.0,
        "late": 90,
        "late_mean_abs_diff": 0.08,
    }

    text = _stream_lag_reading(lag)

    assert "up to 52 days" in text and "the 10 less than 1 day" in text
    assert "by 0.000 on average; the 90 later ones by 0.080" in text
    assert _stream_lag_reading(None) == "" and _stream_lag_reading({**lag, "late": 0}) == ""


def test_stream_event_lag_splits_the_streams_decisions_by_how_late_they_were(
    tmp_path: Path,
) -> None:
    """The last 10 decisions come from the stream: 5 one minute behind the API's newest event
    (scored like their batch score), 5 two days behind (scored 0.3 off)."""
    path = _run(tmp_path)
    stored = pd.read_parquet(tmp_path / "stored.parquet")
    offered = pd.read_parquet(tmp_path / "offered.parquet")
    stream = stored.transaction_id >= 1_090
    stored.loc[stream, "source"] = "stream"
    late = stored.transaction_id >= 1_095
    offered.loc[late.to_numpy(), "tx_datetime"] -= timedelta(days=2)
    seen = stored[["transaction_id", "score"]].copy()
    seen.loc[late, "score"] += 0.3
    stored.to_parquet(tmp_path / "stored.parquet")
    offered.to_parquet(tmp_path / "offered.parquet")
    seen.to_parquet(tmp_path / "seen.parquet")
    results = json.loads(path.read_text())
    results["offline_seen_scores"] = str(tmp_path / "seen.parquet")
    path.write_text(json.dumps(results))

    lag = analysis.stream_event_lag(analysis.Campaign.load(path))

    assert lag is not None
    assert (lag["decisions"], lag["on_time"], lag["late"]) == (10, 5, 5)
    assert lag["on_time_mean_abs_diff"] == pytest.approx(0.0)
    assert lag["late_mean_abs_diff"] == pytest.approx(0.3)
    assert lag["max_lag_days"] == pytest.approx(2.0, abs=0.01)


def test_the_samplers_stream_count_keeps_decisions_stored_late_after_an_outage(
    tmp_path: Path,
) -> None:
    """PostgreSQL down longer than the margin: the worker's decisions of the outage are
    scored (``created_at``) then stored only once it is back, later than the margin. The
    sampler's reads fail meanwhile; after the outage its count still takes them in."""
    from sqlalchemy import func, insert, select

    from vigil.storage.engine import create_db_engine
    from vigil.storage.tables import metadata, predictions
    from vigil.stress.campaign import StreamCount

    engine = create_db_engine(f"sqlite:///{tmp_path / 'p.db'}")
    metadata.create_all(engine, tables=[predictions])
    start = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)
    counter = StreamCount(margin_s=5)

    def row(transaction_id: int, created_at: datetime) -> dict[str, object]:
        return {
            "transaction_id": transaction_id, "score": 0.1, "label": 0, "threshold": 0.5,
            "reason_codes": [], "model_version": "m", "latency_ms": 1.0, "source": "stream",
            "created_at": created_at,
        }  # fmt: skip

    held: list[dict[str, object]] = []  # scored during the outage, stored after it
    with engine.begin() as connection:
        for second in range(40):
            now = start + timedelta(seconds=second)
            if 10 <= second < 22:  # down 12 s (> the 5 s margin): reads fail, writes wait
                held.append(row(second, now))
                counter.missed()
                continue
            if second == 24:  # the worker's retry lands 2 s after the database is back
                connection.execute(insert(predictions), held)
            connection.execute(insert(predictions), [row(second, now)])
            full = connection.execute(
                select(func.count()).where(predictions.c.source == "stream")
            ).scalar_one()
            assert counter.read(connection, now) == full, second
    assert full == 40
