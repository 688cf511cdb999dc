"""Register a finished training run: lineage tags, a model version, the challenger alias."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from vigil.config import Settings
from vigil.inference.roles import CHALLENGER, CHAMPION
from vigil.tracking.lineage import lineage_tags
from vigil.tracking.model_registry import ModelRegistry

logger = logging.getLogger(__name__)

REGISTRATION_FILE = "registration.json"
METRICS_FILE = "metrics.json"


@dataclass(frozen=True)
class Registration:
    """What registering one run did (also written to ``<run dir>/registration.json``)."""

    run_dir: str
    run_id: str
    model_name: str
    version: int
    aliases: list[str]
    tags: dict[str, str]


def latest_run_dir(path: Path) -> Path:
    """``path`` itself when it is a finished run directory, else its newest finished child."""
    if (path / METRICS_FILE).exists():
        return path
    runs = sorted(path.glob(f"*/{METRICS_FILE}"), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise FileNotFoundError(f"no finished training run ({METRICS_FILE}) under {path}")
    return runs[-1].parent


def register_run(
    settings: Settings,
    run_dir: Path,
    output: Path | None = None,
    extra_tags: Mapping[str, str] | None = None,
) -> Registration:
    """Tag the run's MLflow run, register its ONNX model and point ``challenger`` at it.

    The lineage tags describe the data the run trained on (its ``metrics.json`` records the
    path and hash), not ``data.raw_dir``. The very first version also becomes ``champion``,
    so serving can always resolve one. The record is written to ``output`` (default
    ``<run dir>/registration.json``).
    """
    registry = ModelRegistry(settings.tracking)
    run_id = registry.run_id_for(run_dir.name)
    trained_on = json.loads((run_dir / METRICS_FILE).read_text())["dataset"]
    tags = lineage_tags(Path(trained_on["path"]), trained_on["sha256"]) | dict(extra_tags or {})
    version = registry.register(run_id, run_dir / "model.onnx", tags)
    aliases = [CHALLENGER]
    if registry.by_alias(CHAMPION) is None:
        aliases.append(CHAMPION)
    for alias in aliases:
        registry.set_alias(alias, version.version)
    registration = Registration(
        str(run_dir), run_id, registry.name, version.version, aliases, dict(version.tags)
    )
    (output or run_dir / REGISTRATION_FILE).write_text(json.dumps(asdict(registration), indent=2))
    logger.info(
        "run %s registered as %s v%d %s", run_dir.name, registry.name, version.version, aliases
    )
    return registration
