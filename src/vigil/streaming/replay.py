"""``vigil replay``: send a dataset through the scoring loop at a chosen rate, labels later.

Two sinks behind one driver: :class:`BrokerSink` publishes to RabbitMQ (with confirms) for
the stream worker; :class:`InProcessSink` scores and persists right here, for the embedded
default (``broker.url: null``).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

import aio_pika
import pandas as pd
from tqdm import tqdm

from vigil.config import BrokerConfig
from vigil.data import schema
from vigil.decisions import Runtime
from vigil.storage import LabelRecord
from vigil.streaming.messages import (
    CONTENT_TYPE,
    TRANSACTION_BATCH_TYPE,
    TRANSACTION_TYPE,
    LabelMessage,
    TransactionBatch,
    TransactionMessage,
)
from vigil.streaming.partitions import partition_of
from vigil.streaming.topology import declare_topology


class ReplayTarget(Protocol):
    """Where replayed transactions and labels go."""

    async def send_transactions(self, messages: Sequence[TransactionMessage]) -> None:
        """Deliver transactions (in order)."""
        ...

    async def send_labels(self, labels: Sequence[LabelMessage]) -> None:
        """Deliver labels."""
        ...


@dataclass(frozen=True)
class ReplaySummary:
    """What a replay sent and how fast."""

    transactions: int
    labels: int
    seconds: float

    @property
    def rate(self) -> float:
        """Transactions per second achieved."""
        return self.transactions / self.seconds if self.seconds > 0 else 0.0


class BrokerSink:
    """Publishes to the ``transactions`` and ``labels`` queues with publisher confirms.

    With ``envelopes`` (the default) each replayed chunk of transactions is one
    :class:`TransactionBatch` message; otherwise one message per transaction.
    """

    def __init__(self, broker: BrokerConfig, envelopes: bool = True) -> None:
        if broker.url is None:
            raise ValueError("BrokerSink needs broker.url")
        self._broker = broker
        self._envelopes = envelopes
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._partitioned: aio_pika.abc.AbstractExchange | None = None

    async def __aenter__(self) -> BrokerSink:
        assert self._broker.url is not None
        self._connection = await aio_pika.connect_robust(self._broker.url)
        channel = await self._connection.channel(publisher_confirms=True)
        topology = await declare_topology(channel, self._broker)
        self._exchange = channel.default_exchange
        self._partitioned = topology.partitioned
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def _publish(
        self,
        queue: str,
        bodies: Sequence[tuple[str, bytes]],
        kind: str | None = None,
        exchange: aio_pika.abc.AbstractExchange | None = None,
    ) -> None:
        """Publish (confirmed) to ``queue`` through the default exchange, or to ``exchange``."""
        assert self._exchange is not None, "use BrokerSink as an async context manager"
        exchange = exchange or self._exchange
        await asyncio.gather(
            *(
                exchange.publish(
                    aio_pika.Message(
                        body=body,
                        content_type=CONTENT_TYPE,
                        type=kind,
                        message_id=message_id,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key=queue,
                )
                for message_id, body in bodies
            )
        )

    async def send_transactions(self, messages: Sequence[TransactionMessage]) -> None:
        """Publish transactions (one batch message or one each) to the transactions queue,
        or to each customer's partition (``broker.partitions``), keeping their order."""
        if not self._broker.partitions:
            await self._send(self._broker.transactions_queue, messages)
            return
        parts: dict[int, list[TransactionMessage]] = defaultdict(list)
        for message in messages:
            parts[partition_of(message.customer_id, self._broker.partitions)].append(message)
        await asyncio.gather(
            *(self._send(str(p), part, self._partitioned) for p, part in parts.items())
        )

    async def _send(
        self,
        key: str,
        messages: Sequence[TransactionMessage],
        exchange: aio_pika.abc.AbstractExchange | None = None,
    ) -> None:
        if not messages:
            return
        if self._envelopes:
            body = TransactionBatch(transactions=list(messages)).to_bytes()
            message_id = f"{messages[0].transaction_id}+{len(messages) - 1}"
            await self._publish(key, [(message_id, body)], TRANSACTION_BATCH_TYPE, exchange)
        else:
            bodies = [(str(m.transaction_id), m.to_bytes()) for m in messages]
            await self._publish(key, bodies, TRANSACTION_TYPE, exchange)

    async def send_labels(self, labels: Sequence[LabelMessage]) -> None:
        """Publish labels to the labels queue."""
        bodies = [(str(m.transaction_id), m.to_bytes()) for m in labels]
        await self._publish(self._broker.labels_queue, bodies)


class InProcessSink:
    """Scores and persists in this process: the embedded default, no broker needed."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    async def send_transactions(self, messages: Sequence[TransactionMessage]) -> None:
        """Decide on a micro-batch and persist it (the stream worker's pipeline)."""
        await self._runtime.pipeline.process(messages)

    async def send_labels(self, labels: Sequence[LabelMessage]) -> None:
        """Store labels and update the online state."""
        records = [LabelRecord(m.transaction_id, m.tx_fraud, m.labelled_at) for m in labels]
        await self._runtime.record_labels(records)


def _chunks(frame: pd.DataFrame, size: int) -> Iterator[pd.DataFrame]:
    for start in range(0, len(frame), size):
        yield frame.iloc[start : start + size]


def _transactions(chunk: pd.DataFrame) -> list[TransactionMessage]:
    now = time.time()
    columns = list(schema.TRANSACTION_COLUMNS)
    return [
        TransactionMessage(**dict(zip(columns, row, strict=True)), published_at=now)
        for row in chunk[columns].itertuples(index=False, name=None)
    ]


def _labels(chunk: pd.DataFrame, label_delay_days: int) -> list[LabelMessage]:
    if schema.TX_FRAUD not in chunk.columns:
        return []
    delay = timedelta(days=label_delay_days)
    return [
        LabelMessage(transaction_id=tid, tx_fraud=int(fraud), labelled_at=moment + delay)
        for tid, fraud, moment in chunk[
            [schema.TRANSACTION_ID, schema.TX_FRAUD, schema.TX_DATETIME]
        ].itertuples(index=False, name=None)
    ]


async def replay(
    frame: pd.DataFrame,
    sink: ReplayTarget,
    rate: float = 0.0,
    batch_size: int = 128,
    label_after_s: float | None = 5.0,
    label_delay_days: int = 7,
    progress: bool = True,
) -> ReplaySummary:
    """Send ``frame`` in time order at ``rate`` tx/s (0: flat out); labels ``label_after_s`` later.

    Labels carry ``labelled_at`` = event time + ``label_delay_days`` (the simulated delay);
    ``label_after_s=None`` sends none.
    """
    frame = frame.sort_values([schema.TX_DATETIME, schema.TRANSACTION_ID], kind="stable")
    # Small chunks at a fixed rate keep the flow smooth (about 200 sends per second).
    size = batch_size if rate <= 0 else max(1, min(batch_size, int(rate / 200)))
    due: deque[tuple[float, list[LabelMessage]]] = deque()
    sent_labels = 0
    started = time.monotonic()
    sent = 0
    with tqdm(total=len(frame), unit="tx", disable=not progress) as bar:
        for chunk in _chunks(frame, size):
            await sink.send_transactions(_transactions(chunk))
            sent += len(chunk)
            bar.update(len(chunk))
            if label_after_s is not None:
                labels = _labels(chunk, label_delay_days)
                if labels:
                    due.append((time.monotonic() + label_after_s, labels))
            while due and due[0][0] <= time.monotonic():
                batch = due.popleft()[1]
                await sink.send_labels(batch)
                sent_labels += len(batch)
            if rate > 0:
                await asyncio.sleep(max(0.0, started + sent / rate - time.monotonic()))
    while due:
        at, batch = due.popleft()
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        await sink.send_labels(batch)
        sent_labels += len(batch)
    return ReplaySummary(sent, sent_labels, time.monotonic() - started)
