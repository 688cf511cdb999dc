"""Transaction simulator of the Fraud Detection Handbook, vectorised and streamed day by day.

Design (Le Borgne et al. 2022, "Transaction data simulator"): each day every customer makes
Poisson(mean_nb_tx_per_day) payments at Normal(12:00, 20000 s) times (outside the day
dropped), for Normal(mean, mean / 2) amounts (negative ones redrawn U(0, 2 mean)), at a
terminal chosen uniformly among those within the radius. Frauds:

1. amount > 220;
2. each day 2 terminals are compromised for 28 days (that day included): all their payments;
3. each day 3 customers are compromised for 14 days: a third of their payments are
   multiplied by 5 (the handbook samples exactly a third of the 14-day window at once;
   streaming day by day we draw each payment with probability 1/3, same expectation).

Later scenarios override earlier ones, as in the handbook. Every random draw comes from a
generator keyed on (seed, stream, day), so a day's data depends only on the seed, the day
and the small carried state (compromise end days) -- and drift changes nothing before its
``start_day``.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict
from tqdm import tqdm

from vigil.config import DataConfig
from vigil.data import schema
from vigil.data.contracts import FRAUD_SCENARIOS
from vigil.data.drift_scenarios import (
    DAY_SECONDS,
    NIGHT_CENTRE_SECONDS,
    NIGHT_STD_SECONDS,
    Behaviour,
    behaviour_for_day,
    card_testing_bursts,
)
from vigil.data.io import write_partitioned
from vigil.data.origin import SimulatedWorld
from vigil.data.world import World, build_world

logger = logging.getLogger(__name__)

GENUINE, HIGH_AMOUNT, COMPROMISED_TERMINAL, COMPROMISED_CUSTOMER, CARD_TESTING = range(5)
AMOUNT_FRAUD_THRESHOLD = 220.0
TERMINALS_COMPROMISED_PER_DAY = 2
TERMINAL_COMPROMISE_DAYS = 28
CUSTOMERS_COMPROMISED_PER_DAY = 3
CUSTOMER_COMPROMISE_DAYS = 14
COMPROMISED_CUSTOMER_FRAUD_SHARE = 1 / 3
COMPROMISED_CUSTOMER_AMOUNT_FACTOR = 5.0
TIME_MEAN_SECONDS = DAY_SECONDS / 2
TIME_STD_SECONDS = 20_000.0
STREAM_TRANSACTIONS = 21
STREAM_COMPROMISE = 22
STREAM_FRAUD = 23
STREAM_DRIFT = 24
CSV_NAME = "transactions.csv"


@dataclass
class FraudState:
    """Carried across days: the first day each terminal / customer is no longer compromised."""

    terminal_until: np.ndarray
    customer_until: np.ndarray

    @classmethod
    def fresh(cls, world: World) -> FraudState:
        """Nothing compromised yet."""
        return cls(
            terminal_until=np.zeros(world.n_terminals, dtype=np.int32),
            customer_until=np.zeros(world.n_customers, dtype=np.int32),
        )


@dataclass(frozen=True)
class DayTransactions:
    """One day's transactions as column arrays, sorted by time then customer."""

    seconds: np.ndarray  # int64, seconds since the day's midnight
    customers: np.ndarray  # int64
    terminals: np.ndarray  # int64
    amounts: np.ndarray  # float64
    scenarios: np.ndarray  # int8

    def __len__(self) -> int:
        return int(self.seconds.shape[0])


def compromised_on(config: DataConfig, world: World, day: int) -> tuple[np.ndarray, np.ndarray]:
    """The (terminals, customers) that become compromised on ``day``."""
    rng = np.random.default_rng([config.seed, STREAM_COMPROMISE, day])
    terminals = rng.choice(
        world.n_terminals, min(TERMINALS_COMPROMISED_PER_DAY, world.n_terminals), replace=False
    )
    customers = rng.choice(
        world.n_customers, min(CUSTOMERS_COMPROMISED_PER_DAY, world.n_customers), replace=False
    )
    return terminals, customers


def _genuine(world: World, behaviour: Behaviour, rng: np.random.Generator) -> DayTransactions:
    """Draw the day's payments of every customer; no fraud labels yet."""
    counts = rng.poisson(world.mean_nb_tx_per_day * behaviour.rate_factor)
    customers = np.repeat(np.arange(world.n_customers, dtype=np.int64), counts)
    times = rng.normal(TIME_MEAN_SECONDS, TIME_STD_SECONDS, size=customers.size)
    if behaviour.night_share > 0:
        at_night = rng.random(customers.size) < behaviour.night_share
        times[at_night] = rng.normal(
            NIGHT_CENTRE_SECONDS, NIGHT_STD_SECONDS, size=int(at_night.sum())
        )
    seconds = np.trunc(times).astype(np.int64)  # the handbook's int(): towards zero
    mean = world.mean_amount[customers]
    amounts = rng.normal(mean, world.std_amount[customers])
    negative = amounts < 0
    amounts[negative] = rng.uniform(0, 2 * mean[negative])
    amounts = np.round(amounts * behaviour.amount_factor, 2)
    keep = (seconds >= 0) & (seconds < DAY_SECONDS) & (world.neighbour_counts[customers] > 0)
    customers, seconds, amounts = customers[keep], seconds[keep], amounts[keep]
    terminals = world.pick_terminals(customers, rng.random(customers.size))
    scenarios = np.zeros(customers.size, dtype=np.int8)
    return DayTransactions(seconds, customers, terminals, amounts, scenarios)


def _label_frauds(
    tx: DayTransactions, state: FraudState, day: int, rng: np.random.Generator
) -> DayTransactions:
    """Apply scenarios 1, 2 and 3 in the handbook's order (later ones override)."""
    scenarios = np.where(tx.amounts > AMOUNT_FRAUD_THRESHOLD, HIGH_AMOUNT, GENUINE)
    scenarios[state.terminal_until[tx.terminals] > day] = COMPROMISED_TERMINAL
    on_compromised_card = state.customer_until[tx.customers] > day
    stolen = on_compromised_card & (rng.random(len(tx)) < COMPROMISED_CUSTOMER_FRAUD_SHARE)
    scenarios[stolen] = COMPROMISED_CUSTOMER
    amounts = tx.amounts.copy()
    amounts[stolen] = np.round(amounts[stolen] * COMPROMISED_CUSTOMER_AMOUNT_FACTOR, 2)
    return DayTransactions(
        tx.seconds, tx.customers, tx.terminals, amounts, scenarios.astype(np.int8)
    )


def _with_card_testing(
    tx: DayTransactions,
    world: World,
    state: FraudState,
    day: int,
    probability: float,
    rng: np.random.Generator,
) -> DayTransactions:
    """Append the day's card-testing bursts (scenario 4) to ``tx``."""
    compromised = np.flatnonzero(state.customer_until > day)
    bursts = card_testing_bursts(world, compromised, probability, rng)
    return DayTransactions(
        seconds=np.concatenate([tx.seconds, bursts.seconds]),
        customers=np.concatenate([tx.customers, bursts.customers]),
        terminals=np.concatenate([tx.terminals, bursts.terminals]),
        amounts=np.concatenate([tx.amounts, bursts.amounts]),
        scenarios=np.concatenate(
            [tx.scenarios, np.full(bursts.customers.size, CARD_TESTING, dtype=np.int8)]
        ),
    )


def _sorted(tx: DayTransactions) -> DayTransactions:
    order = np.lexsort((tx.customers, tx.seconds))
    return DayTransactions(
        tx.seconds[order],
        tx.customers[order],
        tx.terminals[order],
        tx.amounts[order],
        tx.scenarios[order],
    )


def simulate_day(config: DataConfig, world: World, state: FraudState, day: int) -> DayTransactions:
    """One day of labelled transactions; updates ``state`` with the day's compromises."""
    terminals, customers = compromised_on(config, world, day)
    state.terminal_until[terminals] = np.maximum(
        state.terminal_until[terminals], day + TERMINAL_COMPROMISE_DAYS
    )
    state.customer_until[customers] = np.maximum(
        state.customer_until[customers], day + CUSTOMER_COMPROMISE_DAYS
    )
    behaviour = behaviour_for_day(config.drift, day)
    genuine = _genuine(
        world, behaviour, np.random.default_rng([config.seed, STREAM_TRANSACTIONS, day])
    )
    tx = _label_frauds(genuine, state, day, np.random.default_rng([config.seed, STREAM_FRAUD, day]))
    if behaviour.card_testing_probability > 0:
        drift_rng = np.random.default_rng([config.seed, STREAM_DRIFT, day])
        tx = _with_card_testing(
            tx, world, state, day, behaviour.card_testing_probability, drift_rng
        )
    return _sorted(tx)


def to_frame(tx: DayTransactions, config: DataConfig, day: int, first_id: int) -> pd.DataFrame:
    """The day's transactions in Vigil's schema, ids numbered from ``first_id``."""
    midnight = np.datetime64(config.start_date, "us") + np.timedelta64(day, "D")
    return pd.DataFrame(
        {
            schema.TRANSACTION_ID: np.arange(first_id, first_id + len(tx), dtype=np.int64),
            schema.TX_DATETIME: midnight + tx.seconds.astype("timedelta64[s]"),
            schema.CUSTOMER_ID: tx.customers,
            schema.TERMINAL_ID: tx.terminals,
            schema.TX_AMOUNT: tx.amounts,
            schema.TX_FRAUD: (tx.scenarios > GENUINE).astype(np.int8),
            schema.TX_FRAUD_SCENARIO: tx.scenarios,
        }
    )


def iter_days(config: DataConfig, world: World | None = None) -> Iterator[pd.DataFrame]:
    """Yield each simulated day as a frame in Vigil's schema, in time order."""
    world = world if world is not None else build_world(config)
    state = FraudState.fresh(world)
    next_id = 0
    for day in range(config.n_days):
        frame = to_frame(simulate_day(config, world, state, day), config, day, next_id)
        next_id += len(frame)
        yield frame


def simulate_transactions(config: DataConfig) -> pd.DataFrame:
    """The whole simulation in memory (small worlds, tests); use :func:`generate` for big ones."""
    frames = list(iter_days(config))
    return pd.concat(frames, ignore_index=True)


class SimulationSummary(BaseModel):
    """What :func:`generate` wrote."""

    model_config = ConfigDict(frozen=True)

    out_dir: Path
    rows: int
    frauds: int
    fraud_rate: float
    frauds_by_scenario: dict[int, int]
    days: int
    seconds: float
    csv_path: Path | None = None


def _prepare_out_dir(out_dir: Path, overwrite: bool) -> None:
    existing = sorted(out_dir.glob(f"{schema.TX_DATE}=*"))
    if existing and not overwrite:
        raise FileExistsError(
            f"{out_dir} already holds {len(existing)} day partition(s); "
            "choose another directory or overwrite"
        )
    for partition in existing:
        shutil.rmtree(partition)
    out_dir.mkdir(parents=True, exist_ok=True)


def generate(
    config: DataConfig,
    out_dir: Path,
    csv: bool = False,
    progress: bool = True,
    overwrite: bool = False,
) -> SimulationSummary:
    """Simulate day by day, streaming each day to ``out_dir/tx_date=.../part-0.parquet``,
    each file recording the world (:class:`~vigil.data.origin.SimulatedWorld`) it holds."""
    out_dir = Path(out_dir)
    _prepare_out_dir(out_dir, overwrite)
    csv_path = out_dir / CSV_NAME if csv else None
    if csv_path is not None:
        csv_path.unlink(missing_ok=True)
    started = time.perf_counter()
    rows = 0
    by_scenario = np.zeros(len(FRAUD_SCENARIOS), dtype=np.int64)
    days = tqdm(
        iter_days(config), total=config.n_days, unit="day", disable=not progress, desc="generate"
    )
    world = SimulatedWorld.of(config).metadata()
    for frame in days:
        write_partitioned(frame, out_dir, metadata=world)
        if csv_path is not None:
            frame.to_csv(csv_path, mode="a", header=rows == 0, index=False)
        rows += len(frame)
        by_scenario += np.bincount(frame[schema.TX_FRAUD_SCENARIO], minlength=by_scenario.size)
    frauds = int(by_scenario[1:].sum())
    summary = SimulationSummary(
        out_dir=out_dir,
        rows=rows,
        frauds=frauds,
        fraud_rate=frauds / rows if rows else 0.0,
        frauds_by_scenario={s: int(n) for s, n in enumerate(by_scenario) if s and n},
        days=config.n_days,
        seconds=time.perf_counter() - started,
        csv_path=csv_path,
    )
    logger.info(
        "generated %d transactions (%.3f%% fraud) in %.1f s",
        rows,
        100 * summary.fraud_rate,
        summary.seconds,
    )
    return summary
