"""The stream worker: transactions in, decisions out, labels fed back; nothing lost or doubled.

Per micro-batch: parse (poison to the dead-letter queue with the reason), online features,
decision, one database commit, decisions published with publisher confirms, and only then one
multiple-ack. A crash anywhere before the ack means redelivery, which is harmless: every write
is idempotent on ``transaction_id`` and a redelivered transaction republishes the stored
decision. Database or Redis outages are retried with backoff while the messages stay unacked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

import aio_pika
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage, AbstractRobustConnection
from pydantic import ValidationError

from vigil.config import BrokerConfig
from vigil.features import OnlineFeatureComputer
from vigil.monitoring import VigilMetrics
from vigil.storage import LabelRecord
from vigil.streaming.batching import MicroBatcher
from vigil.streaming.labels import apply_labels
from vigil.streaming.messages import (
    CONTENT_TYPE,
    DecisionMessage,
    LabelMessage,
    TransactionMessage,
    decision_routing_key,
)
from vigil.streaming.persistence import StreamStore
from vigil.streaming.pipeline import ScoredBatch, ScoringPipeline
from vigil.streaming.retry import ShuttingDown, retry_transient
from vigil.streaming.topology import REASON_HEADER, Topology, declare_topology

log = logging.getLogger(__name__)

Parsed = tuple[AbstractIncomingMessage, TransactionMessage]
Handler = Callable[[list[AbstractIncomingMessage], Topology], Awaitable[None]]


def validation_reason(error: ValidationError) -> str:
    """A short, header-friendly reason for a schema violation."""
    problems = [f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in error.errors()]
    return ("invalid message: " + "; ".join(problems))[:500]


def _stored_decision(row: dict[str, object], published_at: float | None) -> DecisionMessage:
    """The decision as it was first stored (for republishing on redelivery)."""
    fields = ("transaction_id", "score", "label", "threshold", "reason_codes", "model_version")
    return DecisionMessage.model_validate(
        {
            **{name: row[name] for name in fields},
            "decided_at": row["created_at"],
            "published_at": published_at,
        }
    )


class StreamWorker:
    """Consumes ``transactions`` and ``labels`` until asked to stop, then drains."""

    def __init__(
        self,
        broker: BrokerConfig,
        pipeline: ScoringPipeline,
        features: OnlineFeatureComputer,
        store: StreamStore,
        metrics: VigilMetrics | None = None,
        batch_wait_ms: float = 5.0,
    ) -> None:
        if broker.url is None:
            raise ValueError("the stream worker needs broker.url (RabbitMQ)")
        self._broker = broker
        self._pipeline = pipeline
        self._features = features
        self._store = store
        self._metrics = metrics
        self._batch_wait_ms = batch_wait_ms
        self._stopping = asyncio.Event()
        self.ready = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; then finish every delivered message and disconnect."""
        assert self._broker.url is not None
        connection = await aio_pika.connect_robust(self._broker.url)
        try:
            await self._consume(connection, stop)
        finally:
            await connection.close()

    async def _consume(self, connection: AbstractRobustConnection, stop: asyncio.Event) -> None:
        tx_topology = await self._open(connection)
        label_topology = await self._open(connection)
        batchers = {
            tx_topology.transactions: MicroBatcher(
                lambda batch: self._guarded(batch, self._handle_transactions, tx_topology),
                self._broker.batch_size,
                self._batch_wait_ms,
            ),
            label_topology.labels: MicroBatcher(
                lambda batch: self._guarded(batch, self._handle_labels, label_topology),
                self._broker.batch_size,
                self._batch_wait_ms,
            ),
        }
        runs = [asyncio.create_task(b.run()) for b in batchers.values()]
        tags = {queue: await queue.consume(b.deliver) for queue, b in batchers.items()}
        self.ready.set()
        log.info("stream worker consuming %s", ", ".join(q.name for q in tags))
        await stop.wait()
        log.info("stopping: draining delivered messages")
        self._stopping.set()
        for queue, tag in tags.items():
            await queue.cancel(tag)
        for batcher in batchers.values():
            batcher.close()
        await asyncio.gather(*runs)

    async def _open(self, connection: AbstractRobustConnection) -> Topology:
        """A channel with confirms and prefetch, and the topology declared on it."""
        channel = await connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=self._broker.prefetch)
        return await declare_topology(channel, self._broker)

    async def _guarded(
        self, batch: list[AbstractIncomingMessage], handler: Handler, topology: Topology
    ) -> None:
        """Run a batch handler; on an unexpected error requeue the batch instead of dying."""
        try:
            await handler(batch, topology)
        except ShuttingDown as error:
            log.warning("%s; %d messages left unacked for redelivery", error, len(batch))
        except Exception:
            log.exception("batch of %d failed unexpectedly; requeueing it", len(batch))
            await batch[-1].nack(multiple=True, requeue=True)
            await asyncio.sleep(0.5)

    async def _dead_letter(
        self, topology: Topology, queue: str, message: AbstractIncomingMessage, reason: str
    ) -> None:
        """Publish a copy with the reason in its headers to the DLQ (confirmed) before the ack."""
        headers = {**(message.headers or {}), REASON_HEADER: reason, "x-vigil-queue": queue}
        copy = aio_pika.Message(
            body=message.body,
            headers=headers,
            content_type=message.content_type,
            message_id=message.message_id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await topology.dead_letters[queue].publish(copy, routing_key=queue)
        log.warning("dead-lettered a message from %s: %s", queue, reason)
        if self._metrics is not None:
            self._metrics.messages_dead_lettered.labels(queue=queue, reason="invalid").inc()

    async def _handle_transactions(
        self, batch: list[AbstractIncomingMessage], topology: Topology
    ) -> None:
        queue = self._broker.transactions_queue
        self._count_consumed(queue, len(batch))
        parsed: list[Parsed] = []
        for message in batch:
            try:
                parsed.append((message, TransactionMessage.model_validate_json(message.body)))
            except ValidationError as error:
                await self._dead_letter(topology, queue, message, validation_reason(error))
        if parsed:
            decisions = await self._score_and_store([m for _, m in parsed])
            decisions = await self._replace_redelivered(parsed, decisions)
            await self._publish(topology.decisions, decisions)
        await batch[-1].ack(multiple=True)
        self._count_acked(queue, len(batch), [m for _, m in parsed])

    async def _score_and_store(
        self, messages: Sequence[TransactionMessage]
    ) -> list[DecisionMessage]:
        scored: ScoredBatch = await retry_transient(
            lambda: self._pipeline.score(messages), "online features", self._stopping
        )
        await retry_transient(
            lambda: self._store.save_predictions(scored.records),
            "saving predictions",
            self._stopping,
        )
        return scored.decisions

    async def _replace_redelivered(
        self, parsed: Sequence[Parsed], decisions: list[DecisionMessage]
    ) -> list[DecisionMessage]:
        """A redelivered transaction republishes the decision stored the first time."""
        redelivered = {m.transaction_id: m for raw, m in parsed if raw.redelivered}
        if not redelivered:
            return decisions
        rows = await retry_transient(
            lambda: self._store.stored_predictions(list(redelivered)), "reading", self._stopping
        )
        stored = {
            int(row["transaction_id"]): _stored_decision(
                row, redelivered[int(row["transaction_id"])].published_at
            )
            for row in rows
        }
        return [stored.get(d.transaction_id, d) for d in decisions]

    async def _publish(
        self, exchange: AbstractExchange, decisions: Sequence[DecisionMessage]
    ) -> None:
        """Publish every decision and wait for all the broker's confirms."""
        await asyncio.gather(
            *(
                exchange.publish(
                    aio_pika.Message(
                        body=d.to_bytes(),
                        content_type=CONTENT_TYPE,
                        message_id=str(d.transaction_id),
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key=decision_routing_key(d.label),
                )
                for d in decisions
            )
        )

    async def _handle_labels(
        self, batch: list[AbstractIncomingMessage], topology: Topology
    ) -> None:
        queue = self._broker.labels_queue
        self._count_consumed(queue, len(batch))
        records: list[LabelRecord] = []
        for message in batch:
            try:
                label = LabelMessage.model_validate_json(message.body)
            except ValidationError as error:
                await self._dead_letter(topology, queue, message, validation_reason(error))
                continue
            records.append(LabelRecord(label.transaction_id, label.tx_fraud, label.labelled_at))
        if records:
            await apply_labels(self._store, self._features, records, self._stopping)
        await batch[-1].ack(multiple=True)
        self._count_acked(queue, len(batch), [])

    def _count_consumed(self, queue: str, count: int) -> None:
        if self._metrics is not None:
            self._metrics.messages_consumed.labels(queue=queue).inc(count)
            self._metrics.stream_batch_size.observe(count)

    def _count_acked(self, queue: str, count: int, messages: Sequence[TransactionMessage]) -> None:
        if self._metrics is None:
            return
        self._metrics.messages_acked.labels(queue=queue).inc(count)
        now = time.time()
        for message in messages:
            if message.published_at is not None:
                self._metrics.stream_end_to_end_latency.observe(now - message.published_at)
