"""Event time is untrusted: no single event's time may evict the history of the others.

Both stores (in-process and Redis) are checked against a control card that never saw the
outlier: the next transaction must get exactly the control's features.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

import numpy as np
import pytest

from vigil.config import FeaturesConfig
from vigil.features import definitions as fd
from vigil.features.online import OnlineFeatureComputer
from vigil.features.state import InMemoryStateStore, StateStore, Transaction, make_state_store

pytestmark = pytest.mark.integration

CONFIG = FeaturesConfig()
T0 = datetime(2018, 9, 1, 12)


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[StateStore]:
    if request.param == "memory":
        yield InMemoryStateStore()
        return
    url = request.getfixturevalue("redis_url")
    redis_store = make_state_store(url, prefix=f"vigil:test:outlier:{uuid.uuid4().hex[:8]}")
    yield redis_store
    redis_store.close()


def history(customer: int, terminal: int, first_id: int) -> list[Transaction]:
    """Ten transactions over ten days (the customer) at a terminal with ten more of others."""
    own = [
        Transaction(first_id + i, T0 + timedelta(days=i), customer, terminal, 20.0 + i)
        for i in range(10)
    ]
    others = [
        Transaction(first_id + 100 + i, T0 + timedelta(days=i, hours=1), 10_000 + i, terminal, 5.0)
        for i in range(10)
    ]
    return sorted(own + others, key=lambda tx: tx.tx_datetime)


@pytest.mark.parametrize(
    "outlier_time",
    [datetime(9999, 12, 31, 23, 59, 59), T0 + timedelta(days=400)],
    ids=["year-9999", "next-year"],
)
def test_an_outlying_event_time_does_not_evict_history(
    store: StateStore, outlier_time: datetime
) -> None:
    online = OnlineFeatureComputer(CONFIG, store)
    online.features_for_batch(history(1, 1, 0))  # the card under attack
    online.features_for_batch(history(2, 2, 1000))  # its control twin
    online.features_for(Transaction(999, outlier_time, 1, 1, 1.0))
    probe = T0 + timedelta(days=10)
    attacked = online.features_for(Transaction(500, probe, 1, 1, 900.0))
    control = online.features_for(Transaction(1500, probe, 2, 2, 900.0))
    np.testing.assert_array_equal(attacked, control)
    names = fd.feature_names(CONFIG)
    assert attacked[names.index(fd.customer_nb_tx(30))] == 11  # ten kept, plus this one


def test_a_late_event_is_counted_without_disturbing_newer_history(store: StateStore) -> None:
    online = OnlineFeatureComputer(CONFIG, store)
    online.features_for_batch(history(1, 1, 0))
    late = online.features_for(Transaction(777, T0 + timedelta(days=2, hours=5), 1, 1, 3.0))
    names = fd.feature_names(CONFIG)
    assert late[names.index(fd.customer_nb_tx(30))] == 4  # days 0, 1, 2 and itself
    after = online.features_for(Transaction(778, T0 + timedelta(days=10), 1, 1, 3.0))
    assert after[names.index(fd.customer_nb_tx(30))] == 12  # ten, the late one, itself


async def test_forget_removes_a_recorded_transaction(store: StateStore) -> None:
    online = OnlineFeatureComputer(CONFIG, store)
    online.features_for_batch(history(1, 1, 0))
    names = fd.feature_names(CONFIG)
    count = names.index(fd.customer_nb_tx(30))
    refused = Transaction(900, T0 + timedelta(days=9, hours=2), 1, 1, 5000.0)
    recorded = (await online.arecord_batch([refused])).recorded
    assert recorded == [refused]
    await online.aforget(recorded)
    await store.aclose()
    probe = online.features_for(Transaction(901, T0 + timedelta(days=10), 1, 1, 3.0))
    assert probe[count] == 11
    avg = probe[names.index(fd.customer_avg_amount(30))]
    assert avg == pytest.approx((sum(20.0 + i for i in range(10)) + 3.0) / 11)
