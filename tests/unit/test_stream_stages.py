"""The stream worker's stages overlap across micro-batches yet keep delivery order.

A fake pipeline and broker (no services): batch 2's commit may start while batch 1's decisions
are still awaiting their publisher confirms, batch 3's beside batch 2's, and batch 4's online
features while both commit, but no third commit starts and the publications and acks still go
out in delivery order.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from storage_support import prediction_record
from vigil.config import BrokerConfig
from vigil.inference.decision import Decision
from vigil.streaming import StreamWorker, TransactionMessage
from vigil.streaming.intake import Delivery


class _Message:
    """An incoming message of one channel, recording its acks in a shared log."""

    channel = object()

    def __init__(self, number: int, log: list[str]) -> None:
        self.number, self._log = number, log

    async def ack(self, multiple: bool = False) -> None:
        self._log.append(f"ack {self.number}")

    async def nack(self, requeue: bool = True) -> None:
        self._log.append(f"nack {self.number}")


class _Pipeline:
    """Records each batch's stages; batch 2's commit can be held."""

    def __init__(self, log: list[str]) -> None:
        self._log = log
        self.hold_commit = {2: asyncio.Event()}
        self.fail_commit: set[int] = set()

    async def record(self, transactions: list[TransactionMessage]) -> list[TransactionMessage]:
        self._log.append(f"record {transactions[0].transaction_id}")
        await asyncio.sleep(0)
        return transactions

    def score_recorded(self, transactions: list[TransactionMessage]) -> Any:
        records = [prediction_record(t.transaction_id) for t in transactions]
        return SimpleNamespace(records=records, models=None)

    async def settle(self, scored: Any, guard: Any) -> list[Decision]:
        (record,) = scored.records
        self._log.append(f"commit {record.transaction_id}")
        held = self.hold_commit.get(record.transaction_id)
        if held is not None:
            await held.wait()
        if record.transaction_id in self.fail_commit:
            raise RuntimeError(f"commit {record.transaction_id} failed")
        return [Decision(record.transaction_id, 0.1, 0, 0.5, (), "m-1")]


class _Exchange:
    """Publications whose confirm for batch 1 waits until released."""

    def __init__(self, log: list[str]) -> None:
        self._log = log
        self.confirm_first = asyncio.Event()

    async def publish(self, message: Any, routing_key: str) -> None:
        number = int(message.body.split(b'"transaction_id":')[1].split(b",")[0])
        self._log.append(f"publish {number}")
        if number == 1:
            await self.confirm_first.wait()


def _delivery(number: int, log: list[str]) -> Delivery:
    tx = TransactionMessage(
        transaction_id=number,
        tx_datetime=datetime(2018, 4, 1, 12),
        customer_id=1,
        terminal_id=2,
        tx_amount=10.0,
    )
    return Delivery(_Message(number, log), [tx], [], batched=False)  # type: ignore[arg-type]


async def _until(condition: Any) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("timed out")


async def test_stages_overlap_across_batches_in_delivery_order() -> None:
    log: list[str] = []
    pipeline, exchange = _Pipeline(log), _Exchange(log)
    worker = StreamWorker(
        BrokerConfig(url="amqp://guest:guest@127.0.0.1:1/"), SimpleNamespace(pipeline=pipeline)
    )
    topology: Any = SimpleNamespace(decisions=exchange, dead_letters={})

    await worker._on_transactions([_delivery(1, log)], topology)
    await asyncio.wait_for(worker._on_transactions([_delivery(2, log)], topology), 2)
    await _until(lambda: "commit 2" in log)  # while batch 1 still awaits its confirm
    assert "ack 1" not in log
    exchange.confirm_first.set()
    await _until(lambda: "ack 1" in log)
    assert "publish 2" not in log  # batch 2 publishes only once committed
    await asyncio.wait_for(worker._on_transactions([_delivery(3, log)], topology), 2)
    await _until(lambda: "commit 3" in log)  # beside batch 2's commit
    fourth = asyncio.create_task(worker._on_transactions([_delivery(4, log)], topology))
    await _until(lambda: "record 4" in log)  # while batches 2 and 3 commit
    await asyncio.sleep(0.05)
    assert "commit 4" not in log and "publish 3" not in log  # two commits at most; in order
    pipeline.hold_commit[2].set()
    await fourth
    await worker._wait_finishing()

    for stage in ("record", "publish", "ack"):
        assert [e for e in log if e.startswith(stage)] == [f"{stage} {n}" for n in (1, 2, 3, 4)]
    assert log.index("ack 2") < log.index("publish 3") and log.index("ack 3") < log.index("ack 4")


async def test_a_failed_commit_is_nacked_before_the_batch_behind_it_is_acked() -> None:
    """Batch 2's commit fails after batch 3's, committing beside it, succeeded: batch 2's
    messages are nacked before batch 3's multiple-ack, which would otherwise cover them."""
    log: list[str] = []
    pipeline, exchange = _Pipeline(log), _Exchange(log)
    exchange.confirm_first.set()
    pipeline.fail_commit = {2}
    worker = StreamWorker(
        BrokerConfig(url="amqp://guest:guest@127.0.0.1:1/"), SimpleNamespace(pipeline=pipeline)
    )
    worker._stopping.set()  # no pause after the nack
    topology: Any = SimpleNamespace(decisions=exchange, dead_letters={})

    await worker._on_transactions([_delivery(1, log)], topology)
    await worker._on_transactions([_delivery(2, log)], topology)
    await worker._on_transactions([_delivery(3, log)], topology)
    await _until(lambda: "commit 3" in log)  # batch 2 still commits
    pipeline.hold_commit[2].set()
    await worker._wait_finishing()
    await _until(lambda: "nack 2" in log)

    assert "ack 2" not in log and "publish 2" not in log
    assert log.index("ack 1") < log.index("nack 2") < log.index("publish 3") < log.index("ack 3")


async def test_a_batch_cancelled_while_waiting_for_a_commit_slot_leaves_that_commit_acked() -> None:
    """Batch 4's stage 1 waits for one of the two commits in flight and is cancelled there
    (shutdown): batch 2, whose commit it was waiting for, still publishes and is acked."""
    log: list[str] = []
    pipeline, exchange = _Pipeline(log), _Exchange(log)
    exchange.confirm_first.set()
    worker = StreamWorker(
        BrokerConfig(url="amqp://guest:guest@127.0.0.1:1/"), SimpleNamespace(pipeline=pipeline)
    )
    topology: Any = SimpleNamespace(decisions=exchange, dead_letters={})

    for number in (1, 2, 3):
        await worker._on_transactions([_delivery(number, log)], topology)
    await _until(lambda: "commit 3" in log)  # batch 2's commit is held
    fourth = asyncio.create_task(worker._on_transactions([_delivery(4, log)], topology))
    await _until(lambda: "record 4" in log)
    await asyncio.sleep(0.01)  # now waiting for a commit slot
    fourth.cancel()
    pipeline.hold_commit[2].set()
    await worker._wait_finishing()

    assert "nack 2" not in log
    assert [e for e in log if e.startswith("ack")] == ["ack 1", "ack 2", "ack 3"]
