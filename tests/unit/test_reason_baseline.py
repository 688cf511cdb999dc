"""The reason codes' baseline: a typical genuine payment, not the training means (ADR 0024)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from onnx_factory import any_of_model, logistic_model, make_metadata, save
from vigil.inference.decision import decide
from vigil.inference.errors import ModelLoadError
from vigil.inference.metadata import ModelMetadata
from vigil.inference.scorer import OnnxScorer
from vigil.training.trainer import Dataset, reason_baseline

COUNT = "terminal_id_verdict_nb_compromised_28day_window"
NAMES = ["tx_amount", COUNT, "tx_during_night"]


def _sparse_counts(rng: np.random.Generator) -> Dataset:
    """Mostly-zero counts: 95% of genuine rows have none, a few have many (heavy tail)."""
    genuine = np.zeros((400, 3), dtype=np.float32)
    genuine[:, 0] = rng.uniform(5, 100, 400)
    genuine[:20, 1] = rng.uniform(5, 40, 20)  # mean ~1.1, median 0
    genuine[:, 2] = rng.uniform(0, 1, 400) < 0.2
    fraud = np.zeros((40, 3), dtype=np.float32)
    fraud[:, 0] = rng.uniform(5, 100, 40)
    fraud[:, 1] = rng.uniform(1, 5, 40)  # frauds alone would move an all-rows median
    return Dataset(np.r_[genuine, fraud], np.r_[np.zeros(400), np.ones(40)].astype(np.int8))


def test_the_baseline_is_the_median_of_the_genuine_rows_only() -> None:
    data = _sparse_counts(np.random.default_rng(0))
    baseline = reason_baseline(data)
    assert baseline is not None and baseline.dtype == np.float64
    assert baseline[1] == 0.0  # a genuine payment has no compromised mark
    means = data.features.mean(axis=0)
    assert means[1] > 0.5  # the mean no payment has
    genuine = data.features[data.labels == 0]
    np.testing.assert_allclose(baseline, np.median(genuine, axis=0))
    # The frauds are left out: the median of all rows is another value for the amount.
    assert not np.allclose(baseline, np.median(data.features, axis=0))


def _flagging_model(tmp_path: Path, baseline: list[float] | None) -> OnnxScorer:
    """A model that scores its own training-means row as fraud: score = sigmoid(40 * count - 3)
    saturates at the mean count (~1.1), as the demo's verdict-feature models do."""
    data = _sparse_counts(np.random.default_rng(0))
    metadata = make_metadata(NAMES, data.features.mean(axis=0).tolist(), threshold=0.5)
    if baseline is not None:
        metadata = metadata.model_copy(update={"reason_baseline": baseline})
    model = any_of_model([1], gain=40.0, bias=-3.0, metadata=metadata)
    return OnnxScorer.load(save(model, tmp_path / "model.onnx"))


def test_a_model_flagging_its_mean_row_explains_only_against_the_genuine_median(
    tmp_path: Path,
) -> None:
    data = _sparse_counts(np.random.default_rng(0))
    baseline = reason_baseline(data)
    assert baseline is not None
    row = np.array([[60.0, 3.0, 0.0]], dtype=np.float32)  # a terminal with 3 compromised marks

    with_means = _flagging_model(tmp_path / "means", None)
    means_row = np.asarray([with_means.metadata.feature_means], dtype=np.float32)
    assert with_means.score(means_row)[0] >= with_means.metadata.threshold  # the trap
    (old,) = decide(with_means, [1], row)
    assert old.label == 1 and old.reason_codes == ()  # flagged, no reason

    with_median = _flagging_model(tmp_path / "median", baseline.tolist())
    (new,) = decide(with_median, [1], row)
    assert new.label == 1 and new.score == old.score
    assert [r.feature for r in new.reason_codes] == [COUNT]
    expected = new.score - with_median.score(baseline[None, :].astype(np.float32))[0]
    assert new.reason_codes[0].contribution == pytest.approx(expected, abs=1e-6)
    assert new.reason_codes[0].contribution > 0.9


def test_an_old_model_file_without_the_field_loads_and_explains_with_the_means(
    tmp_path: Path,
) -> None:
    means = [50.0, 0.5, 0.2]
    weights = [0.01, 1.5, 0.3]
    model = logistic_model(weights, -2.0, make_metadata(NAMES, means))
    props = {p.key: p.value for p in model.metadata_props}
    assert "reason_baseline" in props  # written by today's code ...
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, {k: v for k, v in props.items() if k != "reason_baseline"})
    scorer = OnnxScorer.load(save(model, tmp_path / "old.onnx"))  # ... absent from older files
    assert scorer.metadata.reason_baseline is None
    row = np.array([[60.0, 3.0, 0.0]], dtype=np.float32)
    (decision,) = decide(scorer, [1], row, explain="all")
    occluded = row.copy()
    occluded[0, 1] = means[1]
    top = decision.reason_codes[0]
    assert top.feature == COUNT
    assert top.contribution == pytest.approx(decision.score - scorer.score(occluded)[0], abs=1e-6)


def test_the_baseline_travels_in_the_onnx_metadata(tmp_path: Path) -> None:
    metadata = make_metadata(NAMES, [50.0, 0.5, 0.2]).model_copy(
        update={"reason_baseline": [40.0, 0.0, 0.0]}
    )
    assert ModelMetadata.from_props(metadata.to_props()) == metadata
    scorer = OnnxScorer.load(save(logistic_model([0.0] * 3, 0.0, metadata), tmp_path / "m.onnx"))
    assert scorer.metadata.reason_baseline == [40.0, 0.0, 0.0]


def test_a_baseline_of_the_wrong_length_is_refused(tmp_path: Path) -> None:
    metadata = make_metadata(NAMES).model_copy(update={"reason_baseline": [0.0]})
    path = save(logistic_model([0.0] * 3, 0.0, metadata), tmp_path / "m.onnx")
    with pytest.raises(ModelLoadError, match="1 reason_baseline values for 3 feature_names"):
        OnnxScorer.load(path)
