"""The provider environment's half of ``bench_providers.py`` (run by ``.venv-providers``).

Reads the model and the evaluation rows, prints one JSON object: OpenVINO fp32 and NNCF int8
parity against ONNX Runtime on those rows, single-row p50 latency and batch rows/s of each
runtime, and (``--grpc-body``) writes a gRPC-framed KServe v2 ``ModelInfer`` request for the
load generator after checking that Triton's gRPC endpoint answers it with ONNX Runtime's score.

    .venv-providers/bin/python benchmarks/_provider_side.py --model M.onnx --rows R.npy
"""

from __future__ import annotations

import argparse
import json
import struct
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vigil.inference.scorer import OnnxScorer
from vigil.providers.openvino import OpenVinoScorer, export_ir, quantize_int8

BATCH = 4096


def parse_args() -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--rows", type=Path, required=True, help=".npy: evaluation rows [N, F]")
    parser.add_argument("--calibration", type=Path, help=".npy: rows NNCF calibrates int8 on")
    parser.add_argument("--grpc-body", type=Path, help="write the gRPC request here")
    parser.add_argument("--grpc-port", type=int)
    return parser.parse_args()


def p50_us(score: Callable[[np.ndarray], np.ndarray], rows: np.ndarray, calls: int = 3000) -> float:
    """Median latency of one single-row call, microseconds."""
    times = []
    for i in range(calls):
        row = rows[i % len(rows) : i % len(rows) + 1]
        started = time.perf_counter()
        score(row)
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1e6)


def rows_per_s(score: Callable[[np.ndarray], np.ndarray], rows: np.ndarray) -> float:
    """Best of three passes over ``rows`` in batches of 4096."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for i in range(0, len(rows), BATCH):
            score(rows[i : i + BATCH])
        best = min(best, time.perf_counter() - started)
    return len(rows) / best


def grpc_request(model: OnnxScorer, row: np.ndarray, out: Path, port: int) -> float:
    """Write the framed gRPC body for one row; |Triton gRPC - ONNX Runtime| on that row."""
    import tritonclient.grpc as grpcclient
    from tritonclient.grpc import service_pb2

    request = service_pb2.ModelInferRequest(model_name="vigil")
    tensor = request.inputs.add(name="features", datatype="FP32", shape=list(row.shape))
    del tensor  # the data travels in raw_input_contents, as Triton's own client sends it
    request.outputs.add(name="score")
    request.raw_input_contents.append(row.astype(np.float32).tobytes())
    message = request.SerializeToString()
    out.write_bytes(b"\x00" + struct.pack(">I", len(message)) + message)
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
    features = grpcclient.InferInput("features", list(row.shape), "FP32")
    features.set_data_from_numpy(row.astype(np.float32))
    answer = client.infer("vigil", [features]).as_numpy("score")
    return float(np.abs(answer.reshape(-1) - model.score(row)).max())


def main() -> None:
    """Print the figures as one JSON object."""
    args = parse_args()
    rows, onnx = np.load(args.rows), OnnxScorer.load(args.model)
    figures: dict[str, float] = {}
    if args.grpc_body is not None:  # Triton is up: the gRPC request and its check only
        diff = grpc_request(onnx, rows[:1], args.grpc_body, args.grpc_port)
        print(json.dumps({"triton_grpc_max_abs_diff": diff}))
        return
    calibration = np.load(args.calibration)
    with tempfile.TemporaryDirectory(prefix="vigil-bench-ov-") as tmp:
        fp32 = OpenVinoScorer.from_files(args.model, export_ir(args.model, Path(tmp) / "fp32"))
        int8_ir = quantize_int8(args.model, calibration, Path(tmp) / "int8")
        int8 = OpenVinoScorer.from_files(args.model, int8_ir)
        reference = onnx.score(rows)
        big = np.concatenate([rows] * max(1, 100_000 // len(rows)))
        for name, scorer in (
            ("onnxruntime", onnx),
            ("openvino_fp32", fp32),
            ("openvino_int8", int8),
        ):
            difference = np.abs(scorer.score(rows) - reference)
            figures[f"{name}_max_abs_diff"] = float(difference.max())
            figures[f"{name}_mean_abs_diff"] = float(difference.mean())
            figures[f"{name}_single_row_p50_us"] = p50_us(scorer.score, rows)
            figures[f"{name}_batch_rows_per_s"] = rows_per_s(scorer.score, big)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
