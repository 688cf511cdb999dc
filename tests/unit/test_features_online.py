"""Online computer and in-memory store: contract, idempotency, batches, async, trimming."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from vigil.config import FeaturesConfig
from vigil.features import definitions as fd
from vigil.features.offline import compute_features_frame
from vigil.features.online import OnlineFeatureComputer
from vigil.features.state import InMemoryStateStore, Transaction, make_state_store

CONFIG = FeaturesConfig()
T0 = datetime(2018, 4, 2, 12, 0, 0)
NAMES = fd.feature_names(CONFIG)


def tx(tx_id: int, hours: float, customer: int = 1, terminal: int = 7, amount: float = 10.0):
    return Transaction(tx_id, T0 + timedelta(hours=hours), customer, terminal, amount)


def computer(dtype: type = np.float64) -> OnlineFeatureComputer:
    return OnlineFeatureComputer(CONFIG, InMemoryStateStore(), dtype=dtype)


def value(vector: np.ndarray, name: str) -> float:
    return float(vector[NAMES.index(name)])


def test_vector_contract_and_mapping_input() -> None:
    online = OnlineFeatureComputer(CONFIG, make_state_store("memory://"))
    vector = online.features_for(
        {
            "transaction_id": 1,
            "tx_datetime": "2018-04-02T12:00:00",
            "customer_id": 3,
            "terminal_id": 4,
            "tx_amount": 12.5,
            "extra": "passes through",
        }
    )
    assert vector.dtype == np.float32
    assert vector.shape == (len(NAMES),)
    assert value(vector, fd.TX_AMOUNT) == 12.5


def test_same_transaction_twice_is_counted_once() -> None:
    online = computer()
    first = online.features_for(tx(1, 0))
    again = online.features_for(tx(1, 0))
    later = online.features_for(tx(2, 1, amount=30.0))
    np.testing.assert_array_equal(first, again)
    assert value(later, fd.customer_nb_tx(1)) == 2
    assert value(later, fd.customer_avg_amount(1)) == 20.0


def test_id_replayed_at_an_earlier_time_gives_finite_features() -> None:
    online = computer()
    online.features_for(tx(1, 48))
    replay = online.features_for(tx(1, 0))  # same id, two days earlier: first recording kept
    assert np.isfinite(replay).all()
    assert value(replay, fd.customer_nb_tx(1)) == 0
    assert value(replay, fd.customer_avg_amount(1)) == 0.0


def test_labels_are_idempotent_and_respect_the_delay() -> None:
    online = computer()
    online.features_for(tx(1, 0, customer=1))
    online.features_for(tx(2, 1, customer=2))
    for _ in range(2):  # the same label twice changes nothing
        online.add_label(1, 1, 7, T0, True)
    online.add_label(2, 2, 7, T0 + timedelta(hours=1), False)
    at_delay = online.features_for(tx(3, 7 * 24 + 1, customer=3))
    assert value(at_delay, fd.terminal_nb_tx(1)) == 2
    assert value(at_delay, fd.terminal_risk(1)) == 0.5


def test_label_for_unknown_transaction_changes_nothing() -> None:
    online = computer()
    online.add_label(99, 1, 7, T0, True)
    vector = online.features_for(tx(3, 7 * 24, customer=3))
    assert value(vector, fd.terminal_nb_tx(1)) == 0
    assert value(vector, fd.terminal_risk(1)) == 0


def test_batch_equals_one_by_one() -> None:
    stream = [tx(i, i * 5.5, customer=i % 3, terminal=i % 2, amount=i + 1.0) for i in range(40)]
    one_by_one = computer()
    expected = np.vstack([one_by_one.features_for(t) for t in stream])
    np.testing.assert_array_equal(computer().features_for_batch(stream), expected)


async def test_async_variants_match_sync() -> None:
    sync, asynchronous = computer(), computer()
    stream = [tx(i, i * 30.0, terminal=1) for i in range(12)]
    for t in stream[:6]:
        sync.features_for(t)
        await asynchronous.arecord_batch([t])
        sync.add_label(t.transaction_id, 1, 1, t.tx_datetime, True)
        await asynchronous.aadd_label(t.transaction_id, 1, 1, t.tx_datetime, True)
    expected = sync.features_for_batch(stream[6:])
    got = (await asynchronous.arecord_batch(stream[6:])).features
    np.testing.assert_array_equal(got, expected)
    assert value(got[-1], fd.terminal_risk(30)) == 1.0


def test_state_is_trimmed_to_longest_window_plus_delay() -> None:
    store = InMemoryStateStore()
    online = OnlineFeatureComputer(CONFIG, store)
    online.features_for(tx(1, 0))
    online.features_for(tx(2, 24 * 37 + 1))
    # one event alone never evicts: the line moves only up to the newest earlier event
    assert list(store._customers[1].amounts) == [1, 2]
    online.features_for(tx(3, 24 * 37 + 2))
    assert list(store._customers[1].amounts) == [2, 3]
    assert list(store._terminals[7].amounts) == [2, 3]


def test_bad_input_raises_clear_errors() -> None:
    online = computer()
    with pytest.raises(ValueError, match="lacks field 'terminal_id'"):
        online.features_for({"transaction_id": 1, "tx_datetime": T0, "customer_id": 1})
    with pytest.raises(ValueError, match="non-finite amount"):
        online.features_for(tx(1, 0, amount=float("nan")))
    with pytest.raises(ValueError, match="unknown state store URL"):
        make_state_store("postgres://nope")
    with pytest.raises(ValueError, match="label_delay_days"):
        OnlineFeatureComputer(FeaturesConfig(label_delay_days=0), InMemoryStateStore())


def test_silent_customers_and_terminals_are_swept() -> None:
    store = InMemoryStateStore(sweep_every=2)
    online = OnlineFeatureComputer(CONFIG, store)
    online.features_for(tx(1, 0, customer=1, terminal=1))
    online.features_for(tx(2, 24 * 40, customer=2, terminal=2))  # second record: sweep
    assert set(store._customers) == {2}
    assert set(store._terminals) == {2}


def test_time_zone_aware_input_matches_offline_utc() -> None:
    moment = pd.Timestamp("2018-04-07 01:30:00", tz="Europe/Paris")  # Friday 23:30 UTC
    row = {"transaction_id": 1, "tx_datetime": moment, "customer_id": 1, "terminal_id": 1}
    row["tx_amount"] = 5.0
    online = computer().features_for(row)
    offline = compute_features_frame(CONFIG, pd.DataFrame([row]))[NAMES].to_numpy()[0]
    np.testing.assert_array_equal(online, offline)
    assert value(online, fd.TX_DURING_WEEKEND) == 0.0
    assert value(online, fd.TX_DURING_NIGHT) == 0.0
