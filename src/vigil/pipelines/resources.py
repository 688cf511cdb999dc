"""What assets and sensors receive: the one ``Settings`` object and the database.

Both are plain objects handed to Dagster as resources. Production builds them from
``configs/vigil.yaml`` and ``VIGIL_*`` (:func:`vigil.pipelines.definitions.defs`); tests build
them from their own small settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import Engine

from vigil.config import Settings
from vigil.storage import create_db_engine

SETTINGS = "vigil"
DATABASE = "database"


def partition_day(partition_key: str) -> date:
    """The day of a daily partition key (``YYYY-MM-DD``)."""
    return date.fromisoformat(partition_key)


@dataclass(frozen=True)
class SettingsResource:
    """The process's one settings object."""

    settings: Settings


@dataclass
class DatabaseResource:
    """The storage database (SQLite file or PostgreSQL), opened on first use."""

    url: str
    _engine: Engine | None = field(default=None, init=False, repr=False)

    @property
    def engine(self) -> Engine:
        """A SQLAlchemy engine for ``url``, created once."""
        if self._engine is None:
            self._engine = create_db_engine(self.url, pool_size=1)
        return self._engine


def build_resources(settings: Settings) -> dict[str, object]:
    """The resources of :func:`vigil.pipelines.definitions.build_definitions`."""
    return {
        SETTINGS: SettingsResource(settings),
        DATABASE: DatabaseResource(settings.storage.database_url),
    }
