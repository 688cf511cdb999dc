"""A simulated history with the handbook's density, and its warm-up into an online state store.

Shared by the benchmarks that need a realistic online state (``bench_redis_state.py``,
``bench_api.py``): customers with a month of history, terminals with known frauds; and the
start of a server under test (``bench_api.py``, ``bench_cases.py``). Not a benchmark itself
(``make bench`` runs ``bench_*.py``).
"""

from __future__ import annotations

import argparse
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
from tqdm import tqdm

from vigil.config import DataConfig
from vigil.data import schema
from vigil.data.simulate import simulate_transactions
from vigil.features.online import OnlineFeatureComputer
from vigil.features.replay import as_transactions, in_event_order
from vigil.features.state import Transaction


@dataclass(frozen=True)
class World:
    """Transactions in event-time order, their fraud labels, and the simulation's shape."""

    transactions: list[Transaction]
    frauds: list[bool]
    config: DataConfig

    @property
    def end(self) -> datetime:
        """The first instant after the simulated days."""
        start = datetime.combine(self.config.start_date, datetime.min.time())
        return start + timedelta(days=self.config.n_days)

    @property
    def seconds_between_transactions(self) -> float:
        """Mean event-time gap of the whole world (all customers together)."""
        return self.config.n_days * 86_400 / max(len(self.transactions), 1)


def simulate_world(customers: int, days: int, seed: int = 3) -> World:
    """``customers`` customers on ``2 * customers`` terminals for ``days`` days."""
    config = DataConfig(n_customers=customers, n_terminals=2 * customers, n_days=days, seed=seed)
    frame = in_event_order(simulate_transactions(config))
    return World(as_transactions(frame), frame[schema.TX_FRAUD].astype(bool).tolist(), config)


def warm(
    online: OnlineFeatureComputer,
    transactions: Sequence[Transaction],
    frauds: Sequence[bool],
    batch: int = 512,
) -> None:
    """Record ``transactions`` in micro-batches, each followed by its known frauds' labels.

    Genuine labels are not sent: the store keeps only known frauds (ADR 0009), so the state is
    the same and the warm-up is faster.
    """
    with tqdm(total=len(transactions), desc="warming the online state", unit="tx") as bar:
        for start in range(0, len(transactions), batch):
            chunk = transactions[start : start + batch]
            online.features_for_batch(chunk)
            for tx, fraud in zip(chunk, frauds[start : start + batch], strict=True):
                if fraud:
                    online.add_label(
                        tx.transaction_id, tx.customer_id, tx.terminal_id, tx.tx_datetime, True
                    )
            bar.update(len(chunk))


def state_arguments(description: str) -> argparse.Namespace:
    """The options of the state-store benchmarks: world size, micro-batch, measured part."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--days", type=int, default=50)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--measure", type=int, default=20_000)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    return parser.parse_args()


def start_until_healthy(
    command: list[str],
    port: int,
    log: Path,
    environment: Mapping[str, str] | None = None,
    timeout: float = 90.0,
) -> subprocess.Popen[bytes]:
    """Start a server (``vigil serve``), its output in ``log`` (a file, not a pipe nobody
    reads: the server never blocks); return once ``/health`` on ``port`` answers 200."""
    with log.open("wb") as sink:
        server = subprocess.Popen(
            command,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=None if environment is None else dict(environment),
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if server.poll() is not None:
            raise RuntimeError(f"{command[0]} exited: {log.read_text()[-2000:]}")
        time.sleep(0.2)
    server.terminate()
    raise RuntimeError(f"{command[0]} did not become ready within {timeout:.0f} s")
