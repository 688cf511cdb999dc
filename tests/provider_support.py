"""The provider environment (``make setup-providers``) and its servers, for the live tests.

Triton and BentoML run from ``.venv-providers`` (their pins cannot share ``.venv``); these
helpers start them as subprocesses on free ports and stop their whole process group. A
missing provider environment skips locally and fails in CI, like a missing service.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from conftest import IN_CI
from onnx_factory import make_metadata, mlp_model, save
from vigil.reports.browser import BrowserError, free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]
PROVIDERS_BIN = ROOT / ".venv-providers" / "bin"


def require_providers_env() -> Path:
    """``.venv-providers/bin``; skipped locally when absent, a failure in CI."""
    if (PROVIDERS_BIN / "python").exists():
        return PROVIDERS_BIN
    message = f"no provider environment at {PROVIDERS_BIN} (make setup-providers)"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: required)")
    pytest.skip(message)


def wait_http(url: str, process: subprocess.Popen[bytes], log: Path, seconds: float = 90) -> None:
    """Poll ``url`` until it answers 200; fail with the server's log if it exits or hangs."""
    try:
        wait_for(url, seconds, process)
    except BrowserError as error:
        pytest.fail(f"{error}:\n{log.read_text()[-3000:]}")


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (it started it), SIGKILL after 20 s."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def provider_server(
    command: list[str], ready_url: str, log: Path, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` (in its own process group, output to ``log``) until ``ready_url`` is up."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd
        )
        try:
            wait_http(ready_url, process, log)
            yield process
        finally:
            stop_group(process)


@contextmanager
def triton_server(model: Path, log: Path) -> Iterator[tuple[str, int]]:
    """Triton (``python -m vigil.providers.triton serve``) on ``model``: (HTTP URL, gRPC port)."""
    bin_dir = require_providers_env()
    http_port, grpc_port = free_port(), free_port()
    command = [
        str(bin_dir / "python"), "-m", "vigil.providers.triton", "serve", "--model", str(model),
        "--http-port", str(http_port), "--grpc-port", str(grpc_port),
    ]  # fmt: skip
    url = f"http://127.0.0.1:{http_port}"
    with provider_server(command, f"{url}/v2/models/vigil/ready", log):
        yield url, grpc_port


def parity_model(folder: Path, names: list[str] | None = None) -> Path:
    """An MLP-shaped model over 24 features (means 0..23, scales 1..24), saved in ``folder``."""
    names = names or [f"f{i}" for i in range(24)]
    metadata = make_metadata(names, [float(i) for i in range(24)], model_kind="mlp")
    scales = [1.0 + i for i in range(24)]
    return save(mlp_model(metadata, feature_scales=scales), folder / "model.onnx")


def parity_rows(n: int, seed: int = 0) -> np.ndarray:
    """``n`` float32 rows spread around :func:`parity_model`'s means and scales."""
    rng = np.random.default_rng(seed)
    return (np.arange(24) + rng.normal(0, 1, (n, 24)) * (1.0 + np.arange(24))).astype(np.float32)
