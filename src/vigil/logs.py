"""Logging set-up for entry points: plain text for humans, JSON for services."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

PLAIN_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure_logging(verbose: bool = False, json_format: bool = False) -> None:
    """Configure the root logger once, from an entry point; library code never calls this."""
    handler = logging.StreamHandler(sys.stderr)
    if json_format:
        handler.setFormatter(JsonFormatter(JSON_FIELDS, rename_fields={"levelname": "level"}))
    else:
        handler.setFormatter(logging.Formatter(PLAIN_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("urllib3", "matplotlib", "asyncio", "aiormq", "aio_pika", "filelock", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
