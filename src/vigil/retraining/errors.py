"""Retraining errors: the serving layer maps each to one HTTP status."""

from __future__ import annotations


class RetrainingError(Exception):
    """Base class of the background-retraining domain errors."""


class ExperimentNotFound(RetrainingError, LookupError):
    """No experiment has this id (HTTP 404)."""


class RetrainInProgress(RetrainingError):
    """A retraining is already queued or running; only one runs at a time (HTTP 409)."""
