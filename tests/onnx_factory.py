"""Tiny ONNX models built with ``onnx.helper`` (no torch) that meet Vigil's model contract.

Used by the inference tests and by ``benchmarks/bench_inference.py`` so neither depends on a
trained model. Each graph maps ``features`` float32 [N, F] to ``score`` float32 [N].
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from vigil.inference.metadata import INPUT_NAME, OUTPUT_NAME, ModelMetadata

OPSET = 17


def make_metadata(
    feature_names: Sequence[str],
    feature_means: Sequence[float] | None = None,
    threshold: float = 0.5,
    model_version: str = "test-1",
    model_kind: str = "logistic",
) -> ModelMetadata:
    """Metadata for a test model; means default to zeros."""
    return ModelMetadata(
        model_version=model_version,
        model_kind=model_kind,
        experiment_name="tests",
        git_commit="0000000",
        saved_at=datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
        feature_names=list(feature_names),
        feature_means=list(feature_means)
        if feature_means is not None
        else [0.0] * len(feature_names),
        threshold=threshold,
    )


def _finish(
    nodes: list[onnx.NodeProto],
    initializers: list[onnx.TensorProto],
    n_features: int,
    metadata: ModelMetadata | None,
    input_name: str,
    output_shape: Sequence[str | int],
) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "vigil_test_model",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", n_features])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, list(output_shape))],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    if metadata is not None:
        helper.set_model_props(model, metadata.to_props())
    onnx.checker.check_model(model)
    return model


def _const(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def logistic_model(
    weights: Sequence[float],
    bias: float,
    metadata: ModelMetadata | None,
    input_name: str = INPUT_NAME,
    output_shape: Sequence[str | int] = ("batch",),
) -> onnx.ModelProto:
    """score = sigmoid(features @ weights + bias): MatMul, Add, Sigmoid, Reshape to [N]."""
    w = np.asarray(weights, dtype=np.float32).reshape(-1, 1)
    reshape_to = [-1] if len(output_shape) == 1 else [-1, 1]
    nodes = [
        helper.make_node("MatMul", [input_name, "w"], ["logit_2d"]),
        helper.make_node("Add", ["logit_2d", "b"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["prob"]),
        helper.make_node("Reshape", ["prob", "out_shape"], [OUTPUT_NAME]),
    ]
    initializers = [
        _const("w", w),
        _const("b", np.asarray([bias], dtype=np.float32)),
        _const("out_shape", np.asarray(reshape_to, dtype=np.int64)),
    ]
    return _finish(nodes, initializers, w.shape[0], metadata, input_name, output_shape)


def any_of_model(
    columns: Sequence[int], gain: float, bias: float, metadata: ModelMetadata
) -> onnx.ModelProto:
    """score = sigmoid(gain * max(features[:, columns]) + bias): any one of the columns alone
    carries the whole signal, as duplicated features do (MatMul selects, ReduceMax)."""
    n_features = len(metadata.feature_names)
    select = np.zeros((n_features, len(columns)), dtype=np.float32)
    select[list(columns), range(len(columns))] = 1.0
    nodes = [
        helper.make_node("MatMul", [INPUT_NAME, "select"], ["picked"]),
        helper.make_node("ReduceMax", ["picked"], ["strongest"], axes=[1], keepdims=0),
        helper.make_node("Mul", ["strongest", "gain"], ["scaled"]),
        helper.make_node("Add", ["scaled", "b"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], [OUTPUT_NAME]),
    ]
    initializers = [
        _const("select", select),
        _const("gain", np.asarray([gain], dtype=np.float32)),
        _const("b", np.asarray([bias], dtype=np.float32)),
    ]
    return _finish(nodes, initializers, n_features, metadata, INPUT_NAME, ("batch",))


def mlp_model(
    metadata: ModelMetadata,
    hidden_sizes: Sequence[int] = (64, 32),
    feature_scales: Sequence[float] | None = None,
    seed: int = 0,
) -> onnx.ModelProto:
    """An MLP-shaped graph: standard scaling, Gemm+Relu hidden layers, Gemm+Sigmoid, [N]."""
    rng = np.random.default_rng(seed)
    n_features = len(metadata.feature_names)
    scales = np.asarray(feature_scales if feature_scales is not None else [1.0] * n_features)
    initializers = [
        _const("mean", np.asarray(metadata.feature_means, dtype=np.float32)),
        _const("scale", scales.astype(np.float32)),
        _const("out_shape", np.asarray([-1], dtype=np.int64)),
    ]
    nodes = [
        helper.make_node("Sub", [INPUT_NAME, "mean"], ["centred"]),
        helper.make_node("Div", ["centred", "scale"], ["h0"]),
    ]
    width = n_features
    for i, size in enumerate([*hidden_sizes, 1], start=1):
        bound = 1.0 / np.sqrt(width)
        initializers += [
            _const(f"w{i}", rng.uniform(-bound, bound, (width, size)).astype(np.float32)),
            _const(f"b{i}", rng.uniform(-bound, bound, size).astype(np.float32)),
        ]
        nodes.append(helper.make_node("Gemm", [f"h{i - 1}", f"w{i}", f"b{i}"], [f"z{i}"]))
        last = i == len(hidden_sizes) + 1
        nodes.append(helper.make_node("Sigmoid" if last else "Relu", [f"z{i}"], [f"h{i}"]))
        width = size
    final = f"h{len(hidden_sizes) + 1}"
    nodes.append(helper.make_node("Reshape", [final, "out_shape"], [OUTPUT_NAME]))
    return _finish(nodes, initializers, n_features, metadata, INPUT_NAME, ("batch",))


def fixed_batch_model(metadata: ModelMetadata, batch: int) -> onnx.ModelProto:
    """A logistic model whose output Reshape only works for exactly ``batch`` rows."""
    model = logistic_model([1.0] * len(metadata.feature_names), 0.0, metadata)
    shape = next(t for t in model.graph.initializer if t.name == "out_shape")
    shape.CopyFrom(_const("out_shape", np.asarray([batch], dtype=np.int64)))
    return model


def save(model: onnx.ModelProto, path: Path) -> Path:
    """Write ``model`` to ``path`` (parents created) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(path))
    return path
