"""HTTP bodies of the inference service, with the examples shown at ``/docs``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vigil.data.transaction import FraudLabel, Id, TransactionFields, check_extras
from vigil.decisions.idempotency import Replayed
from vigil.inference.decision import Decision
from vigil.inference.metadata import ModelMetadata

TRANSACTION_EXAMPLE: dict[str, Any] = {
    "transaction_id": 1754155,
    "tx_datetime": "2018-09-30T23:56:36",
    "customer_id": 2513,
    "terminal_id": 7438,
    "tx_amount": 57.16,
}
DECISION_EXAMPLE: dict[str, Any] = {
    "transaction_id": 1754155,
    "score": 0.0132,
    "label": 0,
    "threshold": 0.35,
    "reason_codes": [],
    "model_version": "vigil-3f2a9c1d",
}


class Transaction(TransactionFields):
    """One card payment to score (the handbook's schema; small extra fields pass through).

    The rules are the transaction contract's (:mod:`vigil.data.transaction`).
    """

    model_config = ConfigDict(
        extra="allow", frozen=True, json_schema_extra={"examples": [TRANSACTION_EXAMPLE]}
    )

    def extra_fields(self) -> dict[str, Any] | None:
        """The body's extra fields (validated by the contract's extra-field policy)."""
        return self.__pydantic_extra__ or None

    @model_validator(mode="after")
    def _bounded_extras(self) -> Transaction:
        """Extra fields obey the contract's extra-field policy."""
        if self.__pydantic_extra__:
            check_extras(self.__pydantic_extra__)
        return self


class LabelledTransaction(Transaction):
    """A transaction with its known outcome, for ``/evaluate``."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{**TRANSACTION_EXAMPLE, "tx_fraud": 0}]}
    )

    tx_fraud: FraudLabel = Field(description="1 = fraud, 0 = genuine.")


class ReasonCodeOut(BaseModel):
    """A feature that pushed the score up, and by how much (probability points)."""

    feature: str = Field(
        description="A model input, or a feature family (e.g. terminal_verdicts, terminal_risk) "
        "when the family together carries the signal that its members carry one by one "
        "only in part (vigil.features.definitions.feature_families)."
    )
    contribution: float | None = Field(
        description="null when the answer is the stored decision of a repeated transaction_id "
        "(the reason features are stored, not their contributions)."
    )


class DecisionOut(BaseModel):
    """The answer for one transaction: score, decision and why."""

    model_config = ConfigDict(
        protected_namespaces=(), json_schema_extra={"examples": [DECISION_EXAMPLE]}
    )

    transaction_id: int | None
    score: float = Field(description="Fraud probability in [0, 1].")
    label: int = Field(description="1 = flagged as fraud (score >= threshold), 0 = legitimate.")
    threshold: float
    reason_codes: list[ReasonCodeOut] = Field(
        description="Features or feature families that pushed the score up most "
        "(explained for flagged rows)."
    )
    model_version: str


# The default model's 24 features (configs/vigil.yaml), for examples that the API answers.
FEATURES_EXAMPLE: dict[str, Any] = {
    "tx_amount": 57.16,
    "tx_during_weekend": 1.0,
    "tx_during_night": 0.0,
    "customer_id_nb_tx_1day_window": 3.0,
    "customer_id_avg_amount_1day_window": 49.2,
    "customer_id_nb_tx_7day_window": 19.0,
    "customer_id_avg_amount_7day_window": 52.7,
    "customer_id_nb_tx_30day_window": 81.0,
    "customer_id_avg_amount_30day_window": 51.9,
    "terminal_id_nb_tx_1day_window": 1.0,
    "terminal_id_risk_1day_window": 0.0,
    "terminal_id_nb_tx_7day_window": 8.0,
    "terminal_id_risk_7day_window": 0.0,
    "terminal_id_nb_tx_30day_window": 33.0,
    "terminal_id_risk_30day_window": 0.0,
    "customer_id_amount_over_avg_longest_window": 1.1,
    "customer_id_seconds_since_prev_tx": 5400.0,
    "customer_id_risk_longest_window": 0.0,
    "customer_id_amount_over_prior_median": 1.2,
    "customer_id_amount_over_prior_mean": 1.1,
    "customer_id_max_amount_7day_over_prior_median": 2.0,
    "terminal_id_days_since_first_known_fraud": -1.0,
    "terminal_id_days_since_last_known_fraud": -1.0,
    "terminal_id_nb_fraud_longest_window": 0.0,
}


class ForwardRequest(BaseModel):
    """Model-only input: feature values by name, or a list in the model's feature order.

    ``/forward`` also takes a transaction in ``/predict``'s shape (:class:`Transaction`).
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"transaction_id": 17, "features": FEATURES_EXAMPLE},
                {"features": list(FEATURES_EXAMPLE.values())},
            ]
        },
    )

    transaction_id: Id | None = None
    features: dict[str, float] | list[float]


class BatchOut(BaseModel):
    """Results of a batch, in the order of the input rows."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"results": [DECISION_EXAMPLE]}]})

    results: list[DecisionOut]


class EvaluationMetrics(BaseModel):
    """Quality of the serving model on a labelled upload (metric code shared with training)."""

    model_config = ConfigDict(extra="allow")

    n_transactions: int
    n_frauds: int
    auc_roc: float | None = Field(description="None when the upload holds a single class.")
    average_precision: float | None
    precision: float = Field(description="At the model's decision threshold.")
    recall: float
    card_precision_at_k: float
    k: int


class EvaluateOut(BaseModel):
    """Predictions for every uploaded row plus the metrics they earn."""

    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "examples": [
                {
                    "model_version": "vigil-3f2a9c1d",
                    "metrics": {
                        "n_transactions": 2,
                        "n_frauds": 1,
                        "auc_roc": 1.0,
                        "average_precision": 1.0,
                        "precision": 1.0,
                        "recall": 1.0,
                        "card_precision_at_k": 0.5,
                        "k": 100,
                    },
                    "predictions": [DECISION_EXAMPLE],
                }
            ]
        },
    )

    model_version: str
    metrics: EvaluationMetrics
    predictions: list[DecisionOut]


class HealthOut(BaseModel):
    """Liveness and readiness: ``ready`` when every dependency answers, ``degraded`` (still
    200) when only the state store's warm-up marker is gone, ``unavailable`` (503) otherwise."""

    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "examples": [
                {
                    "status": "ready",
                    "checks": {
                        "model": True,
                        "database": True,
                        "state_store": True,
                        "state_warm": True,
                    },
                    "model_version": "vigil-3f2a9c1d",
                }
            ]
        },
    )

    status: Literal["ready", "degraded", "unavailable"]
    checks: dict[str, bool]
    model_version: str | None


class MetadataOut(BaseModel):
    """Metadata of the serving (champion) model and of the challenger in shadow, if any."""

    model_config = ConfigDict(protected_namespaces=())

    champion: ModelMetadata
    challenger: ModelMetadata | None = None


# A file path as the OS takes it: no NUL; PATH_MAX (4096) at most. A name longer than the file
# system allows is refused when the model loads (422, ModelLoadError).
ModelPath = Annotated[str, Field(min_length=1, max_length=4096, pattern=r"^[^\x00]+$")]


class ReloadRequest(BaseModel):
    """Load a model file beside the serving one and swap atomically."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"model_path": "models/current/model.onnx"}]},
    )

    model_path: ModelPath


class ChallengerRequest(BaseModel):
    """Load a model file as the shadow challenger, or remove it with ``null``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"model_path": "models/next/model.onnx"}]},
    )

    model_path: ModelPath | None


class ReloadOut(BaseModel):
    """The model now serving in the role and the one it replaced."""

    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "examples": [{"model_version": "vigil-9b1e0c2f", "previous_version": "vigil-3f2a9c1d"}]
        },
    )

    model_version: str | None
    previous_version: str | None


class ErrorOut(BaseModel):
    """A JSON error: what went wrong, and the request id to quote in a support ticket."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"detail": "service overloaded", "request_id": "9f1c"}]}
    )

    detail: str
    request_id: str | None = None


UNREADABLE_BODY: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorOut,
        "description": "The body could not be read as JSON (not UTF-8, or nested too deep).",
    }
}
"""The answer of a route whose JSON body FastAPI parses, to a body it cannot parse."""


class AddDataOut(BaseModel):
    """What one training-data upload did (``PUT /add_data``)."""

    received: int
    appended: int
    duplicates: int
    duplicate_ids: list[int]


class RetrainOut(BaseModel):
    """The queued experiment (``PUT /retrain``)."""

    experiment_id: int
    status: str


class ExperimentOut(BaseModel):
    """One experiment: status, metrics, MLflow run id and timings (``GET /metrics/{id}``)."""

    experiment_id: int
    status: str
    metrics: dict[str, float] | None
    mlflow_run_id: str | None
    model_path: str | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None


class DeployOut(BaseModel):
    """The model now serving, the one it replaced, and the registry alias update."""

    experiment_id: int
    model_version: str
    previous_version: str
    model_path: str
    registry_version: int | None
    registry_error: str | None = None


def replayed_body(replayed: Replayed) -> dict[str, Any]:
    """The stored decision of a repeated transaction id, as :class:`DecisionOut` documents."""
    record = replayed.record
    return {
        "transaction_id": record.transaction_id,
        "score": record.score,
        "label": record.label,
        "threshold": record.threshold,
        "reason_codes": [{"feature": name, "contribution": None} for name in record.reason_codes],
        "model_version": record.model_version,
    }


def decision_body(decision: Decision) -> dict[str, Any]:
    """A decision as the JSON object :class:`DecisionOut` documents (built without pydantic)."""
    return {
        "transaction_id": decision.transaction_id,
        "score": decision.score,
        "label": decision.label,
        "threshold": decision.threshold,
        "reason_codes": [
            {"feature": reason.feature, "contribution": reason.contribution}
            for reason in decision.reason_codes
        ],
        "model_version": decision.model_version,
    }


def request_body_schema(
    model: type[BaseModel],
    *,
    array: bool = False,
    csv: bool = False,
    json: bool = True,
    alternative: type[BaseModel] | None = None,
) -> dict[str, Any]:
    """``openapi_extra`` documenting a body a route reads by hand (JSON, CSV, upload);
    ``alternative``: a second accepted JSON shape, listed first with its examples."""
    schema = model.model_json_schema()
    if alternative is not None:
        other = alternative.model_json_schema()
        examples = [*other.get("examples", []), *schema.get("examples", [])]
        schema = {"anyOf": [other, schema], "examples": examples}
    content: dict[str, Any] = {}
    if json:
        body = {"type": "array", "items": schema, "minItems": 1} if array else schema
        content["application/json"] = {"schema": body}
    if csv:
        content["text/csv"] = {"schema": {"type": "string"}}
        content["multipart/form-data"] = {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            }
        }
    return {"requestBody": {"required": True, "content": content}}
