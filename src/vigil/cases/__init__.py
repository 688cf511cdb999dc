"""The analysts' case queue: the day's riskiest cards, sized to the review budget.

- ``vigil.cases.queue``: :func:`day_queue` and :func:`card_case` (read model: cases with their
  transactions, scores, reasons, amount against the card's habit, the terminal's fraud run);
- verdicts are written by the one label path, :func:`vigil.decisions.labels.record_verdicts`.
"""

from vigil.cases.queue import (
    Case,
    CaseNotFound,
    CaseQueue,
    CaseStatus,
    CaseTransaction,
    card_case,
    day_queue,
    event_clock,
)

__all__ = [
    "Case",
    "CaseNotFound",
    "CaseQueue",
    "CaseStatus",
    "CaseTransaction",
    "card_case",
    "day_queue",
    "event_clock",
]
