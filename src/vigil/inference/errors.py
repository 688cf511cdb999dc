"""Errors raised by the inference core; serving maps them to HTTP answers."""

from __future__ import annotations


class ModelLoadError(RuntimeError):
    """A model file is missing, unreadable, or does not meet the ONNX model contract."""


class ModelScoringError(RuntimeError):
    """The model failed at run time or produced something that is not a probability."""


class InvalidFeaturesError(ValueError):
    """Feature input has the wrong shape, dtype or columns for the loaded model."""


class NotDeployable(RuntimeError):
    """The experiment has not finished successfully, so it has no model to deploy (HTTP 409)."""
