"""The UI's HTTP client for the Vigil API: ``POST /predict`` and ``GET /metadata``."""

from __future__ import annotations

import httpx
from pydantic import ValidationError

from vigil.inference.decision import Decision
from vigil.inference.reasons import ReasonCode
from vigil.serving.schemas import DecisionOut, MetadataOut, Transaction

TIMEOUT_SECONDS = 10.0


class ApiError(RuntimeError):
    """The API could not be reached or did not answer as documented."""


def make_client(base_url: str) -> httpx.Client:
    """An HTTP client for the API at ``base_url``."""
    return httpx.Client(base_url=base_url, timeout=TIMEOUT_SECONDS)


def _get_json(client: httpx.Client, method: str, path: str, body: str | None = None) -> bytes:
    try:
        response = client.request(
            method, path, content=body, headers={"Content-Type": "application/json"}
        )
    except httpx.HTTPError as error:
        raise ApiError(f"could not reach the API at {client.base_url}: {error}") from error
    if response.status_code != 200:
        raise ApiError(f"{method} {path} answered {response.status_code}: {response.text[:500]}")
    return response.content


def predict(client: httpx.Client, transaction: Transaction) -> Decision:
    """Score one transaction with the serving model (the API stores the prediction)."""
    content = _get_json(client, "POST", "/predict", transaction.model_dump_json())
    try:
        body = DecisionOut.model_validate_json(content)
    except ValidationError as error:
        raise ApiError(f"/predict answered an unexpected body: {error}") from error
    return Decision(
        transaction_id=body.transaction_id if body.transaction_id is not None else 0,
        score=body.score,
        label=body.label,
        threshold=body.threshold,
        reason_codes=tuple(ReasonCode(r.feature, r.contribution) for r in body.reason_codes),
        model_version=body.model_version,
    )


def metadata(client: httpx.Client) -> MetadataOut:
    """Metadata of the API's champion (and challenger) models."""
    content = _get_json(client, "GET", "/metadata")
    try:
        return MetadataOut.model_validate_json(content)
    except ValidationError as error:
        raise ApiError(f"/metadata answered an unexpected body: {error}") from error
