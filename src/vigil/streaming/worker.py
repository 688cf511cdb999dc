"""The stream worker: transactions in, decisions out, labels fed back; nothing lost or doubled.

An adapter of the decision pipeline (:mod:`vigil.decisions`) for AMQP. Per micro-batch: read
the deliveries (poison to the dead-letter queue with the reason), the pipeline's online
features and decisions, one database commit (the pipeline's persistence hand-off), decisions
published with publisher confirms, and only then one multiple-ack. The stages overlap across
micro-batches: while batch k publishes and acks, batches k+1 and k+2 are decided and commit
(two commits at once) and batch k+3 gets its online features; the online state, the
publications and the acks follow delivery order, one batch at a time. A crash
anywhere before the ack means redelivery, which is harmless: the pipeline decides a
``transaction_id`` once, so a redelivered or repeated transaction republishes the stored
decision without touching the online state, and one whose id is stored with another payload
is dead-lettered (reason ``conflict``; the stored decision stands). Database or Redis outages
are retried with backoff while the messages stay unacked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from pydantic import ValidationError

from vigil.config import BrokerConfig
from vigil.decisions import PendingBatch, Replayed, Runtime, TransactionConflict
from vigil.inference.decision import Decision
from vigil.inference.manager import ModelSnapshot
from vigil.monitoring import VigilMetrics
from vigil.monitoring.prometheus import observe_many
from vigil.storage import LabelRecord, RecordRejected
from vigil.streaming.batching import DeliveryBatcher
from vigil.streaming.intake import Delivery, Rejected, read_delivery, validation_reason
from vigil.streaming.messages import LabelMessage, TransactionMessage
from vigil.streaming.outbox import (
    DecisionFields,
    dead_letter_copy,
    decision_fields,
    decision_publications,
)
from vigil.streaming.partitions import PartitionOwner
from vigil.streaming.retry import ShuttingDown, retry_transient
from vigil.streaming.topology import Topology, declare_topology

T = TypeVar("T")
log = logging.getLogger(__name__)
COMMITS_IN_FLIGHT = 2
"""Micro-batches committing at once: the decision store's connections; their write-ahead log
flushes can share one ``fsync`` instead of queueing one behind the other."""


@dataclass(frozen=True, slots=True)
class _Scored:
    """A micro-batch after stage 1 (online features), row-aligned with its transactions."""

    deliveries: list[Delivery]
    transactions: list[TransactionMessage]
    origins: list[tuple[Delivery, int]]  # each transaction's delivery and place in it
    batched: list[bool]
    pending: PendingBatch | None


@dataclass(frozen=True, slots=True)
class _Settled:
    """A micro-batch after stage 2 (committed): its publications and dead letters."""

    decisions: list[DecisionFields]
    batched: list[bool]  # per decision: whether it came in an envelope
    refused: list[tuple[AbstractIncomingMessage, Rejected, str]]


class StreamWorker:
    """Consumes ``transactions`` and ``labels`` until asked to stop, then drains."""

    def __init__(
        self,
        broker: BrokerConfig,
        runtime: Runtime,
        metrics: VigilMetrics | None = None,
        batch_wait_ms: float = 5.0,
    ) -> None:
        if broker.url is None:
            raise ValueError("the stream worker needs broker.url (RabbitMQ)")
        self._broker = broker
        self._runtime = runtime
        self._pipeline = runtime.pipeline
        self._metrics = metrics
        self._shown_models: ModelSnapshot | None = None
        self._batch_wait_ms = batch_wait_ms
        self._stopping = asyncio.Event()
        self._finishing: asyncio.Task[None] | None = None  # the newest batch's stages 2-3
        self._commits: deque[asyncio.Future[None]] = deque()  # commits started, oldest first
        self._unfinished: set[asyncio.Task[None]] = set()
        # transaction micro-batches taken, and those acked or nacked since (they settle in order)
        self._taken = self._settled = 0
        self._progress = asyncio.Event()
        self.partitions: PartitionOwner | None = None  # with broker.partitions > 0
        self.ready = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; then finish every delivered message and disconnect."""
        assert self._broker.url is not None
        connection = await aio_pika.connect_robust(self._broker.url)
        if self._metrics is not None:  # down while the robust connection reconnects
            self._metrics.broker_connected.set_function(
                lambda: 1 if connection.connected.is_set() else 0
            )
        try:
            await self._consume(connection, stop)
        finally:
            for task in list(self._unfinished):  # cancelled mid-stream: messages stay unacked
                task.cancel()
            await connection.close()

    async def _consume(self, connection: AbstractRobustConnection, stop: asyncio.Event) -> None:
        tx_topology = await self._open(connection)
        label_topology = await self._open(connection)
        size, wait = self._broker.batch_size, self._batch_wait_ms
        tx_batcher = DeliveryBatcher[Delivery](
            lambda batch: self._on_transactions(batch, tx_topology), size, wait, _delivery_size
        )
        label_batcher = DeliveryBatcher[AbstractIncomingMessage](
            lambda batch: self._guarded(batch, self._handle_labels(batch, label_topology)),
            size,
            wait,
        )

        async def on_transaction(message: AbstractIncomingMessage) -> None:
            await tx_batcher.deliver(read_delivery(message, self._runtime.event_time))

        batchers = (tx_batcher, label_batcher)
        runs = [asyncio.create_task(b.run()) for b in batchers]
        tags = {label_topology.labels: await label_topology.labels.consume(label_batcher.deliver)}
        if self._broker.partitions:
            self.partitions = PartitionOwner(
                connection,
                self._broker,
                on_transaction,
                lambda unwanted: tx_batcher.discard(lambda d: unwanted(d.message)),
                self._settle,
            )
            await self.partitions.start()
        else:
            tx_queue = tx_topology.transactions
            tags[tx_queue] = await tx_queue.consume(on_transaction)
        self.ready.set()
        log.info("stream worker consuming %s", ", ".join(q.name for q in tags))
        await stop.wait()
        log.info("stopping: draining delivered messages")
        self._stopping.set()
        if self.partitions is not None:  # handed back in order, to the workers that stay
            await self.partitions.stop()
        for queue, tag in tags.items():
            await queue.cancel(tag)
        for batcher in batchers:
            batcher.close()
        await asyncio.gather(*runs)
        await self._wait_finishing()

    async def _settle(self) -> None:
        """Wait until every transaction micro-batch taken so far is acked or nacked."""
        target = self._taken
        while self._settled < target:
            self._progress.clear()
            await self._progress.wait()

    def _count_settled(self) -> None:
        self._settled += 1
        self._progress.set()

    async def _open(self, connection: AbstractRobustConnection) -> Topology:
        """A channel with confirms and prefetch, and the topology declared on it."""
        channel = await connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=self._broker.prefetch)
        return await declare_topology(channel, self._broker)

    async def _guarded(
        self, batch: Sequence[AbstractIncomingMessage], work: Awaitable[None]
    ) -> None:
        """Run a batch's work; on failure requeue its messages instead of dying."""
        try:
            await work
        except Exception as error:
            await self._requeue(batch, error)

    async def _requeue(self, batch: Sequence[AbstractIncomingMessage], error: Exception) -> None:
        """Nack exactly these messages: a multiple-nack could hit the batch in flight ahead.

        When the channel they came on is gone (broker restart, dropped connection), a nack
        cannot be sent and is not needed: the broker requeues every unacked message of a
        closed channel by itself. Raising here would kill the micro-batcher and leave the
        worker connected but idle after the robust connection comes back.
        """
        if isinstance(error, ShuttingDown):
            log.warning("%s; requeueing %d messages", error, len(batch))
        else:
            log.error("batch of %d failed unexpectedly; requeueing it", len(batch), exc_info=error)
        outcomes = await asyncio.gather(
            *(message.nack(requeue=True) for message in batch), return_exceptions=True
        )
        failed = [o for o in outcomes if isinstance(o, Exception)]
        if failed:
            log.warning(
                "could not nack %d messages (%s): their channel is closed, so the broker "
                "redelivers them",
                len(failed),
                type(failed[0]).__name__,
            )
        if not self._stopping.is_set():
            await asyncio.sleep(0.5)

    async def _wait_finishing(self) -> None:
        if self._finishing is not None:
            await self._finishing
            self._finishing = None

    async def _on_transactions(self, batch: list[Delivery], topology: Topology) -> None:
        """Stage 1 of a micro-batch here; stages 2 (decisions, commit; two batches at once)
        and 3 (publications, ack; one batch at a time) run in the background, overlapping
        the next batches' stage 1."""
        messages = [d.message for d in batch]
        self._taken += 1
        self._count_consumed(self._broker.transactions_queue, messages, batch)
        try:
            scored = await self._score(batch)
        except Exception as error:
            await self._wait_finishing()  # the acks ahead must go out before this batch's nacks
            await self._requeue(messages, error)
            self._count_settled()
            return
        commits = self._commits
        while commits and (commits[0].done() or len(commits) >= COMMITS_IN_FLIGHT):
            # started in delivery order, at most two at a time; shielded, so that cancelling
            # this wait (shutdown) leaves the commit's own signal to be set when it ends
            await asyncio.shield(commits.popleft())
        committed = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(
            self._finish_settled(messages, scored, topology, self._finishing, committed)
        )
        self._finishing = task
        commits.append(committed)
        self._unfinished.add(task)
        task.add_done_callback(self._unfinished.discard)

    async def _finish_settled(
        self,
        messages: list[AbstractIncomingMessage],
        scored: _Scored,
        topology: Topology,
        ahead: asyncio.Task[None] | None,
        committed: asyncio.Future[None],
    ) -> None:
        """Stages 2 and 3 of a batch; its publications, ack or nacks after the batch ahead's."""
        try:
            try:
                letters = await self._commit(scored)
            finally:
                committed.set_result(None)
            if ahead is not None:
                await ahead
            await self._publish_and_ack(scored, letters, topology)
        except Exception as error:
            if ahead is not None:  # its multiple-ack must not meet this batch's nacks first
                await ahead
            await self._requeue(messages, error)
        finally:
            self._count_settled()

    async def _score(self, batch: list[Delivery]) -> _Scored:
        items = [(t, d) for d in batch for t in d.transactions]
        origins = [(d, i) for d in batch for i in range(len(d.transactions))]
        transactions = [t for t, _ in items]
        pending = None
        if transactions:
            pending = await retry_transient(
                lambda: self._pipeline.record(transactions), "online features", self._stopping
            )
        return _Scored(batch, transactions, origins, [d.batched for _, d in items], pending)

    async def _commit(self, batch: _Scored) -> _Settled:
        """Stage 2: the decisions and their commit; what to publish and what to dead-letter."""
        decisions: list[DecisionFields] = []
        batched: list[bool] = []
        refused: list[tuple[AbstractIncomingMessage, Rejected, str]] = []
        if batch.pending is not None:
            scored = self._pipeline.score_recorded(batch.pending)
            if self._metrics is not None and scored.models is not self._shown_models:
                self._metrics.show_models(scored.models)  # only when a swap happened
                self._shown_models = scored.models
            outcomes = await self._pipeline.settle(scored, self._retrying)
            new = {r.transaction_id: r for r in scored.records}
            for outcome, message, origin, in_batch in zip(
                outcomes, batch.transactions, batch.origins, batch.batched, strict=True
            ):
                if isinstance(outcome, Decision):
                    record = new[message.transaction_id]
                    decisions.append(decision_fields(record, message.published_at))
                elif isinstance(outcome, Replayed):  # a repeated id: the stored decision again
                    decisions.append(decision_fields(outcome.record, message.published_at))
                elif isinstance(outcome, RecordRejected | TransactionConflict):
                    refused.append(_letter(origin, outcome))
                    continue
                else:  # an outage met the batch deciding this id: redeliver this batch
                    raise outcome
                batched.append(in_batch)
        return _Settled(decisions, batched, refused)

    async def _publish_and_ack(self, batch: _Scored, settled: _Settled, topology: Topology) -> None:
        """Stage 3: publish decisions and dead letters (confirmed), then one ack per channel."""
        decisions, batched, refused = settled.decisions, settled.batched, settled.refused
        queue = self._broker.transactions_queue
        rejected = [(d.message, r) for d in batch.deliveries for r in d.rejected]
        await asyncio.gather(
            *(
                topology.decisions.publish(message, routing_key=key)
                for message, key in decision_publications(decisions, batched)
            ),
            *(self._dead_letter(topology, queue, m, r) for m, r in rejected),
            *(self._dead_letter(topology, queue, m, r, why) for m, r, why in refused),
        )
        await asyncio.gather(*(m.ack(multiple=True) for m in _last_per_channel(batch.deliveries)))
        self._count_acked(queue, len(batch.deliveries), batch.transactions)

    async def _retrying(self, operation: Callable[[], Awaitable[T]], what: str) -> T:
        """Retry transient failures (database, Redis) until they pass or shutdown."""
        return await retry_transient(operation, what, self._stopping)

    async def _dead_letter(
        self,
        topology: Topology,
        queue: str,
        message: AbstractIncomingMessage,
        rejected: Rejected,
        why: str = "invalid",
    ) -> None:
        """Publish a copy with the reason in its headers to the DLQ (confirmed) before the ack."""
        copy = dead_letter_copy(message, queue, rejected.body, rejected.reason, rejected.item)
        await topology.dead_letters[queue].publish(copy, routing_key=queue)
        log.warning("dead-lettered a message from %s: %s", queue, rejected.reason)
        if self._metrics is not None:
            self._metrics.messages_dead_lettered.labels(queue=queue, reason=why).inc()

    async def _handle_labels(
        self, batch: list[AbstractIncomingMessage], topology: Topology
    ) -> None:
        queue = self._broker.labels_queue
        self._count_consumed(queue, batch, None)
        records: list[LabelRecord] = []
        for message in batch:
            try:
                label = LabelMessage.model_validate_json(message.body)
            except ValidationError as error:
                reason = Rejected(message.body, validation_reason(error))
                await self._dead_letter(topology, queue, message, reason)
                continue
            records.append(LabelRecord(label.transaction_id, label.tx_fraud, label.labelled_at))
        if records:
            observe = None
            if self._metrics is not None:
                observe = self._metrics.state_store_latency.labels(operation="label").observe
            await self._runtime.record_labels(
                records, guard=self._retrying, observe_state_seconds=observe
            )
        await batch[-1].ack(multiple=True)
        self._count_acked(queue, len(batch), [])

    def _count_consumed(
        self,
        queue: str,
        messages: Sequence[AbstractIncomingMessage],
        deliveries: Sequence[Delivery] | None,
    ) -> None:
        if self._metrics is not None:
            self._metrics.messages_consumed.labels(queue=queue).inc(len(messages))
            items = sum(d.size for d in deliveries) if deliveries else len(messages)
            self._metrics.stream_batch_size.observe(items)

    def _count_acked(self, queue: str, count: int, messages: Sequence[TransactionMessage]) -> None:
        if self._metrics is None:
            return
        self._metrics.messages_acked.labels(queue=queue).inc(count)
        now = time.time()
        observe_many(
            self._metrics.stream_end_to_end_latency,
            [now - m.published_at for m in messages if m.published_at is not None],
        )


def _letter(
    origin: tuple[Delivery, int], refusal: RecordRejected | TransactionConflict
) -> tuple[AbstractIncomingMessage, Rejected, str]:
    """What to dead-letter for one refused transaction: its item of a batch, or the message.

    ``refused``: the database refused the record (already out of the online state);
    ``conflict``: its id is stored with another payload (the stored decision is unchanged).
    """
    delivery, index = origin
    why = "conflict" if isinstance(refusal, TransactionConflict) else "refused"
    if delivery.batched:
        body = delivery.transactions[index].model_dump_json().encode()
        return delivery.message, Rejected(body, str(refusal), index), why
    return delivery.message, Rejected(delivery.message.body, str(refusal)), why


def _delivery_size(delivery: Delivery) -> int:
    return delivery.size


def _last_per_channel(deliveries: Sequence[Delivery]) -> list[AbstractIncomingMessage]:
    """Each channel's last delivery of a batch: its multiple-ack settles that channel's share
    (partitions come through a channel each; delivery tags are per channel)."""
    last = {id(d.message.channel): d.message for d in deliveries}
    return list(last.values())
