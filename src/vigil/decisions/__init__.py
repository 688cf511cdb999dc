"""The one decision path: the pipeline every adapter (HTTP, AMQP, replay) calls, and its set-up.

- ``vigil.decisions.pipeline``: :class:`DecisionPipeline` (online features, champion, challenger
  in shadow, records, persistence hand-off);
- ``vigil.decisions.offline``: model-only and batch-only decisions (``/forward``,
  ``/forward_batch``, ``/evaluate``);
- ``vigil.decisions.idempotency``: a repeated ``transaction_id`` gets the decision stored first
  (:class:`Replayed`), or :class:`TransactionConflict` when its payload differs;
- ``vigil.decisions.labels``: the one label path (labels table, then online fraud state);
- ``vigil.decisions.runtime``: :class:`Runtime`, built once per process from the settings.
"""

from vigil.decisions.idempotency import Replayed, TransactionConflict
from vigil.decisions.pipeline import DecisionPipeline, Outcome, PendingBatch, ScoredBatch
from vigil.decisions.runtime import Runtime, load_models

__all__ = [
    "DecisionPipeline",
    "Outcome",
    "PendingBatch",
    "Replayed",
    "Runtime",
    "ScoredBatch",
    "TransactionConflict",
    "load_models",
]
