"""Idempotency on ``transaction_id`` (issue 12): a repeated id gets the stored decision back.

On SQLite and PostgreSQL (a private schema): a repeat with the same payload is answered with
the decision stored first (same score, label, threshold, reason features, model version) and
is neither recorded again in the online state nor stored again; a repeat with another payload
is a conflict (409 on the API); repeats inside one batch and in concurrent batches wait for
the first decision; a Hypothesis property checks any sequence of repeated ids.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from api_support import API_KEY, api_settings, make_manager, transaction, write_model
from conftest import private_pg_schema, require_service
from vigil.config import Settings
from vigil.data.transaction import TransactionFields
from vigil.decisions import Replayed, Runtime, TransactionConflict
from vigil.features import InMemoryStateStore
from vigil.features.state import Aggregates, Transaction, WindowSpec, _History
from vigil.inference.decision import Decision
from vigil.serving import create_app
from vigil.storage import PredictionRecord, RecordRejected, create_db_engine, upgrade_database
from vigil.storage.repository import fetch_records


class CountingStore(InMemoryStateStore):
    """The in-process state store, remembering every transaction id handed to it to record."""

    def __init__(self) -> None:
        super().__init__()
        self.recorded_ids: list[int] = []

    async def arecord(self, txs: Sequence[Transaction], spec: WindowSpec) -> list[Aggregates]:
        self.recorded_ids += [tx.transaction_id for tx in txs]
        await asyncio.sleep(0.001)  # a round trip: lets concurrent batches interleave
        return await super().arecord(txs, spec)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'vigil.db'}"
        return
    from conftest import POSTGRES_URL

    require_service("PostgreSQL", "127.0.0.1", 5432)
    with private_pg_schema(POSTGRES_URL, "vigil_idem") as url:
        yield url


@pytest.fixture
def settings(small_settings: Settings, database_url: str, tmp_path: Path) -> Settings:
    storage = small_settings.storage.model_copy(update={"database_url": database_url})
    base = api_settings(small_settings.model_copy(update={"storage": storage}))
    write_model(base, tmp_path / "a.onnx", "model-a")
    write_model(base, tmp_path / "b.onnx", "model-b", bias=3.0)  # scores differ from model-a
    upgrade_database(database_url)
    return base


def stored(settings: Settings, ids: Sequence[int]) -> dict[int, PredictionRecord]:
    engine = create_db_engine(settings.storage.database_url)
    try:
        with engine.connect() as connection:
            return {r.transaction_id: r for r in fetch_records(connection, ids)}
    finally:
        engine.dispose()


def fields(
    tid: int, amount: float = 57.16, customer: int = 2513, terminal: int = 7438
) -> TransactionFields:
    return TransactionFields(
        transaction_id=tid,
        tx_datetime=datetime(2018, 9, 30, 23, 56, 36),
        customer_id=customer,
        terminal_id=terminal,
        tx_amount=amount,
    )


_EMPTY = _History()


def build_runtime(settings: Settings, tmp_path: Path, store: CountingStore) -> Runtime:
    models = make_manager(settings, tmp_path / "a.onnx")
    return Runtime.build(settings, "api", migrate=False, models=models, state=store)


def same_decision(answer: object, record: PredictionRecord) -> None:
    """``answer`` (a new decision or a replay) is exactly the stored decision."""
    if isinstance(answer, Replayed):
        answer = answer.record
    assert isinstance(answer, Decision | PredictionRecord), answer
    assert (answer.score, answer.label, answer.threshold, answer.model_version) == (
        record.score,
        record.label,
        record.threshold,
        record.model_version,
    )


# --- the pipeline: what the API and the worker share -------------------------------------


async def test_a_repeat_gets_the_stored_decision_even_after_a_model_swap(
    settings: Settings, tmp_path: Path
) -> None:
    store = CountingStore()
    runtime = build_runtime(settings, tmp_path, store)
    try:
        (first,) = await runtime.pipeline.process([fields(1)])
        runtime.models.deploy(tmp_path / "b.onnx")  # a new model would score it differently
        (again,) = await runtime.pipeline.process([fields(1)])
        (other,) = await runtime.pipeline.process([fields(2)])
    finally:
        await runtime.close()
    assert isinstance(first, Decision) and isinstance(again, Replayed)
    record = stored(settings, [1])[1]
    same_decision(first, record)
    same_decision(again, record)
    assert record.model_version == "model-a" and isinstance(other, Decision)
    assert other.model_version == "model-b" and other.score != first.score
    assert again.record.reason_codes == [r.feature for r in first.reason_codes]
    assert store.recorded_ids == [1, 2], "a repeat must not reach the online state"


async def test_duplicates_in_one_batch_and_a_conflict(settings: Settings, tmp_path: Path) -> None:
    store = CountingStore()
    runtime = build_runtime(settings, tmp_path, store)
    try:
        batch = [fields(5), fields(5), fields(6), fields(5, amount=99.0), fields(6, customer=1)]
        outcomes = await runtime.pipeline.process(batch)
        later = await runtime.pipeline.process([fields(6), fields(5, amount=12.5)])
    finally:
        await runtime.close()
    rows = stored(settings, [5, 6])
    assert isinstance(outcomes[0], Decision) and isinstance(outcomes[2], Decision)
    assert isinstance(outcomes[1], Replayed)
    same_decision(outcomes[1], rows[5])
    assert isinstance(outcomes[3], TransactionConflict) and outcomes[3].fields == ["tx_amount"]
    assert isinstance(outcomes[4], TransactionConflict) and outcomes[4].fields == ["customer_id"]
    assert isinstance(later[0], Replayed) and isinstance(later[1], TransactionConflict)
    assert rows[5].tx_amount == 57.16 and rows[6].customer_id == 2513  # the first one stands
    assert store.recorded_ids == [5, 6]


async def test_concurrent_batches_decide_an_id_once(settings: Settings, tmp_path: Path) -> None:
    store = CountingStore()
    runtime = build_runtime(settings, tmp_path, store)
    try:
        batches = [[fields(10), fields(11 + n)] for n in range(6)]
        results = await asyncio.gather(*(runtime.pipeline.process(b) for b in batches))
    finally:
        await runtime.close()
    firsts = [outcomes[0] for outcomes in results]
    assert sum(isinstance(o, Decision) for o in firsts) == 1
    assert sum(isinstance(o, Replayed) for o in firsts) == 5
    record = stored(settings, [10])[10]
    for outcome in firsts:
        same_decision(outcome, record)
    assert sorted(store.recorded_ids) == list(range(10, 17))


async def test_a_refused_first_refuses_its_waiting_repeats(
    settings: Settings, tmp_path: Path
) -> None:
    """The database refuses the first of an id: a repeat in flight gets the same refusal."""
    runtime = build_runtime(settings, tmp_path, CountingStore())
    persist = runtime.pipeline._persist

    async def refuse_20(records: Sequence[PredictionRecord]) -> list[RecordRejected | None]:
        await asyncio.sleep(0.01)
        kept = [r for r in records if r.transaction_id != 20]
        done = iter(await persist(kept))
        return [
            RecordRejected(20, "test") if r.transaction_id == 20 else next(done) for r in records
        ]

    runtime.pipeline._persist = refuse_20
    try:
        first, second = await asyncio.gather(
            runtime.pipeline.process([fields(20), fields(21)]),
            runtime.pipeline.process([fields(20)]),
        )
    finally:
        await runtime.close()
    assert isinstance(first[0], RecordRejected) and isinstance(second[0], RecordRejected)
    assert isinstance(first[1], Decision)
    assert set(stored(settings, [20, 21])) == {21}


async def test_new_ids_cost_no_look_up_and_a_retry_is_looked_up_first(
    settings: Settings, tmp_path: Path
) -> None:
    """The common case (new ids) pays no database round trip before its decision; a repeat of
    an id this process stored is looked up before it reaches the online state."""
    store = CountingStore()
    runtime = build_runtime(settings, tmp_path, store)
    looked_up: list[list[int]] = []
    lookup = runtime.pipeline._lookup

    async def counting(ids: Sequence[int]) -> list[PredictionRecord]:
        looked_up.append(list(ids))
        return await lookup(ids)

    runtime.pipeline._lookup = counting
    try:
        first = await runtime.pipeline.process([fields(50), fields(51), fields(52)])
        again = await runtime.pipeline.process([fields(53), fields(51)])
    finally:
        await runtime.close()
    assert all(isinstance(o, Decision) for o in first) and isinstance(again[0], Decision)
    assert isinstance(again[1], Replayed)
    assert looked_up == [[51]], "only the id seen stored is looked up, once"
    assert store.recorded_ids == [50, 51, 52, 53]


async def test_after_a_restart_the_insert_finds_a_stored_id(
    settings: Settings, tmp_path: Path
) -> None:
    """A process that never saw an id stored decides it, and the insert answers the stored
    decision; another payload is a conflict whose online-state entries are undone, the
    stored transaction's kept."""
    store = CountingStore()  # the online state outlives the process, as Redis does
    first = build_runtime(settings, tmp_path, store)
    try:
        stored_first = await first.pipeline.process([fields(55), fields(56), fields(57)])
    finally:
        await first.close()
    runtime = build_runtime(settings, tmp_path, store)  # restarted: nothing seen stored
    try:
        outcomes = await runtime.pipeline.process(
            [fields(55), fields(56, customer=9), fields(57, terminal=4)]
        )
    finally:
        await runtime.close()
    rows = stored(settings, [55, 56, 57])
    assert isinstance(outcomes[0], Replayed)
    same_decision(outcomes[0], rows[55])
    same_decision(stored_first[0], rows[55])
    assert isinstance(outcomes[1], TransactionConflict) and outcomes[1].fields == ["customer_id"]
    assert isinstance(outcomes[2], TransactionConflict) and outcomes[2].fields == ["terminal_id"]
    assert 56 not in store._customers.get(9, _EMPTY).amounts, "the conflict's entry is undone"
    assert 57 not in store._terminals.get(4, _EMPTY).amounts, "the conflict's terminal too"
    for tid in (55, 56, 57):  # the stored transactions stay in their histories
        assert store._customers[2513].amounts[tid] == 57.16
        assert tid in store._terminals[7438].amounts


async def test_two_processes_deciding_one_new_id_at_once_answer_the_stored_one(
    settings: Settings, tmp_path: Path
) -> None:
    """Two pipelines (two API replicas) decide one new id at once: the insert tells the loser."""
    stores = [CountingStore(), CountingStore()]
    runtimes = [build_runtime(settings, tmp_path, store) for store in stores]

    async def race(first: TransactionFields, second: TransactionFields) -> list[list[object]]:
        """Both decide before either stores."""
        scored = [
            await r.pipeline.score([t]) for r, t in zip(runtimes, (first, second), strict=True)
        ]
        return list(
            await asyncio.gather(
                *(r.pipeline.settle(s) for r, s in zip(runtimes, scored, strict=True))
            )
        )

    try:
        same = await race(fields(40), fields(40))
        other = await race(fields(41), fields(41, customer=9))
    finally:
        for runtime in runtimes:
            await runtime.close()
    rows = stored(settings, [40, 41])
    assert sorted(type(o[0]).__name__ for o in same) == ["Decision", "Replayed"]
    for (outcome,) in same:
        same_decision(outcome, rows[40])
    kinds = sorted(type(o[0]).__name__ for o in other)
    assert kinds == ["Decision", "TransactionConflict"]
    loser = 1 if rows[41].customer_id == 2513 else 0
    loser_customer = 9 if loser == 1 else 2513
    assert isinstance(other[loser][0], TransactionConflict)
    history = stores[loser]._customers.get(loser_customer)
    assert history is None or 41 not in history.amounts, "the loser's state entry is undone"
    winner_history = stores[1 - loser]._customers[rows[41].customer_id]
    assert 41 in winner_history.amounts


async def test_a_racing_loser_that_recorded_first_leaves_the_winner_in_the_state(
    settings: Settings, tmp_path: Path
) -> None:
    """Two processes sharing the online state race on one new id with another amount for the
    same customer: the loser recorded it first (the winner's record added nothing), so its
    undo must leave the winner's transaction in the customer's history."""
    state = CountingStore()  # shared, as Redis is between processes
    loser, winner = (build_runtime(settings, tmp_path, state) for _ in range(2))
    try:
        lost = await loser.pipeline.score([fields(45, amount=10.0)])
        won = await winner.pipeline.score([fields(45, amount=20.0)])
        (decided,) = await winner.pipeline.settle(won)
        (conflict,) = await loser.pipeline.settle(lost)
    finally:
        await loser.close()
        await winner.close()
    assert isinstance(decided, Decision) and isinstance(conflict, TransactionConflict)
    assert stored(settings, [45])[45].tx_amount == 20.0
    assert state._customers[2513].amounts.get(45) == 20.0, "the stored transaction stays"
    assert 45 in state._terminals[7438].amounts


# --- the API ------------------------------------------------------------------------------


@pytest.fixture
def client(settings: Settings, tmp_path: Path) -> Iterator[tuple[TestClient, CountingStore]]:
    store = CountingStore()
    models = make_manager(settings, tmp_path / "a.onnx")
    app = create_app(settings, model_manager=models, state_store=store)  # real group commit
    with TestClient(app, raise_server_exceptions=False) as c:
        c.headers["X-API-Key"] = API_KEY
        yield c, store


def test_api_answers_a_repeat_with_the_stored_decision(
    client: tuple[TestClient, CountingStore], settings: Settings
) -> None:
    http, store = client
    first = http.post("/predict", json=transaction(31, amount=250.0))
    again = http.post("/predict", json=transaction(31, amount=250.0, note="retry"))
    assert first.status_code == again.status_code == 200
    a, b = first.json(), again.json()
    assert {k: a[k] for k in ("score", "label", "threshold", "model_version")} == {
        k: b[k] for k in ("score", "label", "threshold", "model_version")
    }
    assert [r["feature"] for r in b["reason_codes"]] == [r["feature"] for r in a["reason_codes"]]
    assert all(r["contribution"] is None for r in b["reason_codes"]) and b["reason_codes"]
    assert store.recorded_ids == [31]
    assert stored(settings, [31])[31].extra is None  # the first request's (no extras) stands


def test_api_answers_409_for_a_reused_id_with_another_payload(
    client: tuple[TestClient, CountingStore], settings: Settings
) -> None:
    http, store = client
    assert http.post("/predict", json=transaction(32)).status_code == 200
    changed = transaction(32, tx_datetime="2018-09-30T23:59:00", terminal_id=1)
    conflict = http.post("/predict", json=changed)
    assert conflict.status_code == 409
    detail = conflict.json()["detail"]
    assert "32" in detail and "tx_datetime" in detail and "terminal_id" in detail
    assert "request_id" in conflict.json()
    record = stored(settings, [32])[32]
    assert (record.terminal_id, record.tx_datetime) == (7438, datetime(2018, 9, 30, 23, 56, 36))
    assert store.recorded_ids == [32]


def test_api_documents_the_409(client: tuple[TestClient, CountingStore]) -> None:
    http, _ = client
    responses = http.get("/openapi.json").json()["paths"]["/predict"]["post"]["responses"]
    assert "409" in responses and "different payload" in responses["409"]["description"]


# --- the property: any sequence of requests with repeated ids ---------------------------

_ids = itertools.count(1_000)
VARIANTS = [(57.16, 2513), (57.16, 2513), (57.16, 2513), (12.0, 2513), (57.16, 77)]


@st.composite
def request_batches(draw: st.DrawFn) -> list[list[tuple[int, int]]]:
    """Batches of (id slot, payload variant); variants 0-2 are the same payload."""
    items = draw(
        st.lists(st.tuples(st.integers(0, 5), st.integers(0, len(VARIANTS) - 1)), max_size=24)
    )
    cuts = sorted(draw(st.lists(st.integers(0, len(items)), max_size=5)))
    bounds = [0, *cuts, len(items)]
    return [items[a:b] for a, b in itertools.pairwise(bounds)]


@hypothesis_settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batches=request_batches(), wave=st.integers(0, 6))
def test_any_sequence_of_repeated_ids_stores_one_decision_per_id(
    settings: Settings, tmp_path: Path, batches: list[list[tuple[int, int]]], wave: int
) -> None:
    """Two waves of concurrent batches (the second finds the first's ids stored); every
    answer is the stored decision, or a conflict with it."""
    base = next(_ids) * 10  # fresh ids per example, one database for all examples
    asked = [[(base + slot, variant) for slot, variant in batch] for batch in batches]

    async def run() -> tuple[list[list[object]], CountingStore]:
        store = CountingStore()
        runtime = build_runtime(settings, tmp_path, store)
        try:
            requests = [[fields(t, *VARIANTS[v]) for t, v in batch] for batch in asked]
            first = await asyncio.gather(*(runtime.pipeline.process(r) for r in requests[:wave]))
            then = await asyncio.gather(*(runtime.pipeline.process(r) for r in requests[wave:]))
            results = [*first, *then]
        finally:
            await runtime.close()
        return [list(r) for r in results], store

    results, store = asyncio.run(run())
    ids = {t for batch in asked for t, _ in batch}
    rows = stored(settings, sorted(ids))
    assert set(rows) == ids, "exactly one stored decision per id"
    assert sorted(store.recorded_ids) == sorted(ids), "each id recorded in the state once"
    for batch, outcomes in zip(asked, results, strict=True):
        for (tid, variant), outcome in zip(batch, outcomes, strict=True):
            amount, customer = VARIANTS[variant]
            record = rows[tid]
            if (record.tx_amount, record.customer_id) == (amount, customer):
                same_decision(outcome, record)
            else:
                assert isinstance(outcome, TransactionConflict), outcome
