"""The simulated world: customer and terminal profiles, and who can pay where.

Follows the Fraud Detection Handbook (Le Borgne et al. 2022, "Transaction data simulator"):
customers and terminals sit uniformly on a 100 x 100 grid and a customer pays only at
terminals strictly closer than ``radius``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from vigil.config import DataConfig

logger = logging.getLogger(__name__)

GRID_SIZE = 100.0
# Customers per KD-tree query: bounds the (customer, terminal) pair buffer to ~100 MB.
NEIGHBOUR_CHUNK = 50_000
# Stream tags keep the random draws of each part of the world independent of the others.
STREAM_CUSTOMERS = 11
STREAM_TERMINALS = 12


@dataclass(frozen=True)
class World:
    """Profiles as column arrays (index = id) plus a CSR customer -> terminals table."""

    customer_xy: np.ndarray  # (n_customers, 2) float64
    mean_amount: np.ndarray  # (n_customers,) float64, U(5, 100)
    std_amount: np.ndarray  # (n_customers,) float64, mean / 2
    mean_nb_tx_per_day: np.ndarray  # (n_customers,) float64, U(0, 4)
    terminal_xy: np.ndarray  # (n_terminals, 2) float64
    neighbour_offsets: np.ndarray  # (n_customers + 1,) int64: CSR row pointers
    neighbour_terminals: np.ndarray  # (n_pairs,) int32: terminal ids, sorted per customer

    @property
    def n_customers(self) -> int:
        """Number of customers."""
        return int(self.mean_amount.shape[0])

    @property
    def n_terminals(self) -> int:
        """Number of terminals."""
        return int(self.terminal_xy.shape[0])

    @property
    def neighbour_counts(self) -> np.ndarray:
        """How many terminals each customer can use."""
        return np.diff(self.neighbour_offsets)

    def pick_terminals(self, customers: np.ndarray, uniform: np.ndarray) -> np.ndarray:
        """For each customer (all with >= 1 terminal) a terminal chosen by ``uniform`` in [0, 1)."""
        counts = self.neighbour_counts[customers]
        slot = np.minimum((uniform * counts).astype(np.int64), counts - 1)
        return self.neighbour_terminals[self.neighbour_offsets[customers] + slot].astype(np.int64)


def terminals_within_radius(
    customer_xy: np.ndarray, terminal_xy: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """CSR (offsets, terminal ids) of terminals at distance < radius from each customer."""
    terminal_tree = cKDTree(terminal_xy)
    counts = np.zeros(customer_xy.shape[0], dtype=np.int64)
    chunks = []
    for start in range(0, customer_xy.shape[0], NEIGHBOUR_CHUNK):
        block = customer_xy[start : start + NEIGHBOUR_CHUNK]
        pairs = cKDTree(block).sparse_distance_matrix(terminal_tree, radius, output_type="ndarray")
        pairs = pairs[pairs["v"] < radius]  # the handbook's test is strict; the tree's is <=
        pairs = pairs[np.lexsort((pairs["j"], pairs["i"]))]
        counts[start : start + block.shape[0]] = np.bincount(pairs["i"], minlength=block.shape[0])
        chunks.append(pairs["j"].astype(np.int32))
    offsets = np.zeros(customer_xy.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    terminals = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int32)
    return offsets, terminals


def build_world(config: DataConfig) -> World:
    """Draw the customer and terminal profiles for ``config.seed`` and link them by radius."""
    rng_c = np.random.default_rng([config.seed, STREAM_CUSTOMERS])
    customer_xy = rng_c.uniform(0, GRID_SIZE, size=(config.n_customers, 2))
    mean_amount = rng_c.uniform(5, 100, size=config.n_customers)
    mean_nb_tx_per_day = rng_c.uniform(0, 4, size=config.n_customers)
    rng_t = np.random.default_rng([config.seed, STREAM_TERMINALS])
    terminal_xy = rng_t.uniform(0, GRID_SIZE, size=(config.n_terminals, 2))
    offsets, terminals = terminals_within_radius(customer_xy, terminal_xy, config.radius)
    logger.info(
        "world: %d customers, %d terminals, %.1f terminals per customer, %d without any",
        config.n_customers,
        config.n_terminals,
        terminals.size / config.n_customers,
        int(np.sum(np.diff(offsets) == 0)),
    )
    return World(
        customer_xy=customer_xy,
        mean_amount=mean_amount,
        std_amount=mean_amount / 2,
        mean_nb_tx_per_day=mean_nb_tx_per_day,
        terminal_xy=terminal_xy,
        neighbour_offsets=offsets,
        neighbour_terminals=terminals,
    )
