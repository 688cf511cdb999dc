"""The transaction simulator: determinism, schema, the handbook's fraud rules, drift, streaming."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vigil.config import DataConfig, DriftConfig
from vigil.data import schema
from vigil.data.io import read_transactions
from vigil.data.simulate import (
    CARD_TESTING,
    COMPROMISED_CUSTOMER,
    COMPROMISED_TERMINAL,
    CUSTOMER_COMPROMISE_DAYS,
    HIGH_AMOUNT,
    TERMINAL_COMPROMISE_DAYS,
    compromised_on,
    generate,
    simulate_transactions,
)
from vigil.data.world import build_world, terminals_within_radius

SMALL = DataConfig(n_customers=300, n_terminals=600, n_days=60, seed=3)


@pytest.fixture(scope="module")
def small_frame() -> pd.DataFrame:
    return simulate_transactions(SMALL)


def day_index(frame: pd.DataFrame, config: DataConfig) -> np.ndarray:
    start = pd.Timestamp(config.start_date)
    return ((frame[schema.TX_DATETIME] - start) // pd.Timedelta(days=1)).to_numpy()


def test_same_seed_gives_identical_frame_and_another_seed_differs(
    small_frame: pd.DataFrame,
) -> None:
    pd.testing.assert_frame_equal(simulate_transactions(SMALL), small_frame)
    other = simulate_transactions(SMALL.model_copy(update={"seed": 4}))
    assert len(other) != len(small_frame) or not other.equals(small_frame)


def test_schema_order_and_labels(small_frame: pd.DataFrame) -> None:
    assert list(small_frame.columns) == list(schema.DTYPES)
    assert {c: str(t) for c, t in small_frame.dtypes.items()} == schema.DTYPES
    ids = small_frame[schema.TRANSACTION_ID].to_numpy()
    np.testing.assert_array_equal(ids, np.arange(len(small_frame)))
    assert small_frame[schema.TX_DATETIME].is_monotonic_increasing
    days = day_index(small_frame, SMALL)
    assert days.min() == 0 and days.max() == SMALL.n_days - 1
    expected_fraud = (small_frame[schema.TX_FRAUD_SCENARIO] > 0).astype("int8")
    pd.testing.assert_series_equal(small_frame[schema.TX_FRAUD], expected_fraud, check_names=False)
    assert (small_frame[schema.TX_AMOUNT] >= 0).all()
    cents = small_frame[schema.TX_AMOUNT] * 100
    np.testing.assert_allclose(cents, cents.round(), atol=1e-6)


def test_every_amount_over_220_is_fraud(small_frame: pd.DataFrame) -> None:
    over = small_frame[schema.TX_AMOUNT] > 220
    assert over.sum() > 0
    assert (small_frame.loc[over, schema.TX_FRAUD] == 1).all()
    high = small_frame[schema.TX_FRAUD_SCENARIO] == HIGH_AMOUNT
    assert (small_frame.loc[high, schema.TX_AMOUNT] > 220).all()


def test_compromised_terminal_makes_every_payment_fraud_for_28_days(
    small_frame: pd.DataFrame,
) -> None:
    world = build_world(SMALL)
    days = day_index(small_frame, SMALL)
    terminals = small_frame[schema.TERMINAL_ID].to_numpy()
    in_window = np.zeros(len(small_frame), dtype=bool)
    for day in range(SMALL.n_days):
        compromised, _ = compromised_on(SMALL, world, day)
        window = (days >= day) & (days < day + TERMINAL_COMPROMISE_DAYS)
        in_window |= window & np.isin(terminals, compromised)
    assert in_window.sum() > 100
    assert (small_frame.loc[in_window, schema.TX_FRAUD] == 1).all()
    scenario_2 = (small_frame[schema.TX_FRAUD_SCENARIO] == COMPROMISED_TERMINAL).to_numpy()
    assert not (scenario_2 & ~in_window).any()


def test_compromised_customer_loses_about_a_third_of_payments_for_14_days(
    small_frame: pd.DataFrame,
) -> None:
    world = build_world(SMALL)
    days = day_index(small_frame, SMALL)
    customers = small_frame[schema.CUSTOMER_ID].to_numpy()
    in_window = np.zeros(len(small_frame), dtype=bool)
    for day in range(SMALL.n_days):
        _, compromised = compromised_on(SMALL, world, day)
        window = (days >= day) & (days < day + CUSTOMER_COMPROMISE_DAYS)
        in_window |= window & np.isin(customers, compromised)
    scenario_3 = (small_frame[schema.TX_FRAUD_SCENARIO] == COMPROMISED_CUSTOMER).to_numpy()
    assert not (scenario_3 & ~in_window).any()
    share = scenario_3.sum() / in_window.sum()
    assert 0.27 < share < 0.40  # expected 1/3 (a few compromised terminals override it)


def test_customers_pay_only_at_terminals_within_radius() -> None:
    # 100 terminals: about 0.8 in reach per customer, so many customers have none.
    config = DataConfig(n_customers=400, n_terminals=100, n_days=20, seed=5)
    frame = simulate_transactions(config)
    world = build_world(config)
    customers = frame[schema.CUSTOMER_ID].to_numpy()
    terminals = frame[schema.TERMINAL_ID].to_numpy()
    distance = np.linalg.norm(world.customer_xy[customers] - world.terminal_xy[terminals], axis=1)
    assert (distance < config.radius).all()
    lonely = np.flatnonzero(world.neighbour_counts == 0)
    assert lonely.size > 100
    assert not np.isin(customers, lonely).any()


def test_neighbourhood_matches_brute_force_with_strict_radius() -> None:
    rng = np.random.default_rng(0)
    customers = np.vstack([[10.0, 10.0], rng.uniform(0, 100, size=(199, 2))])
    terminals = np.vstack([rng.uniform(0, 100, size=(400, 2)), [13.0, 14.0]])  # 3-4-5: exactly r
    offsets, found = terminals_within_radius(customers, terminals, 5.0)
    distance = np.linalg.norm(customers[:, None, :] - terminals[None, :, :], axis=2)
    for c in range(customers.shape[0]):
        expected = np.flatnonzero(distance[c] < 5.0)
        np.testing.assert_array_equal(found[offsets[c] : offsets[c + 1]], expected)
    assert 400 not in found[offsets[0] : offsets[1]]  # exactly r away: not available


def test_small_world_volume_matches_the_handbook_design() -> None:
    # Handbook density (10,000 terminals, r = 5) so every customer has terminals in reach.
    config = DataConfig(n_customers=1000, n_terminals=10_000, n_days=30, seed=1)
    frame = simulate_transactions(config)
    world = build_world(config)
    inside_day = 0.9693  # P(Normal(43200, 20000) in [0, 86400))
    expected = world.mean_nb_tx_per_day.sum() * config.n_days * inside_day
    assert abs(len(frame) / expected - 1) < 0.02
    assert (frame[schema.TX_FRAUD_SCENARIO] == CARD_TESTING).sum() == 0


@pytest.mark.slow
def test_handbook_world_matches_the_published_dataset(tmp_path: Path) -> None:
    """Handbook: 1,754,155 transactions, 0.837 % fraud (5,000 customers, 10,000 terminals)."""
    summary = generate(DataConfig(seed=0), tmp_path / "raw", progress=False)
    assert 1_700_000 < summary.rows < 1_810_000
    assert 0.0070 < summary.fraud_rate < 0.0100
    assert set(summary.frauds_by_scenario) == {1, 2, 3}
    assert summary.frauds_by_scenario[2] > summary.frauds_by_scenario[3]
    assert summary.frauds_by_scenario[3] > summary.frauds_by_scenario[1]


def drifted(scenario: str, start_day: int = 30, strength: float = 2.0) -> DataConfig:
    drift = DriftConfig(scenario=scenario, start_day=start_day, strength=strength)
    return SMALL.model_copy(update={"drift": drift})


@pytest.mark.parametrize("scenario", ["new_fraud_pattern", "amount_inflation", "customer_shift"])
def test_drift_changes_the_data_only_from_start_day(
    small_frame: pd.DataFrame, scenario: str
) -> None:
    frame = simulate_transactions(drifted(scenario))
    before = small_frame[day_index(small_frame, SMALL) < 30]
    pd.testing.assert_frame_equal(frame[day_index(frame, SMALL) < 30], before)
    after = frame[day_index(frame, SMALL) >= 30].reset_index(drop=True)
    baseline_after = small_frame[day_index(small_frame, SMALL) >= 30].reset_index(drop=True)
    assert not after.equals(baseline_after)


def test_amount_inflation_scales_genuine_amounts(small_frame: pd.DataFrame) -> None:
    frame = simulate_transactions(drifted("amount_inflation"))
    genuine = frame[(frame[schema.TX_FRAUD] == 0) & (day_index(frame, SMALL) >= 30)]
    base = small_frame[(small_frame[schema.TX_FRAUD] == 0) & (day_index(small_frame, SMALL) >= 30)]
    # Same draws times 2, but inflated amounts above 220 become scenario-1 frauds: compare medians.
    ratio = genuine[schema.TX_AMOUNT].median() / base[schema.TX_AMOUNT].median()
    assert 1.7 < ratio < 2.1


def test_new_fraud_pattern_adds_small_card_testing_frauds() -> None:
    frame = simulate_transactions(drifted("new_fraud_pattern"))
    testing = frame[frame[schema.TX_FRAUD_SCENARIO] == CARD_TESTING]
    assert len(testing) > 50
    assert (day_index(testing, SMALL) >= 30).all()
    assert (testing[schema.TX_FRAUD] == 1).all()
    assert testing[schema.TX_AMOUNT].between(0.5, 5.0).all()


def test_customer_shift_moves_payments_to_the_night(small_frame: pd.DataFrame) -> None:
    frame = simulate_transactions(drifted("customer_shift"))

    def night_share(f: pd.DataFrame) -> float:
        late = f[day_index(f, SMALL) >= 30]
        return float((late[schema.TX_DATETIME].dt.hour < 6).mean())

    assert night_share(frame) > night_share(small_frame) + 0.2
    late_rows = (day_index(frame, SMALL) >= 30).sum()
    assert late_rows > 1.5 * (day_index(small_frame, SMALL) >= 30).sum()


def test_generate_streams_day_partitions_equal_to_the_in_memory_frame(tmp_path: Path) -> None:
    config = SMALL.model_copy(update={"n_days": 15})
    expected = simulate_transactions(config)
    out = tmp_path / "raw"
    summary = generate(config, out, csv=True, progress=False)
    partitions = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.parquet"))
    assert len(partitions) == config.n_days
    assert partitions[0] == "tx_date=2018-04-01/part-0.parquet"
    assert summary.rows == len(expected)
    assert summary.frauds == int(expected[schema.TX_FRAUD].sum())
    assert summary.fraud_rate == pytest.approx(expected[schema.TX_FRAUD].mean())
    pd.testing.assert_frame_equal(read_transactions(out), expected)
    assert summary.csv_path is not None
    pd.testing.assert_frame_equal(read_transactions(summary.csv_path), expected)


def test_generate_refuses_to_mix_with_existing_partitions(tmp_path: Path) -> None:
    config = SMALL.model_copy(update={"n_days": 3})
    generate(config, tmp_path, progress=False)
    with pytest.raises(FileExistsError, match="partition"):
        generate(config, tmp_path, progress=False)
    shorter = config.model_copy(update={"n_days": 2})
    summary = generate(shorter, tmp_path, progress=False, overwrite=True)
    assert len(list(tmp_path.glob("tx_date=*"))) == 2
    assert summary.rows == len(read_transactions(tmp_path))
