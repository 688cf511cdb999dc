"""RabbitMQ cost per message: durable quorum-queue publish with confirms, consume with acks.

Publishes ``--messages`` persistent messages of ``--batch`` transactions each (the stream's
``TransactionBatch`` envelope size) to a fresh quorum queue, then consumes and acks them,
and divides RabbitMQ's own CPU time (``beam.smp`` in ``/proc``, this machine's broker) by the
messages. The broker's idle CPU rate, measured just before over the same duration, is
subtracted, since other clients may use the shared broker. Prints the figure last.

    .venv/bin/python benchmarks/bench_broker.py
    .venv/bin/python benchmarks/bench_broker.py --messages 20000 --batch 1
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from pathlib import Path

import aio_pika
import orjson

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5_000)
    parser.add_argument("--batch", type=int, default=32, help="transactions per message")
    parser.add_argument("--amqp-url", default=AMQP_URL)
    return parser.parse_args()


def broker_cpu_seconds() -> float:
    """utime + stime of every ``beam.smp`` process (RabbitMQ's Erlang VM)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if "(beam.smp)" in text:
            fields = text.rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    if total == 0:
        raise SystemExit("no RabbitMQ (beam.smp) process on this machine")
    return total / CLOCK_TICKS


def envelope(batch: int) -> bytes:
    """A ``TransactionBatch``-sized JSON body."""
    item = {
        "transaction_id": 1_234_567_890,
        "tx_datetime": "2018-09-23T10:11:12",
        "customer_id": 4242,
        "terminal_id": 8181,
        "tx_amount": 57.16,
        "published_at": 1.7e9,
    }
    return orjson.dumps({"version": 2, "transactions": [item] * batch})


async def run(args: argparse.Namespace) -> tuple[float, float]:
    """(broker CPU us per message, messages/s through publish + consume)."""
    connection = await aio_pika.connect_robust(args.amqp_url)
    queue_name = f"bench-broker-{uuid.uuid4().hex[:8]}"
    body = envelope(args.batch)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(
            queue_name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        try:
            started = time.perf_counter()
            cpu = broker_cpu_seconds()
            window = 64
            for start in range(0, args.messages, window):
                count = min(window, args.messages - start)
                await asyncio.gather(
                    *(
                        channel.default_exchange.publish(
                            aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                            routing_key=queue_name,
                        )
                        for _ in range(count)
                    )
                )
            received = 0
            await channel.set_qos(prefetch_count=256)
            async with queue.iterator() as messages:
                async for message in messages:
                    await message.ack()
                    received += 1
                    if received == args.messages:
                        break
            cpu = broker_cpu_seconds() - cpu
            elapsed = time.perf_counter() - started
        finally:
            await queue.delete(if_unused=False, if_empty=False)
    idle = broker_cpu_seconds()
    await asyncio.sleep(min(elapsed, 10.0))
    idle_rate = (broker_cpu_seconds() - idle) / min(elapsed, 10.0)
    busy = max(cpu - idle_rate * elapsed, 0.0)
    return busy / args.messages * 1e6, args.messages / elapsed


def main() -> None:
    """Print the figure last."""
    args = parse_args()
    cpu_us, rate = asyncio.run(run(args))
    print(f"{args.messages} messages of {args.batch} transactions: {rate:,.0f} msg/s end to end")
    print(
        f"RabbitMQ CPU per message (quorum queue, confirm + ack): {cpu_us:.0f} us "
        f"({1e6 / cpu_us:,.0f} msg/s per core, {args.batch * 1e6 / cpu_us:,.0f} tx/s per core)"
    )


if __name__ == "__main__":
    main()
