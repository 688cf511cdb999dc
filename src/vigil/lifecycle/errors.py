"""Lifecycle errors: the serving layer maps each to one HTTP status."""

from __future__ import annotations


class LifecycleError(Exception):
    """Base class of the model-lifecycle domain errors."""


class ExperimentNotFound(LifecycleError, LookupError):
    """No experiment has this id (HTTP 404)."""


class RetrainInProgress(LifecycleError):
    """A retraining is already queued or running; only one runs at a time (HTTP 409)."""


class NotDeployable(LifecycleError):
    """The experiment has not finished successfully, so it has no model to deploy (HTTP 409)."""


class RejectedData(LifecycleError, ValueError):
    """An uploaded batch broke the data contract; nothing was written (HTTP 422)."""
