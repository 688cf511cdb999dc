"""The HTTP adapter's side of scoring: requests of one loop turn become one pipeline batch.

Routes parse, call one method here, and shape the answer; every decision comes from the
decision pipeline (:mod:`vigil.decisions`), the same one the stream worker calls.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from vigil.decisions import Outcome, Replayed, Runtime
from vigil.decisions.offline import Evaluation, ForwardOutcome
from vigil.inference.decision import Decision
from vigil.serving.batching import RequestBatcher
from vigil.serving.schemas import ForwardRequest, LabelledTransaction, Transaction


class PredictionService:
    """Scores requests through the runtime's pipeline; ``predict`` also records and persists."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._batcher: RequestBatcher[tuple[Transaction, float], Decision | Replayed] = (
            RequestBatcher(self._predict_batch)
        )

    async def predict(self, tx: Transaction) -> Decision | Replayed:
        """Online features, champion decision (challenger in shadow), durable write, answer.

        Concurrent calls are micro-batched (:class:`RequestBatcher`): one stored-decision
        look-up, one state-store round trip, one model run and one writer submit per batch.
        A repeated ``transaction_id`` gets the decision stored first (:class:`Replayed`), or
        raises ``TransactionConflict`` (409) when its payload differs.
        """
        return await self._batcher.submit((tx, time.perf_counter()))

    async def _predict_batch(self, batch: list[tuple[Transaction, float]]) -> list[Outcome]:
        """:meth:`predict` for the requests of one loop iteration, in arrival order.

        An error fails its own request only: ``RecordRejected`` (the database refused the
        record, 422), ``TransactionConflict`` (409).
        """
        return await self._runtime.pipeline.process(
            [tx for tx, _ in batch], [arrived for _, arrived in batch]
        )

    def forward(self, requests: Sequence[ForwardRequest]) -> list[ForwardOutcome]:
        """Model only: score the requests' precomputed features in one run; nothing is stored."""
        return self._runtime.batches.forward([(r.features, r.transaction_id) for r in requests])

    def score_batch(self, transactions: Sequence[Transaction]) -> list[Decision]:
        """Decisions in input order; features computed over the batch itself (nothing stored)."""
        return self._runtime.batches.score_batch(transactions)

    def evaluate(self, transactions: Sequence[LabelledTransaction]) -> Evaluation:
        """Decisions plus AUC ROC, AP, precision, recall and CP@k on a labelled batch."""
        return self._runtime.batches.evaluate(transactions, [t.tx_fraud for t in transactions])
