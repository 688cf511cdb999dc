"""The BentoML service (deploy/bento): ``bentoml serve`` live, and ``bentoml build``'s bento.

Both run from the provider environment. The live server must give ONNX Runtime's scores on
10,000 rows and answer a malformed row with a 400; the bento must carry the service, the
pinned requirements and the Vigil wheel, and its generated Dockerfile (there is no Docker
engine here) must be a non-root image on an allowed base that installs exactly those.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from deploy_support import dockerfile_instructions, run, tool
from provider_support import (
    ROOT,
    free_port,
    parity_model,
    parity_rows,
    provider_server,
    require_providers_env,
)
from vigil.inference.scorer import OnnxScorer

BENTO_DIR = ROOT / "deploy" / "bento"
PARITY = 1e-5


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return parity_model(tmp_path_factory.mktemp("bento"))


@pytest.fixture(scope="module")
def bento_url(model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    bin_dir = require_providers_env()
    port = free_port()
    home = tmp_path_factory.mktemp("bentoml-home")
    command = [str(bin_dir / "bentoml"), "serve", "service:VigilScorer", "--port", str(port)]
    os.environ["VIGIL_INFERENCE__MODEL_PATH"] = str(model)  # the server inherits it
    os.environ["BENTOML_HOME"], os.environ["BENTOML_DO_NOT_TRACK"] = str(home), "true"
    try:
        url = f"http://127.0.0.1:{port}"
        with provider_server(command, f"{url}/readyz", home / "serve.log", cwd=BENTO_DIR):
            yield url
    finally:
        for name in ("VIGIL_INFERENCE__MODEL_PATH", "BENTOML_HOME", "BENTOML_DO_NOT_TRACK"):
            os.environ.pop(name, None)


def test_bentoml_serve_matches_onnx_runtime_on_10000_rows(bento_url: str, model: Path) -> None:
    x = parity_rows(10_000)
    scores = np.concatenate(
        [
            np.asarray(
                httpx.post(f"{bento_url}/score", json={"features": x[i : i + 2500].tolist()})
                .raise_for_status()
                .json(),
                dtype=np.float32,
            )
            for i in range(0, len(x), 2500)
        ]
    )
    assert np.abs(scores - OnnxScorer.load(model).score(x)).max() <= PARITY
    meta = httpx.post(f"{bento_url}/metadata", json={}).raise_for_status().json()
    assert meta["model_version"] == "test-1" and len(meta["feature_names"]) == 24


def test_a_malformed_row_is_a_400(bento_url: str) -> None:
    answer = httpx.post(f"{bento_url}/score", json={"features": [[1.0, 2.0]]})
    assert answer.status_code == 400, answer.text
    assert "expected features of shape" in answer.text


def test_bentoml_build_makes_a_bento_with_a_sound_dockerfile(tmp_path: Path) -> None:
    bin_dir = require_providers_env()
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "home"), "PROVIDERS_BIN": str(bin_dir)}
    built = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build_bento.sh"), str(tmp_path / "context")],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    tag = re.search(r"__tag__:(vigil-scorer:\w+)", built.stdout)
    assert tag, built.stdout
    bento = tmp_path / "home" / "bentos" / "vigil-scorer" / tag.group(1).split(":")[1]
    assert (bento / "src" / "service.py").read_bytes() == (BENTO_DIR / "service.py").read_bytes()
    pinned = (bento / "env" / "python" / "requirements.txt").read_text()
    for line in (BENTO_DIR / "requirements.txt").read_text().splitlines():
        assert line.startswith("#") or line in pinned.splitlines(), line
    assert list((bento / "env" / "python" / "wheels").glob("vigil-0.1.0-*.whl"))
    dockerfile = bento / "env" / "docker" / "Dockerfile"
    instructions = dockerfile_instructions(dockerfile)
    assert [a.split()[0] for k, a in instructions if k == "FROM"] == ["python:3.11-slim"]
    assert [a for k, a in instructions if k == "USER"][-1] == "bentoml"
    assert any(k == "RUN" and "env/python/install.sh" in a for k, a in instructions)
    assert ("EXPOSE", "3000") in instructions
    assert "torch" not in pinned and "cuda" not in dockerfile.read_text().lower()
    linted = run(tool("hadolint"), "--failure-threshold", "error", str(dockerfile))
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_the_bento_pins_are_the_provider_lock() -> None:
    lock = {
        line.split("==")[0].lower(): line
        for line in (ROOT / "requirements-providers.lock").read_text().splitlines()
        if "==" in line
    }
    for line in (BENTO_DIR / "requirements.txt").read_text().splitlines():
        if not line.startswith("#"):
            assert lock[line.split("==")[0].lower()] == line
