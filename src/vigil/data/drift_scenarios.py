"""Switchable drift in the simulated world (config ``data.drift``), active from ``start_day``.

- ``amount_inflation``: every amount is multiplied by ``strength`` before fraud labelling.
- ``customer_shift``: customers transact ``strength`` times as often and a share
  ``1 - 1/strength`` of their transactions moves to the night (around 03:00).
- ``new_fraud_pattern``: card testing. Each day, each compromised customer (scenario 3
  state) suffers with probability ``min(1, strength / 3)`` a burst of small payments
  (0.50 to 5.00) a minute or so apart; these are frauds of scenario 4.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vigil.config import DriftConfig
from vigil.data.world import World

DAY_SECONDS = 86_400
NIGHT_CENTRE_SECONDS = 3 * 3600
NIGHT_STD_SECONDS = 1.5 * 3600
BURST_MIN_SIZE = 3
BURST_EXTRA_MEAN = 3.0
BURST_GAP_MEAN_SECONDS = 60.0
BURST_AMOUNT_RANGE = (0.5, 5.0)


@dataclass(frozen=True)
class Behaviour:
    """How customers behave on one day (the handbook's behaviour is the default)."""

    rate_factor: float = 1.0
    night_share: float = 0.0
    amount_factor: float = 1.0
    card_testing_probability: float = 0.0


def behaviour_for_day(drift: DriftConfig, day: int) -> Behaviour:
    """The customers' behaviour on ``day`` under the configured drift scenario."""
    if drift.scenario == "none" or day < drift.start_day:
        return Behaviour()
    if drift.scenario == "amount_inflation":
        return Behaviour(amount_factor=drift.strength)
    if drift.scenario == "customer_shift":
        return Behaviour(
            rate_factor=drift.strength, night_share=max(0.0, 1.0 - 1.0 / drift.strength)
        )
    return Behaviour(card_testing_probability=min(1.0, drift.strength / 3.0))


@dataclass(frozen=True)
class Bursts:
    """Card-testing transactions of one day, as column arrays (unsorted)."""

    seconds: np.ndarray
    customers: np.ndarray
    terminals: np.ndarray
    amounts: np.ndarray


def card_testing_bursts(
    world: World, compromised: np.ndarray, probability: float, rng: np.random.Generator
) -> Bursts:
    """Bursts of small payments on some of the ``compromised`` customers (ids)."""
    usable = compromised[world.neighbour_counts[compromised] > 0]
    victims = usable[rng.random(usable.size) < probability]
    sizes = BURST_MIN_SIZE + rng.poisson(BURST_EXTRA_MEAN, size=victims.size)
    customers = np.repeat(victims, sizes).astype(np.int64)
    starts = np.repeat(rng.integers(0, DAY_SECONDS - 3600, size=victims.size), sizes)
    gaps = rng.exponential(BURST_GAP_MEAN_SECONDS, size=customers.size)
    # Offset of each payment from its burst's start: a cumulative sum restarted per burst.
    elapsed = np.cumsum(gaps)
    burst_first = np.repeat(np.cumsum(sizes) - sizes, sizes)
    offsets = elapsed - elapsed[burst_first] if customers.size else elapsed
    seconds = np.minimum(starts + offsets.astype(np.int64), DAY_SECONDS - 1)
    terminals = world.pick_terminals(customers, rng.random(customers.size))
    amounts = np.round(rng.uniform(*BURST_AMOUNT_RANGE, size=customers.size), 2)
    return Bursts(seconds=seconds, customers=customers, terminals=terminals, amounts=amounts)
