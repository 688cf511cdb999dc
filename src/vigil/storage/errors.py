"""Storage errors the API and the stream worker turn into 503s or retries."""

from __future__ import annotations


class StorageError(RuntimeError):
    """Base class of Vigil's storage errors."""


class DatabaseUnavailable(StorageError):
    """The database cannot be reached; the record was not stored, try again later."""


class WriterOverloaded(StorageError):
    """The group-commit queue is full; push back (HTTP 503 with Retry-After)."""


class WriterClosed(StorageError):
    """The writer is stopped or stopping and accepts no new records."""
