"""CPU per transaction of the transaction contract's per-item checks on the stream path.

Validating a 128-transaction batch envelope (pydantic, including the event-time policy) and
the state store's range check (``features.state.as_transaction``), each in CPU time
(``time.process_time``), best of ``--repeats``: the figures to compare between commits when
asking whether the per-item checks are a hot cost (run each tree with its own
``PYTHONPATH=<tree>/src``).

    .venv/bin/python benchmarks/bench_contract.py
"""

from __future__ import annotations

import argparse
import time
import timeit
from datetime import datetime, timedelta

from vigil.features.state import Transaction, as_transaction
from vigil.streaming.messages import TransactionBatch, TransactionMessage

try:  # the contract's event-time policy; trees before the one contract (089b2f7) have none
    from vigil.data.transaction import EventTimePolicy
except ImportError:
    EventTimePolicy = None  # type: ignore[assignment,misc]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="transactions per envelope")
    parser.add_argument("--number", type=int, default=2000, help="envelopes per timing")
    parser.add_argument("--repeats", type=int, default=5)
    return parser.parse_args()


def cpu_us_per_item(call: object, number: int, repeats: int, items: int) -> float:
    timer = time.process_time
    seconds = timeit.repeat(call, number=number, repeat=repeats, timer=timer)  # type: ignore
    return min(seconds) / number / items * 1e6


def main() -> None:
    args = parse_args()
    start = datetime(2018, 9, 30, 10, 0, 0)
    messages = [
        TransactionMessage(
            transaction_id=i,
            tx_datetime=start + timedelta(seconds=i),
            customer_id=i % 500,
            terminal_id=i % 900,
            tx_amount=42.5 + i,
            published_at=1.7e9,
        )
        for i in range(args.size)
    ]
    body = TransactionBatch(transactions=messages).to_bytes()
    policy = EventTimePolicy() if EventTimePolicy is not None else None
    online = [
        Transaction(m.transaction_id, m.tx_datetime, m.customer_id, m.terminal_id, m.tx_amount)
        for m in messages
    ]
    validation = cpu_us_per_item(
        lambda: TransactionBatch.model_validate_json(body, context=policy),
        args.number,
        args.repeats,
        args.size,
    )
    ranges = cpu_us_per_item(
        lambda: [as_transaction(tx) for tx in online], args.number, args.repeats, args.size
    )
    print(f"state store range check: {ranges:.2f} us CPU per transaction")
    print(f"envelope validation: {validation:.2f} us CPU per transaction")


if __name__ == "__main__":
    main()
