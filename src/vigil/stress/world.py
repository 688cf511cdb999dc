"""The campaign's data: a simulated world split into warm-up history and live traffic.

``history.parquet`` (the first ``warm_days``) warms the online state and trains the model;
the traffic after it is split by customer into the API's requests (``api.parquet``) and the
stream's messages (``stream.parquet``, every customer whose id is a multiple of ten), so the
two paths never score the same transaction. Every row keeps its fraud label, which the
services never see and the accuracy check (issue 15, item 7) uses.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd

from vigil.data import schema
from vigil.data.io import read_transactions

VIGIL = (sys.executable, "-m", "vigil")  # the running interpreter's vigil, whatever PATH says
START = date(2019, 2, 1)  # after every event time Locust's locustfile.py sends
STREAM_CUSTOMER_MODULO = 10


@dataclass(frozen=True)
class World:
    """Paths of the campaign's data files and the instant the traffic starts."""

    folder: Path
    history: Path
    api: Path
    stream: Path
    traffic_start: datetime
    api_rows: int
    stream_rows: int


def world_settings(customers: int, days: int) -> list[str]:
    """``--set`` overrides of the simulated world (used by every command of the campaign)."""
    return [
        "--set",
        f"data.n_customers={customers}",
        "--set",
        f"data.n_terminals={2 * customers}",
        "--set",
        f"data.n_days={days}",
        "--set",
        f"data.start_date={START.isoformat()}",
    ]


def build_world(folder: Path, customers: int, warm_days: int, traffic_days: int) -> World:
    """Simulate ``warm_days + traffic_days`` days with ``vigil generate`` and split them.

    The simulator is deterministic for its settings, so a folder that already holds that
    world's raw data (a previous run) is not simulated again.
    """
    raw = folder / "raw"
    overrides = world_settings(customers, warm_days + traffic_days)
    stamp = folder / "world.txt"
    if not raw.exists() or stamp.read_text() != " ".join(overrides):
        shutil.rmtree(raw, ignore_errors=True)
        command = [*VIGIL, "generate", "--out", str(raw), "--no-progress"]
        subprocess.run([*command, *overrides], check=True, capture_output=True)
        stamp.write_text(" ".join(overrides))
    frame = read_transactions(raw).sort_values(schema.TX_DATETIME, kind="stable")
    traffic_start = datetime.combine(START, datetime.min.time()) + timedelta(days=warm_days)
    live = frame[schema.TX_DATETIME] >= traffic_start
    history, traffic = frame[~live], frame[live]
    to_stream = traffic[schema.CUSTOMER_ID] % STREAM_CUSTOMER_MODULO == 0
    paths = {name: folder / f"{name}.parquet" for name in ("history", "api", "stream")}
    for name, rows in (("history", history), ("api", traffic[~to_stream])):
        rows.to_parquet(paths[name], index=False)
    traffic[to_stream].to_parquet(paths["stream"], index=False)
    return World(
        folder,
        paths["history"],
        paths["api"],
        paths["stream"],
        traffic_start,
        int((~to_stream).sum()),
        int(to_stream.sum()),
    )


def read_labelled(path: Path) -> pd.DataFrame:
    """A split with its labels, indexed by transaction id."""
    return pd.read_parquet(path).set_index(schema.TRANSACTION_ID)
