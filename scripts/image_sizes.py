"""Estimate each image's size from the installed size of the packages it installs.

There is no Docker engine on the session machines, so the size of every image is estimated
here: the dependency closure of what its Dockerfile installs (``scripts/lock.py``'s walk over
the installed distributions of ``.venv``), summed from each distribution's RECORD, plus the
base image and the system packages. The GitHub workflow measures the real images and fails a
serving or batch-scoring image of 1 GB or more.

    .venv/bin/python scripts/image_sizes.py
"""

from __future__ import annotations

import importlib.util
import tomllib
from importlib.metadata import distribution
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE_MB = 130.0  # python:3.11-slim, uncompressed (docker image inspect)
JRE_MB = 200.0  # Debian's openjdk-17-jre-headless with its dependencies (TorchServe)
LIMIT_MB = 1000.0
# Image -> (requirements its Dockerfile installs, system MB beyond the base, size-limited?)
IMAGES: dict[str, tuple[list[str], float, bool]] = {
    "api": (["vigil[serve]"], 0.0, True),
    "worker": (["vigil[serve]"], 0.0, True),
    "predict": (["vigil"], 0.0, True),
    "torchserve": (["torch==2.13.0", "torchserve", "numpy", "onnxruntime"], JRE_MB, False),
    "train": (["vigil[serve,train,ops,pipelines]"], 0.0, False),
}


def _lock_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("lock", ROOT / "scripts" / "lock.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def installed_mb(name: str) -> float:
    """Installed size of one distribution (its RECORD's files), MB."""
    files = distribution(name).files or []
    return sum(f.locate().stat().st_size for f in files if f.locate().exists()) / 1e6


def requirements_of(spec: str) -> list[str]:
    """``vigil[extras]`` as the project's own requirements; anything else as itself."""
    if not spec.startswith("vigil"):
        return [spec]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = spec[len("vigil[") : -1].split(",") if "[" in spec else []
    groups = project["optional-dependencies"]
    return [*project["dependencies"], *(r for extra in extras for r in groups[extra])]


def main() -> None:
    """Print one row per image, the estimate against the 1 GB limit where it applies."""
    lock = _lock_module()
    print("| image | packages | site-packages MB | estimate MB | limit |")
    print("|---|---|---|---|---|")
    for image, (specs, system_mb, limited) in IMAGES.items():
        pins = lock.closure([r for spec in specs for r in requirements_of(spec)])
        pins.pop("vigil", None)
        packages_mb = sum(installed_mb(name) for name in pins)
        total = BASE_MB + system_mb + packages_mb
        verdict = ("ok" if total < LIMIT_MB else "OVER") if limited else "-"
        print(f"| vigil-{image} | {len(pins)} | {packages_mb:,.0f} | {total:,.0f} | {verdict} |")


if __name__ == "__main__":
    main()
