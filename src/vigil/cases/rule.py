"""The review rule: which cards a day's queue offers, and what a verdict labels.

One definition for the two implementations: the served queue and verdict (SQL:
:func:`vigil.storage.cases.top_cards`, :func:`vigil.decisions.labels.write_verdict`) and the
evaluation's simulated investigator (pandas: :mod:`vigil.feedback.investigator`), whose figures
the model card reports. ``tests/integration/test_review_rule_parity.py`` runs both on the same
day and asserts the same cards and the same labelled transactions. Parameters:
``cases.block_days``, ``cases.lookback_days``, ``cases.review_budget`` and
``features.label_delay_days`` (:mod:`vigil.config`).

**Blocked.** At ``now`` a card is known compromised when one of its frauds became known in
:func:`block_window` ``(now - block_days, now]``: a fraud verdict at its review time; a fraud
label at its arrival (``labelled_at``); and a fraud confirmed by a verdict again when its
delayed label falls due (transaction time + label delay: the simulated world's delayed label
arrives then whether or not a verdict came first; served, the stored label keeps the verdict's
time, so the verdict log stands in for it). Such a card is blocked (and reissued): the queue
leaves it out. A day's queue applies the rule at the day's start, where the investigator's
daily review round begins.

**Reviewed that day.** A card given a verdict for its case of the day is not offered again
that day: it keeps its place in the day's queue (its review spent a place of the budget) and
the other places go to the best open cards, neither blocked nor reviewed, ranked by their
highest score of the day (ties: the lower card id first). The day is the one whose queue the
review worked, not the day of the transactions the verdict labelled: a later day's verdict
whose look-back labels the card's transactions of this day does not make it reviewed here, so
a past day's queue stays the queue worked that day. Served, each verdict row records that day
(``verdicts.case_day``: the day of the case the verdict was given for, whenever it was given;
neither ``tx_datetime`` nor ``reviewed_at`` tells it: a review at the day's end is at the next
midnight); the investigator counts the cards of the day's own review rounds.

**A day's statuses and figures.** The same verdicts tell how far a day's review has come: a
case is reviewed when every transaction of its day has a verdict given for that day's case,
and its verdict is fraud when one of those is (decided once, where
:mod:`vigil.cases.queue` builds a case); the day's reviewed cards, frauds found and queue
precision count those cases (:func:`~vigil.cases.queue.day_queue`). A later day's look-back
verdict labels the transactions but reviews neither the case nor the day: read again, a past
day is the day worked, as the investigator's figures of the day (``ReviewState.queue``) are.
A case that a later day's verdict labelled before its own review was complete stays open: a
verdict given for it afterwards cannot label those transactions again (a label is final).

**What a verdict labels.** The card's transactions of the day so far and its transactions of
:func:`~vigil.cases.queue.lookback_bounds` (the ``lookback_days`` up to the day's end, the day
excluded) that have no verdict yet; served, also no label: a label is final. With
``lookback_days`` at most the label delay (the protocol: 7 and 7) no look-back transaction has
its delayed label yet when the day ends, so both label the same transactions (one exactly
``label_delay_days`` before the day's end would be the exception). A fraud verdict may mark
terminals compromised: the investigator those of its compromised-terminal frauds, the served
verdict those of all its frauds or of the ones it names (``compromised_transaction_ids``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TypeVar

Moment = TypeVar("Moment", bound=datetime)  # datetime or pandas.Timestamp


def block_window(now: Moment, block_days: int) -> tuple[Moment, Moment]:
    """``(after, until]``: a fraud of the card known in this window blocks it at ``now``."""
    return now - timedelta(days=block_days), now
