"""The current request's id, visible to handlers and to every log record."""

from __future__ import annotations

import logging
from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("vigil_request_id", default=None)


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every log record (JSON logs show it as a field)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Attach the current request's id; always keep the record."""
        record.request_id = request_id_var.get()
        return True
