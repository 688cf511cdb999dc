"""Errors raised when a saved model artifact cannot be used."""

from __future__ import annotations


class ArtifactError(RuntimeError):
    """A model artifact (directory or file) is missing, incomplete or corrupted."""
