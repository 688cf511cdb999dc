"""The contract between a trained model file and every serving path.

Every exported ONNX model, whatever its kind, has one float32 input ``features`` of shape
``[batch, n_features]`` holding raw (unscaled) feature values in ``feature_names`` order, and
one float32 output ``score`` of shape ``[batch]``: the fraud probability. Scaling lives inside
the graph. The fields below travel in the ONNX ``metadata_props`` as strings (JSON for lists
and mappings).
"""

from __future__ import annotations

import json
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

INPUT_NAME = "features"
OUTPUT_NAME = "score"


class ModelMetadata(BaseModel):
    """What a model file says about itself."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    model_version: str = Field(description="Unique version, e.g. '<experiment>-<run id>'.")
    model_kind: str = Field(description="mlp | lightgbm | logistic | ensemble")
    experiment_name: str
    git_commit: str
    saved_at: datetime
    feature_names: list[str] = Field(min_length=1)
    feature_means: list[float] = Field(
        description="Training means (the warm-up and Triton checks score this row); the reason "
        "codes' baseline only when reason_baseline is None."
    )
    reason_baseline: list[float] | None = Field(
        default=None,
        description="A typical genuine payment: the per-feature median of the genuine training "
        "rows, the reason codes' baseline. None in models written before it existed (and in "
        "streamed fits): the training means are used.",
    )
    threshold: float = Field(ge=0.0, le=1.0)
    metrics: dict[str, float] = Field(default_factory=dict)

    def to_props(self) -> dict[str, str]:
        """Flatten to ONNX ``metadata_props`` (string to string)."""
        raw = self.model_dump(mode="json")
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}

    @classmethod
    def from_props(cls, props: dict[str, str]) -> ModelMetadata:
        """Parse ONNX ``metadata_props`` back; raises ``pydantic.ValidationError`` if malformed."""
        parsed: dict[str, object] = {}
        for key, value in props.items():
            if key in cls.model_fields:
                annotation = cls.model_fields[key].annotation
                parsed[key] = value if annotation in (str, datetime) else json.loads(value)
        return cls.model_validate(parsed)
