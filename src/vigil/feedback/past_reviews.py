"""Verdict features for training on simulated data: a simulated investigator's past reviews.

A model with the verdict features (``features.verdicts``) trains on a verdict log of its own
period. A deployment's analysts leave one in the ``verdicts`` table; a simulated world has
none, so a simulated investigator makes it, as ``vigil evaluate --feedback`` does: a model
without the verdict features scores every day, the investigator reviews each day's top cards
(the served queue's rule, :class:`~vigil.feedback.investigator.ReviewPolicy`) and their
verdicts count from the round's end. The log covers the whole table, test week included, so
the test figures are those of a team working the queue on the point-in-time model's scores.

It reads the generator's fraud scenario (an investigator marks a compromised terminal only
for its frauds), so it is for simulated data only; ADR 0017 says why the served default
keeps the group off.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import pandas as pd

from vigil.config import Settings
from vigil.data import schema
from vigil.features.verdict_sql import with_verdict_features
from vigil.feedback.evaluation import point_in_time_scores
from vigil.feedback.investigator import ReviewPolicy, review_scored_period
from vigil.training.data import FeatureTable
from vigil.training.splits import handbook_split

logger = logging.getLogger(__name__)


def simulated_verdict_log(settings: Settings, frame: pd.DataFrame) -> pd.DataFrame:
    """The verdict log a team working the queue on a point-in-time model's scores would have
    left over ``frame`` (a feature table with the generator's fraud scenario)."""
    if schema.TX_FRAUD_SCENARIO not in frame.columns:
        raise ValueError(
            f"simulated verdicts need the generator's {schema.TX_FRAUD_SCENARIO} column: "
            "they are for simulated data only"
        )
    split = handbook_split(frame, settings.train)
    scores = point_in_time_scores(settings, frame, split)
    policy = ReviewPolicy.of(settings.cases)
    end = pd.Timestamp(split.periods.test_end)
    delay = settings.features.label_delay_days
    state = review_scored_period(frame, scores.to_numpy(), policy, delay, end)
    return state.log


def with_simulated_verdicts(settings: Settings, table: FeatureTable) -> FeatureTable:
    """``table`` with the verdict features from :func:`simulated_verdict_log`."""
    if not settings.features.verdicts:
        raise ValueError("simulated verdicts feed the verdict features: set features.verdicts=true")
    log = simulated_verdict_log(settings, table.frame)
    frauds = int(log[schema.TX_FRAUD].sum())
    logger.info("simulated investigator: %d verdicts, %d of them fraud", len(log), frauds)
    frame = with_verdict_features(settings.features, table.frame, log)
    return replace(table, frame=frame)
