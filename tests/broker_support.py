"""A test-side RabbitMQ connection: the topology declared, decisions captured, all removed after."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractQueue

from vigil.config import BrokerConfig
from vigil.streaming.topology import dead_letter_queue, declare_topology


@asynccontextmanager
async def decision_capture(
    config: BrokerConfig,
) -> AsyncIterator[tuple[AbstractChannel, AbstractQueue]]:
    """A confirming channel and a queue receiving every decision; queues and exchanges deleted."""
    assert config.url is not None
    connection = await aio_pika.connect_robust(config.url)
    channel = await connection.channel(publisher_confirms=True)
    topology = await declare_topology(channel, config)
    capture = await channel.declare_queue(f"{config.decisions_exchange}-capture", durable=False)
    await capture.bind(topology.decisions, routing_key="#")
    try:
        yield channel, capture
    finally:
        for queue in (
            config.transactions_queue,
            config.labels_queue,
            dead_letter_queue(config.transactions_queue),
            dead_letter_queue(config.labels_queue),
            capture.name,
        ):
            await channel.queue_delete(queue)
        for exchange in (
            config.decisions_exchange,
            f"{config.transactions_queue}.dlx",
            f"{config.labels_queue}.dlx",
        ):
            await channel.exchange_delete(exchange)
        await connection.close()
