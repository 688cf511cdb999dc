"""What routes receive: the running services, as named dependency types."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from vigil.config import Settings
from vigil.data.transaction import EventTimePolicy
from vigil.decisions import Runtime
from vigil.features import OnlineFeatureComputer, StateStore
from vigil.inference.manager import ModelManager
from vigil.monitoring import VigilMetrics
from vigil.serving.case_service import CaseService
from vigil.serving.errors import NotReady
from vigil.serving.model_lifecycle import LifecycleServices
from vigil.serving.service import PredictionService
from vigil.storage import GroupCommitWriter


@dataclass(frozen=True, slots=True)
class Services:
    """Everything one API process runs on, built once in the lifespan."""

    settings: Settings
    metrics: VigilMetrics
    runtime: Runtime
    writer: GroupCommitWriter
    predictions: PredictionService
    lifecycle: LifecycleServices
    cases: CaseService

    @property
    def models(self) -> ModelManager:
        """The champion and challenger holder (hot swaps)."""
        return self.runtime.models

    @property
    def store(self) -> StateStore:
        """The online state store."""
        return self.runtime.state

    @property
    def features(self) -> OnlineFeatureComputer:
        """The online feature computer over the state store."""
        return self.runtime.features

    @property
    def event_time(self) -> EventTimePolicy:
        """The transaction contract's event-time policy."""
        return self.runtime.event_time


def get_services(request: Request) -> Services:
    """The services of the running app; 503 while starting or stopping."""
    services: Services | None = getattr(request.app.state, "services", None)
    if services is None:
        raise NotReady("service is starting or stopping")
    return services


def get_prediction_service(request: Request) -> PredictionService:
    """The prediction service (the hot path calls this directly, skipping ``Depends``)."""
    return get_services(request).predictions


def get_lifecycle(request: Request) -> LifecycleServices:
    """The lifecycle services of the running app (retrain runner, training data, engine)."""
    return get_services(request).lifecycle


ServicesDep = Annotated[Services, Depends(get_services)]
LifecycleDep = Annotated[LifecycleServices, Depends(get_lifecycle)]
