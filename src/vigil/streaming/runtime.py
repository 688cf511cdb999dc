"""Builds the stream's collaborators from settings (model, state store, database)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from vigil.config import Settings
from vigil.features import OnlineFeatureComputer, StateStore, feature_names, make_state_store
from vigil.inference.manager import ModelManager
from vigil.storage import upgrade_database
from vigil.streaming.persistence import StreamStore
from vigil.streaming.pipeline import ScoringPipeline


@dataclass
class StreamRuntime:
    """What a worker or an in-process replay scores with."""

    state: StateStore
    features: OnlineFeatureComputer
    models: ModelManager
    pipeline: ScoringPipeline
    store: StreamStore

    @classmethod
    def build(cls, settings: Settings, source: str, migrate: bool = True) -> StreamRuntime:
        """Load the model, connect the state store and the database (migrating it if asked)."""
        if migrate:
            upgrade_database(settings.storage.database_url)
        models = ModelManager.from_paths(
            settings.inference.model_path, available_features=feature_names(settings.features)
        )
        state = make_state_store(settings.storage.state_url)
        features = OnlineFeatureComputer(settings.features, state)
        pipeline = ScoringPipeline(features, models, settings.inference.reason_codes, source)
        return cls(state, features, models, pipeline, StreamStore(settings.storage.database_url))

    async def close(self) -> None:
        """Release the database and the state store."""
        await self.store.close()
        await asyncio.to_thread(self.state.close)
