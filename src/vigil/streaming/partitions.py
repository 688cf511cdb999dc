"""Ordered partitioned streaming: transactions by customer over N queues, one owner each.

A producer puts each transaction on partition ``partition_of(customer_id, N)`` (a direct
exchange, routing key the partition number; batch envelopes are grouped per partition), so a
card's transactions stay in one queue, in order. Each partition queue is a quorum queue with
single active consumer: at most one worker receives from it at any time.

Workers find each other through heartbeats on a fanout exchange and split the partitions by
one rule (:func:`assigned`), so adding or removing a worker rebalances them. A worker hands a
partition over without losing or reordering anything: it stops taking that partition's
deliveries into micro-batches, finishes (commits, publishes, acks) the batches already taken,
then closes the partition's channel. RabbitMQ returns the untouched deliveries to the head
of the queue and only then activates the next consumer, so the new owner starts exactly
where the old one stopped (ADR 0015).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable, Sequence

import aio_pika
import orjson
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from vigil.config import BrokerConfig

log = logging.getLogger(__name__)

SILENT_BEATS = 3  # a worker unheard for this many heartbeats has left


def partition_of(customer_id: int, partitions: int) -> int:
    """The partition of a customer: CRC-32 of its id as 8 big-endian bytes, modulo N."""
    return zlib.crc32(customer_id.to_bytes(8, "big")) % partitions


def partition_exchange(config: BrokerConfig) -> str:
    """The direct exchange producers publish transactions to (routing key: the partition)."""
    return f"{config.transactions_queue}.partitioned"


def partition_queue(config: BrokerConfig, index: int) -> str:
    """The queue of partition ``index``."""
    return f"{config.transactions_queue}.p{index}"


def members_exchange(config: BrokerConfig) -> str:
    """The fanout exchange the workers' heartbeats go through."""
    return f"{config.transactions_queue}.members"


def assigned(members: Sequence[str], me: str, partitions: int) -> set[int]:
    """The partitions worker ``me`` owns among ``members``: round robin over sorted ids."""
    ordered = sorted(set(members) | {me})
    return {p for p in range(partitions) if ordered[p % len(ordered)] == me}


class Membership:
    """Heartbeats on a fanout exchange: every worker sees which workers are alive."""

    def __init__(self, channel: AbstractChannel, config: BrokerConfig) -> None:
        self.me = uuid.uuid4().hex
        self._channel = channel
        self._config = config
        self._heard: dict[str, float] = {}
        self._exchange: aio_pika.abc.AbstractExchange | None = None

    async def join(self) -> None:
        """Listen to the others' heartbeats (an exclusive queue of this worker's own)."""
        self._exchange = await self._channel.declare_exchange(
            members_exchange(self._config), aio_pika.ExchangeType.FANOUT, durable=True
        )
        inbox = await self._channel.declare_queue(exclusive=True, auto_delete=True)
        await inbox.bind(self._exchange)
        await inbox.consume(self._on_beat, no_ack=True)

    async def _on_beat(self, message: AbstractIncomingMessage) -> None:
        beat = orjson.loads(message.body)
        if beat.get("leaving"):
            self._heard.pop(beat["id"], None)
        else:
            self._heard[beat["id"]] = time.monotonic()

    async def beat(self, leaving: bool = False) -> None:
        """Tell every worker this one is alive (or leaving now)."""
        assert self._exchange is not None, "join() first"
        body = orjson.dumps({"id": self.me, "leaving": leaving})
        await self._exchange.publish(aio_pika.Message(body=body), routing_key="")

    def members(self) -> list[str]:
        """The workers heard from recently, this one included."""
        horizon = time.monotonic() - SILENT_BEATS * self._config.heartbeat_s
        return sorted({self.me} | {m for m, at in self._heard.items() if at >= horizon})


class PartitionOwner:
    """Consumes the partitions this worker is assigned; hands over the others in order.

    ``deliver`` feeds a delivery into the worker's micro-batches; ``discard`` removes a
    partition's deliveries not yet taken into a batch; ``settle`` waits until every batch
    taken so far is acked or nacked.
    """

    def __init__(
        self,
        connection: AbstractRobustConnection,
        config: BrokerConfig,
        deliver: Callable[[AbstractIncomingMessage], Awaitable[None]],
        discard: Callable[[Callable[[AbstractIncomingMessage], bool]], None],
        settle: Callable[[], Awaitable[None]],
    ) -> None:
        self._connection = connection
        self._config = config
        self._deliver = deliver
        self._discard = discard
        self._settle = settle
        self._owned: dict[int, AbstractChannel] = {}
        self._releasing: set[int] = set()
        self._membership: Membership | None = None
        self._loop: asyncio.Task[None] | None = None

    @property
    def owned(self) -> set[int]:
        """The partitions consumed now."""
        return set(self._owned)

    async def start(self) -> None:
        """Join the group, wait a moment to hear the others, claim a share, keep it balanced."""
        channel = await self._connection.channel()
        self._membership = Membership(channel, self._config)
        await self._membership.join()
        await self._membership.beat()
        await asyncio.sleep(2 * self._config.heartbeat_s)
        await self.rebalance()
        self._loop = asyncio.create_task(self._keep_balanced())

    async def _keep_balanced(self) -> None:
        assert self._membership is not None
        while True:
            await asyncio.sleep(self._config.heartbeat_s)
            await self._membership.beat()
            await self.rebalance()

    async def rebalance(self) -> None:
        """Release what is no longer this worker's, then claim what is."""
        assert self._membership is not None
        members = self._membership.members()
        wanted = assigned(members, self._membership.me, self._config.partitions)
        extra = set(self._owned) - wanted
        if extra:
            await self._release(extra)
        for index in sorted(wanted - set(self._owned)):
            await self._claim(index)
        if extra or wanted - set(self._owned):
            log.info("partitions %s of %d workers", sorted(self._owned), len(members))

    async def _claim(self, index: int) -> None:
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=self._config.prefetch)
        queue: AbstractQueue = await channel.get_queue(partition_queue(self._config, index))

        async def on_message(message: AbstractIncomingMessage) -> None:
            if index not in self._releasing:  # else it stays unacked: back to the queue
                await self._deliver(message)

        await queue.consume(on_message)
        self._owned[index] = channel

    async def _release(self, indexes: set[int]) -> None:
        """Finish what was taken from these partitions, then give the rest back in order."""
        underlays = [await self._owned[i].get_underlay_channel() for i in indexes]
        self._releasing |= indexes
        self._discard(lambda message: any(message.channel is u for u in underlays))
        await self._settle()
        for index in indexes:
            channel = self._owned.pop(index)
            with contextlib.suppress(Exception):  # closing returns its unacked deliveries
                await channel.close()
        self._releasing -= indexes

    async def stop(self) -> None:
        """Hand every partition back and tell the others, so they take over at once."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        await self._release(set(self._owned))
        if self._membership is not None:
            await self._membership.beat(leaving=True)
