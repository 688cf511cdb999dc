"""deploy/docker/Dockerfile.torchserve's start command, run natively (no Docker engine here).

The image's ``CMD`` is taken from the Dockerfile and run as written, only the image's paths
mapped to a temporary model store and a copy of deploy/torchserve/config.properties on free
ports: TorchServe must load ``model.mar`` (Vigil's handler, from training's export) with the
tuned batching, and score like ONNX Runtime.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest

from conftest import IN_CI
from deploy_support import BIN, ROOT, dockerfile_instructions
from provider_support import free_port, parity_model, parity_rows, provider_server
from vigil.inference.scorer import OnnxScorer

DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile.torchserve"
CONFIG = ROOT / "deploy" / "torchserve" / "config.properties"
IMAGE_PATHS = {"/models": "store", "/etc/torchserve/config.properties": "ts.properties"}


def image_command() -> list[str]:
    """The final stage's CMD (exec form)."""
    keyword, args = dockerfile_instructions(DOCKERFILE)[-1]
    assert keyword == "CMD"
    return list(json.loads(args))


def require_torchserve() -> Path:
    """TorchServe (dev extra) and Java; skipped locally when absent, a failure in CI."""
    torchserve = BIN / "torchserve"
    if torchserve.exists() and shutil.which("java"):
        return torchserve
    if IN_CI:
        pytest.fail("torchserve (dev extra) and Java 17 are required in CI")
    pytest.skip("torchserve or java is not installed")


def test_the_image_command_serves_the_mar_with_the_tuned_batching(tmp_path: Path) -> None:
    torchserve = require_torchserve()
    from vigil.models.export_mar import build_mar  # the training step's own archive

    model = parity_model(tmp_path)
    store = tmp_path / "store"
    store.mkdir()
    build_mar(object(), model, OnnxScorer.load(model).metadata, store)  # type: ignore[arg-type]
    ports = {8080: free_port(), 8081: free_port(), 8082: free_port()}
    config = CONFIG.read_text()
    for port, free in ports.items():
        config = config.replace(f":{port}", f":{free}").replace("0.0.0.0", "127.0.0.1")
    (tmp_path / "ts.properties").write_text(config)
    command = [
        str(tmp_path / IMAGE_PATHS[arg]) if arg in IMAGE_PATHS else arg for arg in image_command()
    ]
    assert command[0] == "torchserve" and "--foreground" in command
    command[0] = str(torchserve)
    (tmp_path / "tmp").mkdir()
    os.environ["TMPDIR"] = str(tmp_path / "tmp")  # TorchServe's pid file, private to this run
    try:
        inference = f"http://127.0.0.1:{ports[8080]}"
        with provider_server(command, f"{inference}/ping", tmp_path / "ts.log", cwd=tmp_path):
            described = httpx.get(f"http://127.0.0.1:{ports[8081]}/models/vigil").json()
            assert described[0]["batchSize"] == 32 and described[0]["maxBatchDelay"] == 2
            names = OnnxScorer.load(model).feature_names
            rows = parity_rows(200)
            body = [dict(zip(names, map(float, row), strict=True)) for row in rows]
            answer = httpx.post(f"{inference}/predictions/vigil", json=body, timeout=60)
            scores = np.asarray([a["score"] for a in answer.raise_for_status().json()])
            assert np.abs(scores - OnnxScorer.load(model).score(rows)).max() <= 1e-5
    finally:
        os.environ.pop("TMPDIR", None)
