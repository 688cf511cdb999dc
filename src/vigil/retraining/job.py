"""One retraining as child processes: train, then register (torch stays out of the API).

Each experiment gets a folder ``<train.runs_dir>/experiments/<id>/`` holding the exact
configuration it ran with (``config.yaml``: rerun it with ``python -m vigil.train
--config``), the training run directory and the combined log of every step.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from vigil.config import Settings, build_settings, flatten, settings_to_dict
from vigil.retraining.runner import TrainOutcome
from vigil.storage import REGISTRY_VERSION

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
LOG_FILE = "train.log"
REGISTRATION_FILE = "registration.json"

LOG_TAIL_CHARS = 2000


class TrainingFailed(RuntimeError):
    """A step of the retraining exited with an error; the message ends with its log tail."""


def experiment_dir(settings: Settings, experiment_id: int) -> Path:
    """Where experiment ``experiment_id`` keeps its config, features, run and log."""
    return settings.train.runs_dir / "experiments" / str(experiment_id)


def experiment_settings(settings: Settings, workdir: Path) -> Settings:
    """The service's settings with the experiment's own runs folder."""
    return build_settings(settings_to_dict(settings), [("train.runs_dir", str(workdir / "runs"))])


def find_run_dir(runs_dir: Path) -> Path:
    """The one training run directory the experiment produced."""
    found = sorted(p.parent for p in runs_dir.glob("*/metrics.json"))
    if len(found) != 1:
        raise TrainingFailed(f"expected one finished run under {runs_dir}, found {len(found)}")
    return found[0]


def headline_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """Numeric test and validation figures of a ``metrics.json``, flattened (``test.auc_roc``)."""
    wanted: dict[str, Any] = {k: summary[k] for k in ("test", "validation") if k in summary}
    wanted["threshold"] = summary.get("threshold")
    return {
        key: float(value)
        for key, value in flatten(wanted).items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


class SubprocessTrainJob:
    """Runs ``python -m vigil.train`` then ``vigil registry register`` for one experiment."""

    def __init__(
        self, settings: Settings, timeout_seconds: float | None = None, python: str = sys.executable
    ) -> None:
        self._settings = settings
        self._timeout = timeout_seconds
        self._python = python
        self._process: subprocess.Popen[bytes] | None = None
        self._cancelled = threading.Event()

    def steps(self, workdir: Path, runs_dir: Path) -> list[list[str]]:
        """The commands of one retraining (``register`` picks the run ``train`` made)."""
        config = ["--config", str(workdir / CONFIG_FILE)]
        register = ["--run-dir", str(runs_dir), "--output", str(workdir / REGISTRATION_FILE)]
        return [
            [self._python, "-m", "vigil.train", *config],
            [self._python, "-m", "vigil", "registry", "register", *config, *register],
        ]

    def run(self, experiment_id: int) -> TrainOutcome:
        """Train experiment ``experiment_id``; raises :class:`TrainingFailed` on any failure."""
        self._cancelled.clear()
        workdir = experiment_dir(self._settings, experiment_id)
        workdir.mkdir(parents=True, exist_ok=True)
        settings = experiment_settings(self._settings, workdir)
        config = yaml.safe_dump(settings_to_dict(settings), sort_keys=False)
        (workdir / CONFIG_FILE).write_text(config)
        for command in self.steps(workdir, settings.train.runs_dir):
            self._run_step(command, workdir / LOG_FILE)
        run_dir = find_run_dir(settings.train.runs_dir)
        summary = json.loads((run_dir / "metrics.json").read_text())
        registration = json.loads((workdir / REGISTRATION_FILE).read_text())
        return TrainOutcome(
            model_path=run_dir / "model.onnx",
            metrics=headline_metrics(summary) | {REGISTRY_VERSION: registration["version"]},
            mlflow_run_id=registration["run_id"],
        )

    def _run_step(self, command: Sequence[str], log_file: Path) -> None:
        if self._cancelled.is_set():
            raise TrainingFailed("cancelled")
        logger.info("retrain step: %s", " ".join(command))
        with log_file.open("ab") as log:
            log.write(f"$ {' '.join(command)}\n".encode())
            log.flush()
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
            try:
                code = self._process.wait(self._timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
                raise TrainingFailed(f"{command[2]} timed out after {self._timeout} s") from None
            finally:
                self._process = None
        if code != 0:
            tail = log_file.read_text(errors="replace")[-LOG_TAIL_CHARS:]
            raise TrainingFailed(
                f"`{' '.join(command[2:4])}` exited with {code}; log tail:\n{tail}"
            )

    def cancel(self) -> None:
        """Stop the current step (the runner records the experiment as failed)."""
        self._cancelled.set()
        process = self._process
        if process is not None:
            process.terminate()
