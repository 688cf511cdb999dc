"""Serving and batch-scoring images stay under 1 GB, estimated from what they install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_serving_and_batch_images_are_estimated_under_1_gb() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "image_sizes.py")],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    rows = {line.split("|")[1].strip(): line for line in done.stdout.splitlines()[2:]}
    for image in ("vigil-api", "vigil-worker", "vigil-predict"):
        assert rows[image].rstrip(" |").endswith("ok"), done.stdout
