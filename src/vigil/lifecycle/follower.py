"""Every serving process follows the champion that any process deployed.

``POST /deploy`` reaches one API process; the others learn about it from the
``deployments`` table (SQLite file or PostgreSQL, shared by all of them) and hot-swap the
installed model file themselves, with the same no-failed-request swap.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from sqlalchemy import Engine, inspect
from sqlalchemy.exc import SQLAlchemyError

from vigil.inference.errors import ModelLoadError
from vigil.inference.manager import ModelManager
from vigil.storage import create_db_engine, latest_deployment

logger = logging.getLogger(__name__)


class ChampionFollower:
    """Swaps in champion deployments recorded after it started (history is not replayed)."""

    def __init__(self, engine: Engine, models: ModelManager, interval_seconds: float = 2.0) -> None:
        self._engine = engine
        self._models = models
        self._interval = interval_seconds
        self._seen = self._latest_id()

    def _latest_id(self) -> int | None:
        with self._engine.connect() as connection:
            latest = latest_deployment(connection)
        return latest.id if latest is not None else None

    def check_once(self) -> bool:
        """Swap in a newer deployment if there is one; True when the champion changed."""
        with self._engine.connect() as connection:
            latest = latest_deployment(connection)
        if latest is None or latest.id == self._seen:
            return False
        changed = latest.model_version != self._models.snapshot().champion.model_version
        if changed:  # else this process made (or already has) the deployment
            self._models.deploy(Path(latest.model_path))
            logger.info("followed deployment %d: champion is %s", latest.id, latest.model_version)
        self._seen = latest.id
        return changed

    async def run(self) -> None:
        """Poll until cancelled; a failed check is logged and retried at the next tick."""
        while True:
            await asyncio.sleep(self._interval)
            try:
                await asyncio.to_thread(self.check_once)
            except (SQLAlchemyError, ModelLoadError) as error:
                logger.warning("could not follow the latest deployment: %s", error)

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()


def follow_deployments(database_url: str, models: ModelManager) -> ChampionFollower | None:
    """A follower of the database's deployments table, or None when it does not hold one."""
    engine = create_db_engine(database_url)
    try:
        if inspect(engine).has_table("deployments"):
            return ChampionFollower(engine, models)
    except SQLAlchemyError as error:
        logger.warning("not following deployments of other processes: %s", error)
    engine.dispose()
    return None


async def run_follower(follower: ChampionFollower) -> None:
    """Follow until cancelled, then release the follower's connections."""
    try:
        await follower.run()
    finally:
        follower.close()
