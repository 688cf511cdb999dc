"""The model-metadata contract survives the trip through ONNX metadata_props."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from vigil.inference.metadata import ModelMetadata


def _metadata() -> ModelMetadata:
    return ModelMetadata(
        model_version="vigil-abc123",
        model_kind="mlp",
        experiment_name="vigil",
        git_commit="0123abcd",
        saved_at=datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
        feature_names=["tx_amount", "tx_during_night"],
        feature_means=[53.2, 0.1],
        threshold=0.35,
        metrics={"average_precision": 0.7},
    )


def test_props_round_trip_exactly() -> None:
    original = _metadata()
    props = original.to_props()
    assert all(isinstance(v, str) for v in props.values())
    assert ModelMetadata.from_props(props) == original


def test_missing_feature_names_is_rejected() -> None:
    props = _metadata().to_props()
    del props["feature_names"]
    with pytest.raises(ValidationError, match="feature_names"):
        ModelMetadata.from_props(props)
