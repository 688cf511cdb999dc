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


class RecordRejected(StorageError):
    """The database refused this one record (its neighbours in the batch were stored)."""

    def __init__(self, transaction_id: int, reason: str) -> None:
        super().__init__(f"transaction {transaction_id} could not be stored ({reason})")
        self.transaction_id = transaction_id
        self.reason = reason


class AlreadyStored(RecordRejected):
    """The id was stored before this record's commit (another process's decision won).

    Not an error of the record: the caller answers with the stored decision instead.
    """

    def __init__(self, transaction_id: int) -> None:
        super().__init__(transaction_id, "already stored")
