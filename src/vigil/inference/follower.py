"""Every serving process follows the models that any process deployed.

``POST /deploy`` (the champion) and ``POST /admin/challenger`` (the shadow challenger) reach
one API process; the other APIs and the stream workers learn about it from the
``deployments`` table (SQLite file or PostgreSQL, shared by all of them) and hot-swap the
model file themselves, with the same no-failed-request swap. A challenger row with an empty
model path records that the challenger was removed.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from sqlalchemy import Engine, inspect
from sqlalchemy.exc import SQLAlchemyError

from vigil.inference.errors import ModelLoadError
from vigil.inference.manager import ModelManager
from vigil.inference.roles import CHALLENGER, CHAMPION
from vigil.storage import Deployment, create_db_engine, latest_deployment

logger = logging.getLogger(__name__)

NO_CHALLENGER = ""
"""``model_version`` and ``model_path`` of a challenger deployment that removes it."""


class DeploymentFollower:
    """Applies champion and challenger deployments recorded after it started.

    History is not replayed: a process starts with the models its settings name.
    """

    def __init__(self, engine: Engine, models: ModelManager, interval_seconds: float = 2.0) -> None:
        self._engine = engine
        self._models = models
        self._interval = interval_seconds
        latest = self._latest()
        self._seen = {alias: d.id if d else None for alias, d in latest.items()}

    def _latest(self) -> dict[str, Deployment | None]:
        with self._engine.connect() as connection:
            return {alias: latest_deployment(connection, alias) for alias in (CHAMPION, CHALLENGER)}

    def check_once(self) -> bool:
        """Apply newer deployments if there are any; True when a model changed."""
        latest = self._latest()
        champion, challenger = latest[CHAMPION], latest[CHALLENGER]
        changed = False
        if champion is not None and champion.id != self._seen[CHAMPION]:
            changed |= self._follow_champion(champion)
            self._seen[CHAMPION] = champion.id
        if challenger is not None and challenger.id != self._seen[CHALLENGER]:
            changed |= self._follow_challenger(challenger)
            self._seen[CHALLENGER] = challenger.id
        return changed

    def _follow_champion(self, deployment: Deployment) -> bool:
        if deployment.model_version == self._models.snapshot().champion.model_version:
            return False  # this process made (or already has) the deployment
        self._models.deploy(Path(deployment.model_path))
        logger.info(
            "followed deployment %d: champion is %s", deployment.id, deployment.model_version
        )
        return True

    def _follow_challenger(self, deployment: Deployment) -> bool:
        current = self._models.snapshot().challenger
        wanted = deployment.model_version or None
        if wanted == (current.model_version if current is not None else None):
            return False
        self._models.set_challenger(Path(deployment.model_path) if wanted else None)
        logger.info("followed deployment %d: challenger is %s", deployment.id, wanted)
        return True

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


def follow_deployments(database_url: str, models: ModelManager) -> DeploymentFollower | None:
    """A follower of the database's deployments table, or None when it does not hold one."""
    engine = create_db_engine(database_url)
    try:
        if inspect(engine).has_table("deployments"):
            return DeploymentFollower(engine, models)
    except SQLAlchemyError as error:
        logger.warning("not following deployments of other processes: %s", error)
    engine.dispose()
    return None


async def run_follower(follower: DeploymentFollower) -> None:
    """Follow until cancelled, then release the follower's connections."""
    try:
        await follower.run()
    finally:
        follower.close()
