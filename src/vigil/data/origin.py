"""Which simulated world a dataset holds, as recorded in its Parquet files' metadata.

``vigil generate`` writes its world (:class:`SimulatedWorld`) as JSON under the key
``vigil.world`` of every day partition's key-value metadata: the data names itself, with no
extra file in the data folder (readers glob it) and nothing a configuration could contradict.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow.parquet as pq

from vigil import __version__
from vigil.config import DataConfig
from vigil.data.io import PARQUET_SUFFIXES, file_suffix

WORLD_KEY = b"vigil.world"


@dataclass(frozen=True)
class SimulatedWorld:
    """The simulator's inputs that decide a world's transactions, and the code's version."""

    n_customers: int
    n_terminals: int
    n_days: int
    start_date: str
    radius: float
    seed: int
    drift_scenario: str
    drift_start_day: int
    drift_strength: float
    vigil_version: str

    @classmethod
    def of(cls, config: DataConfig) -> SimulatedWorld:
        """The world ``config`` simulates."""
        return cls(
            n_customers=config.n_customers,
            n_terminals=config.n_terminals,
            n_days=config.n_days,
            start_date=config.start_date.isoformat(),
            radius=config.radius,
            seed=config.seed,
            drift_scenario=config.drift.scenario,
            drift_start_day=config.drift.start_day,
            drift_strength=config.drift.strength,
            vigil_version=__version__,
        )

    @property
    def name(self) -> str:
        """A readable name, e.g. ``sim-1000c-2000t-183d-s0-drift-new_fraud_pattern-d120``."""
        drift = self.drift_scenario
        suffix = "base" if drift == "none" else f"drift-{drift}-d{self.drift_start_day}"
        size = f"{self.n_customers}c-{self.n_terminals}t-{self.n_days}d"
        return f"sim-{size}-s{self.seed}-{suffix}"

    def metadata(self) -> dict[bytes, bytes]:
        """The Parquet key-value metadata entry that records this world."""
        return {WORLD_KEY: json.dumps(asdict(self), sort_keys=True).encode()}


def _file_world(file: Path) -> SimulatedWorld | None:
    recorded = (pq.read_schema(file).metadata or {}).get(WORLD_KEY)
    if recorded is None:
        return None
    try:
        return SimulatedWorld(**json.loads(recorded))
    except (ValueError, TypeError) as error:
        raise ValueError(f"{file}: unreadable {WORLD_KEY.decode()} metadata: {error}") from None


def recorded_world(path: Path) -> SimulatedWorld | None:
    """The world every Parquet file of ``path`` (a file or a directory) records.

    ``None`` when there is no Parquet file, when one records no world (published data, rows
    added by ``PUT /add_data``) or when the files record different worlds.
    """
    files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
    if not files or file_suffix(files[0]) not in PARQUET_SUFFIXES:
        return None
    worlds = {_file_world(file) for file in files}
    return worlds.pop() if len(worlds) == 1 else None
