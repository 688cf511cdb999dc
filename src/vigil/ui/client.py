"""The UI's HTTP client of the Vigil API: scoring, evaluation, model metadata and cases.

Every page that scores or shows a model goes through :class:`ApiClient`, so the UI runs the
API's one decision path. The client talks either to a running API (``vigil ui --api-url``)
or to an API app built in this process (:func:`in_process_client`), so the UI also works
with no server at all (``make demo``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from types import TracebackType
from typing import Protocol, TypeVar
from urllib.parse import urlencode

import httpx
import pandas as pd
from fastapi.testclient import TestClient
from pydantic import BaseModel, ValidationError

from vigil.config import Settings
from vigil.inference.decision import Decision
from vigil.inference.reasons import ReasonCode
from vigil.serving import create_app
from vigil.serving.case_schemas import CardCaseOut, CaseQueueOut, VerdictIn, VerdictOut
from vigil.serving.schemas import DecisionOut, EvaluateOut, MetadataOut, Transaction

# Scoring a simulated world through /evaluate takes seconds; one transaction, milliseconds.
TIMEOUT_SECONDS = 60.0
IN_PROCESS_URL = "http://vigil.in-process"
JSON, CSV = "application/json", "text/csv"

BodyT = TypeVar("BodyT", bound=BaseModel)


class HttpResponse(Protocol):
    """What the client reads of an answer (``httpx`` and Starlette's test client agree)."""

    @property
    def status_code(self) -> int: ...

    @property
    def content(self) -> bytes: ...

    @property
    def text(self) -> str: ...


class HttpClient(Protocol):
    """A synchronous HTTP client: ``httpx.Client`` or Starlette's ``TestClient``."""

    def request(
        self, method: str, url: str, *, content: bytes | None, headers: dict[str, str]
    ) -> HttpResponse: ...

    def close(self) -> None: ...


class ApiError(RuntimeError):
    """The API could not be reached or did not answer as documented."""


def as_decision(body: DecisionOut) -> Decision:
    """The domain decision of one ``DecisionOut`` body."""
    return Decision(
        transaction_id=body.transaction_id if body.transaction_id is not None else 0,
        score=body.score,
        label=body.label,
        threshold=body.threshold,
        reason_codes=tuple(
            # a repeated transaction_id's stored decision keeps no contributions: NaN (blank)
            ReasonCode(r.feature, math.nan if r.contribution is None else r.contribution)
            for r in body.reason_codes
        ),
        model_version=body.model_version,
    )


class ApiClient:
    """Typed calls to the API's scoring, model and case routes over one HTTP client.

    ``http`` is a network client of a remote API, or the in-process client of
    :func:`in_process_client`. ``api_key`` goes with every request (the case routes need
    it). Closing the ``ApiClient`` closes ``http``.
    """

    def __init__(
        self,
        http: HttpClient,
        description: str,
        on_close: Callable[[], None] | None = None,
        api_key: str | None = None,
    ) -> None:
        self._http = http
        self._on_close = on_close if on_close is not None else http.close
        self._headers = {"X-API-Key": api_key} if api_key else {}
        self.description = description

    @classmethod
    def remote(cls, base_url: str, api_key: str | None = None) -> ApiClient:
        """A client of the API at ``base_url``."""
        http = httpx.Client(base_url=base_url, timeout=TIMEOUT_SECONDS)
        return cls(http, f"the API at {base_url}", api_key=api_key)

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP client (and stop an in-process API)."""
        self._on_close()

    def predict(self, transaction: Transaction) -> Decision:
        """``POST /predict``: the decision for one transaction (the API stores it)."""
        content = self._call("POST", "/predict", transaction.model_dump_json().encode(), JSON)
        return as_decision(self._parse(DecisionOut, "/predict", content))

    def metadata(self) -> MetadataOut:
        """``GET /metadata``: the champion's (and any challenger's) metadata."""
        return self._parse(MetadataOut, "/metadata", self._call("GET", "/metadata"))

    def evaluate(self, labelled: pd.DataFrame, columns: Sequence[str]) -> EvaluateOut:
        """``POST /evaluate``: ``labelled``'s ``columns`` as CSV, scored and measured."""
        csv = labelled.to_csv(columns=list(columns), index=False)
        content = self._call("POST", "/evaluate", csv.encode(), CSV)
        return self._parse(EvaluateOut, "/evaluate", content)

    def cases(
        self, day: date | None = None, budget: int | None = None, status: str | None = None
    ) -> CaseQueueOut:
        """``GET /cases``: the day's queue (default today, the configured budget)."""
        query = {"day": day.isoformat() if day else None, "budget": budget, "status": status}
        path = "/cases" + _query(query)
        return self._parse(CaseQueueOut, "/cases", self._call("GET", path))

    def case(self, customer_id: int, day: date | None = None) -> CardCaseOut:
        """``GET /cases/{customer_id}``: one card's case of the day, with its look-back."""
        path = f"/cases/{customer_id}" + _query({"day": day.isoformat() if day else None})
        return self._parse(CardCaseOut, "/cases/{customer_id}", self._call("GET", path))

    def verdict(self, customer_id: int, verdict: VerdictIn) -> VerdictOut:
        """``POST /cases/{customer_id}/verdict``: the card's transactions labelled at once."""
        body = verdict.model_dump_json(exclude_none=True).encode()
        content = self._call("POST", f"/cases/{customer_id}/verdict", body)
        return self._parse(VerdictOut, "/cases/{customer_id}/verdict", content)

    def _call(
        self, method: str, path: str, body: bytes | None = None, media_type: str = JSON
    ) -> bytes:
        try:
            response = self._http.request(
                method, path, content=body, headers={"Content-Type": media_type, **self._headers}
            )
        except httpx.HTTPError as error:
            raise ApiError(f"could not reach {self.description}: {error}") from error
        if not 200 <= response.status_code < 300:
            raise ApiError(
                f"{method} {path} answered {response.status_code}: {response.text[:500]}"
            )
        return response.content

    @staticmethod
    def _parse(model: type[BodyT], path: str, content: bytes) -> BodyT:
        try:
            return model.model_validate_json(content)
        except ValidationError as error:
            raise ApiError(f"{path} answered an unexpected body: {error}") from error


def _query(values: Mapping[str, object]) -> str:
    """``?a=1&b=2`` of the values that are set ("" when none is)."""
    given = {key: str(value) for key, value in values.items() if value is not None}
    return "?" + urlencode(given) if given else ""


def in_process_client(settings: Settings) -> ApiClient:
    """The API app built from ``settings``, started in this process, behind an HTTP client.

    The app runs its normal start-up (model, state store, migrated database, writer), so
    what the UI scores here is stored and explained exactly as ``vigil serve`` would.
    Raises what the start-up raises (``ModelLoadError`` when there is no model).
    """
    http = TestClient(create_app(settings), base_url=IN_PROCESS_URL, raise_server_exceptions=False)
    http.__enter__()  # runs the app's start-up; leaving runs its shut-down

    def stop() -> None:
        http.__exit__(None, None, None)

    key = settings.serving.api_key.get_secret_value()
    return ApiClient(http, "the in-process API", on_close=stop, api_key=key)
