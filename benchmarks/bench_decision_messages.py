"""CPU per transaction of the stream worker's decision messages: built and serialised.

A micro-batch of ``--size`` stored decisions (one label in ``--fraud-every``) turned into the
publications the worker sends (one ``DecisionBatch`` body per label), in CPU time
(``time.process_time``), best of ``--repeats``. Run each tree with its own
``PYTHONPATH=<tree>/src`` to compare commits (trees before ``decision_fields`` build one
pydantic ``DecisionMessage`` per decision).

    .venv/bin/python benchmarks/bench_decision_messages.py
"""

from __future__ import annotations

import argparse
import time
import timeit
from datetime import UTC, datetime

from vigil.storage import PredictionRecord
from vigil.streaming import outbox


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="decisions per micro-batch")
    parser.add_argument("--fraud-every", type=int, default=50, help="one fraud label in N")
    parser.add_argument("--number", type=int, default=2000, help="micro-batches per timing")
    parser.add_argument("--repeats", type=int, default=5)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    now = datetime.now(UTC)
    records = [
        PredictionRecord(
            transaction_id=i,
            tx_datetime=datetime(2018, 9, 30, 10, 0, 0),
            customer_id=i % 500,
            terminal_id=i % 900,
            tx_amount=42.5 + i,
            score=0.9 if i % args.fraud_every == 0 else 0.0123456789,
            label=int(i % args.fraud_every == 0),
            threshold=0.5,
            reason_codes=["tx_amount", "terminal_risk_7d"] if i % args.fraud_every == 0 else [],
            model_version="bench",
            latency_ms=1.0,
            created_at=now,
        )
        for i in range(args.size)
    ]
    published_at = time.time()
    # decision_fields since the worker stopped building a model per decision; before it,
    # decision_message (the same signature, a DecisionMessage)
    build = getattr(outbox, "decision_fields", None) or outbox.decision_message  # type: ignore
    batched = [True] * args.size

    def publications() -> object:
        return outbox.decision_publications(
            [build(record, published_at) for record in records], batched
        )

    seconds = timeit.repeat(
        publications, number=args.number, repeat=args.repeats, timer=time.process_time
    )
    per_tx = min(seconds) / args.number / args.size * 1e6
    print(f"decision messages: {per_tx:.2f} us CPU per transaction ({build.__name__})")


if __name__ == "__main__":
    main()
