"""The built API image, running: the GitHub workflow's ``images`` job runs this against it.

``VIGIL_IMAGE_API_URL`` (the container's address) comes from the workflow, which started the
image on the model it ships (and a random API key); without it the module is skipped
(the image needs a Docker engine: there is none on the session machines).
"""

from __future__ import annotations

import os

import httpx
import pytest

URL = os.environ.get("VIGIL_IMAGE_API_URL", "")
pytestmark = pytest.mark.skipif(not URL, reason="no running API image (VIGIL_IMAGE_API_URL)")


def test_health_metadata_and_a_forward_answer() -> None:
    assert httpx.get(f"{URL}/health", timeout=10).status_code == 200
    metadata = httpx.get(f"{URL}/metadata", timeout=10).raise_for_status().json()["champion"]
    names, means = metadata["feature_names"], metadata["feature_means"]
    features = dict(zip(names, means, strict=True))
    answer = httpx.post(f"{URL}/forward", json={"features": features}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert 0.0 <= answer.json()["score"] <= 1.0
    assert answer.json()["model_version"] == metadata["model_version"]


def test_bad_input_is_a_400_and_admin_routes_need_the_key() -> None:
    assert httpx.post(f"{URL}/forward", content=b"{", timeout=10).status_code == 400
    reload = httpx.post(f"{URL}/admin/reload", json={"model_path": "/x"}, timeout=10)
    assert reload.status_code in {401, 403}
