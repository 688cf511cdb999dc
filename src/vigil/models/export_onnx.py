"""Export any model kind to ONNX under one contract (see ``vigil.inference.metadata``).

Input ``features`` float32 [batch, n_features] of raw values; output ``score`` float32
[batch], the fraud probability. Scaling is inside the graph; metadata in ``metadata_props``.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import lightgbm
import onnx
import torch
from onnx import compose, helper
from sklearn.pipeline import Pipeline

from vigil.inference.metadata import INPUT_NAME, OUTPUT_NAME, ModelMetadata
from vigil.models.kinds import Ensemble, FraudModel, SingleModel
from vigil.models.mlp import FraudMLP, ProbabilityHead

logger = logging.getLogger(__name__)

OPSET = 17
ML_OPSET = 3
LIGHTGBM_OPSET = 15  # the highest onnxmltools' LightGBM converter supports
BATCH = "batch"


def _mlp_to_onnx(model: FraudMLP, n_features: int) -> onnx.ModelProto:
    head = ProbabilityHead(model).eval()
    with tempfile.TemporaryDirectory(prefix="vigil-onnx-") as tmp:
        path = Path(tmp) / "mlp.onnx"
        torch.onnx.export(
            head,
            (torch.zeros(2, n_features),),
            path,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: BATCH}, OUTPUT_NAME: {0: BATCH}},
            opset_version=OPSET,
            dynamo=False,  # the TorchScript exporter: no onnxscript dependency
        )
        return onnx.load(str(path))


def _probability_column_as_score(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Replace a classifier's (label, probabilities [N, 2]) outputs by ``score`` [N]."""
    graph = proto.graph
    probabilities = next(o.name for o in graph.output if "prob" in o.name)
    index = helper.make_tensor("vigil_fraud_column", onnx.TensorProto.INT64, [], [1])
    graph.initializer.append(index)
    graph.node.append(
        helper.make_node(
            "Gather", [probabilities, index.name], [OUTPUT_NAME], axis=1, name="vigil_score"
        )
    )
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(OUTPUT_NAME, onnx.TensorProto.FLOAT, [BATCH]))
    return proto


def _sklearn_to_onnx(
    model: Pipeline | lightgbm.LGBMClassifier | lightgbm.Booster, n_features: int
) -> onnx.ModelProto:
    if isinstance(model, lightgbm.LGBMClassifier | lightgbm.Booster):
        import onnxmltools
        from onnxmltools.convert.common.data_types import FloatTensorType as MLFloatTensorType

        proto = onnxmltools.convert_lightgbm(
            model,
            initial_types=[(INPUT_NAME, MLFloatTensorType([None, n_features]))],
            zipmap=False,
            target_opset=LIGHTGBM_OPSET,
        )
    else:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType

        proto = convert_sklearn(
            model,
            initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
            options={id(model.steps[-1][1]): {"zipmap": False}},
            target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET},
        )
    return _probability_column_as_score(proto)


def _single_to_onnx(model: SingleModel, n_features: int) -> onnx.ModelProto:
    if isinstance(model, FraudMLP):
        return _mlp_to_onnx(model, n_features)
    return _sklearn_to_onnx(model, n_features)


def _ensemble_to_onnx(model: Ensemble, n_features: int) -> onnx.ModelProto:
    """One graph: every member reads ``features``; ``score`` is the Mean of their scores."""
    nodes: list[onnx.NodeProto] = []
    initializers: list[onnx.TensorProto] = []
    opsets: dict[str, int] = {}
    ir_version = 0
    for i, member in enumerate(model.members):
        # Prefixing keeps the members' node, edge and initializer names apart.
        proto = compose.add_prefix(_single_to_onnx(member, n_features), f"m{i}_")
        graph = proto.graph
        nodes.append(helper.make_node("Identity", [INPUT_NAME], [graph.input[0].name]))
        nodes.extend(graph.node)
        initializers.extend(graph.initializer)
        for opset in proto.opset_import:
            opsets[opset.domain] = max(opsets.get(opset.domain, 0), opset.version)
        ir_version = max(ir_version, proto.ir_version)
    scores = [f"m{i}_{OUTPUT_NAME}" for i in range(len(model.members))]
    nodes.append(helper.make_node("Mean", scores, [OUTPUT_NAME], name="vigil_ensemble_mean"))
    float_type = onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        nodes,
        "vigil_ensemble",
        [helper.make_tensor_value_info(INPUT_NAME, float_type, [BATCH, n_features])],
        [helper.make_tensor_value_info(OUTPUT_NAME, float_type, [BATCH])],
        initializer=initializers,
    )
    imports = [helper.make_opsetid(domain, version) for domain, version in opsets.items()]
    return helper.make_model(graph, opset_imports=imports, ir_version=ir_version)


def to_onnx(model: FraudModel, n_features: int) -> onnx.ModelProto:
    """The model as an ONNX graph under the Vigil contract (no metadata yet)."""
    if isinstance(model, Ensemble):
        proto = _ensemble_to_onnx(model, n_features)
    else:
        proto = _single_to_onnx(model, n_features)
    proto.producer_name = "vigil"
    onnx.checker.check_model(proto)
    return proto


def attach_metadata(proto: onnx.ModelProto, metadata: ModelMetadata) -> None:
    """Write ``metadata`` into ``metadata_props`` (replacing any previous values)."""
    existing = {prop.key: prop.value for prop in proto.metadata_props}
    helper.set_model_props(proto, {**existing, **metadata.to_props()})


def write_onnx(proto: onnx.ModelProto, path: Path) -> Path:
    """Write atomically (temp file + rename) so a watcher never reads half a model."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(proto.SerializeToString())
    os.replace(tmp, path)
    logger.info("wrote ONNX model %s", path)
    return path


def export_onnx(
    model: FraudModel, n_features: int, metadata: ModelMetadata, path: Path
) -> onnx.ModelProto:
    """Export, attach metadata and write ``path``; returns the graph written."""
    if len(metadata.feature_names) != n_features:
        raise ValueError(
            f"metadata lists {len(metadata.feature_names)} features, model takes {n_features}"
        )
    proto = to_onnx(model, n_features)
    attach_metadata(proto, metadata)
    write_onnx(proto, path)
    return proto
