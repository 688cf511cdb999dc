"""One set-up for every adapter: models, state store, feature computer, pipeline, persistence.

The API's lifespan, the stream worker and the in-process replay all build their runtime here,
from the one ``Settings``; an adapter adds only its transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from vigil.config import Settings
from vigil.data.transaction import EventTimePolicy
from vigil.decisions.labels import CaseVerdict, VerdictOutcome, record_labels, record_verdict
from vigil.decisions.offline import BatchDecisions
from vigil.decisions.pipeline import DecisionPipeline, Guard, run_once
from vigil.decisions.recovery import StateRecovery
from vigil.features import (
    Label,
    OnlineFeatureComputer,
    StateStore,
    feature_names,
    make_state_store,
)
from vigil.inference.manager import ModelManager, scorer_loader
from vigil.monitoring import VigilMetrics
from vigil.storage import GroupCommitWriter, LabelRecord, upgrade_database
from vigil.storage.store import DecisionStore


def load_models(settings: Settings) -> ModelManager:
    """Load the configured model as champion with the configured backend (``ModelLoadError``)."""
    return ModelManager.from_paths(
        settings.inference.model_path,
        available_features=feature_names(settings.features),
        loader=scorer_loader(settings.inference),
    )


@dataclass
class Runtime:
    """What one process decides with; :meth:`close` releases what :meth:`build` opened."""

    settings: Settings
    state: StateStore
    features: OnlineFeatureComputer
    models: ModelManager
    pipeline: DecisionPipeline
    batches: BatchDecisions
    store: DecisionStore
    event_time: EventTimePolicy
    writer: GroupCommitWriter | None = None
    owns_state: bool = field(default=True, repr=False)
    recovery: StateRecovery | None = None  # a shared (Redis) store's automatic recovery
    _watching: asyncio.Task[None] | None = field(default=None, repr=False)

    @classmethod
    def build(
        cls,
        settings: Settings,
        source: str,
        migrate: bool = True,
        *,
        metrics: VigilMetrics | None = None,
        models: ModelManager | None = None,
        state: StateStore | None = None,
        writer: GroupCommitWriter | None = None,
    ) -> Runtime:
        """Migrate the database (if asked), load the model and connect the state store.

        Objects passed in are used as they are and left for the caller to close. With a
        ``writer`` (the API), decisions are persisted through its group commit, shared by
        concurrent requests; without one (the stream worker, whose micro-batch already is the
        group), each batch is one commit of :class:`DecisionStore`.
        """
        if migrate:
            upgrade_database(settings.storage.database_url)
        owns_state = state is None
        state = state if state is not None else make_state_store(settings.storage.state_url)
        features = OnlineFeatureComputer(settings.features, state)
        models = models if models is not None else load_models(settings)
        store = DecisionStore(settings.storage.database_url)
        pipeline = DecisionPipeline(
            features,
            models,
            settings.inference.reason_codes,
            source,
            metrics,
            persist=writer.submit_many if writer is not None else store.save_predictions,
            lookup=store.stored_records,
        )
        return cls(
            settings,
            state,
            features,
            models,
            pipeline,
            BatchDecisions(settings, pipeline),
            store,
            EventTimePolicy.from_config(settings.data),
            writer,
            owns_state,
            StateRecovery.of(features, settings.storage, metrics),
        )

    def watch_state(self) -> None:
        """Start the state store's automatic recovery in the background (a Redis store: its
        servers checked off the request path, :mod:`vigil.decisions.recovery`); call from the
        running event loop. :meth:`close` stops it."""
        if self.recovery is not None and self._watching is None:
            self._watching = asyncio.create_task(self.recovery.run(), name="state-recovery")

    async def record_labels(
        self,
        records: Sequence[LabelRecord],
        uploaded: Sequence[Label] = (),
        guard: Guard = run_once,
        observe_state_seconds: Callable[[float], None] | None = None,
    ) -> None:
        """Store verdicts and feed them into the online state (:func:`record_labels`)."""
        await record_labels(
            self.store, self.features, records, uploaded, guard, observe_state_seconds
        )

    async def record_verdict(self, verdict: CaseVerdict) -> VerdictOutcome:
        """Log an analyst's verdict, label the card's transactions, feed the state."""
        return await record_verdict(
            self.store, self.features, verdict, self.settings.cases.lookback_days
        )

    async def close(self) -> None:
        """Stop the recovery; release the database and (when built here) the state store."""
        if self._watching is not None:
            # cancelled until it ends: one cancellation may be absorbed by library code
            while not self._watching.done():
                self._watching.cancel()
                await asyncio.wait({self._watching}, timeout=1.0)
            self._watching = None
        await self.store.close()
        if self.owns_state:
            await asyncio.to_thread(self.state.close)
