"""RabbitMQ topology, declared by every producer and consumer at start (idempotently)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from vigil.config import BrokerConfig
from vigil.streaming.partitions import partition_exchange, partition_queue

# A message redelivered this many times (crash loops) is dead-lettered by RabbitMQ itself.
DELIVERY_LIMIT = 20
REASON_HEADER = "x-vigil-reason"


def dead_letter_queue(queue: str) -> str:
    """The dead-letter queue of ``queue``."""
    return f"{queue}.dlq"


def dead_letter_exchange(queue: str) -> str:
    """The exchange that routes ``queue``'s rejected messages to its dead-letter queue."""
    return f"{queue}.dlx"


@dataclass(frozen=True)
class Topology:
    """The declared objects a worker or producer uses."""

    transactions: AbstractQueue
    labels: AbstractQueue
    decisions: AbstractExchange
    dead_letters: dict[str, AbstractExchange]
    partitioned: AbstractExchange | None = None  # with broker.partitions > 0


def _queue_arguments(dead_letters_of: str) -> dict[str, Any]:
    return {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": dead_letter_exchange(dead_letters_of),
        "x-delivery-limit": DELIVERY_LIMIT,
    }


async def _queue_with_dlq(
    channel: AbstractChannel, name: str
) -> tuple[AbstractQueue, AbstractExchange]:
    dlx = await channel.declare_exchange(
        dead_letter_exchange(name), aio_pika.ExchangeType.FANOUT, durable=True
    )
    dlq = await channel.declare_queue(
        dead_letter_queue(name), durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dlq.bind(dlx)
    queue = await channel.declare_queue(name, durable=True, arguments=_queue_arguments(name))
    return queue, dlx


async def _partitions(channel: AbstractChannel, config: BrokerConfig) -> AbstractExchange:
    """The partition exchange and queues: single active consumer, the transactions' DLQ."""
    exchange = await channel.declare_exchange(
        partition_exchange(config), aio_pika.ExchangeType.DIRECT, durable=True
    )
    arguments = {**_queue_arguments(config.transactions_queue), "x-single-active-consumer": True}
    for index in range(config.partitions):
        queue = await channel.declare_queue(
            partition_queue(config, index), durable=True, arguments=arguments
        )
        await queue.bind(exchange, routing_key=str(index))
    return exchange


async def declare_topology(channel: AbstractChannel, config: BrokerConfig) -> Topology:
    """Declare queues, exchanges and dead-letter routes (a no-op when they already exist)."""
    transactions, tx_dlx = await _queue_with_dlq(channel, config.transactions_queue)
    labels, label_dlx = await _queue_with_dlq(channel, config.labels_queue)
    decisions = await channel.declare_exchange(
        config.decisions_exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    return Topology(
        transactions=transactions,
        labels=labels,
        decisions=decisions,
        dead_letters={config.transactions_queue: tx_dlx, config.labels_queue: label_dlx},
        partitioned=await _partitions(channel, config) if config.partitions else None,
    )
