"""One retraining as a child process running the retrain job (torch stays out of the API).

The child runs ``vigil train --challenger OUTCOME``: :func:`vigil.training.challenger.
train_challenger`, the same job code as the Dagster retrain job, which trains, registers the
run as the registry's challenger and writes its :class:`TrainOutcome`. Each experiment gets a
folder ``<train.runs_dir>/experiments/<id>/`` holding the exact configuration it ran with
(``config.yaml``: rerun it with ``vigil train --config``), the training run directory, the
outcome and the log of the child. The child's environment is :func:`~vigil.child_env.
child_environment`'s (no ``VIGIL_*`` override of the server's can beat ``config.yaml``).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from vigil.child_env import child_environment
from vigil.config import Settings, build_settings, settings_to_dict, write_settings
from vigil.retraining.runner import TrainOutcome

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
LOG_FILE = "train.log"
OUTCOME_FILE = "outcome.json"

LOG_TAIL_CHARS = 2000


class TrainingFailed(RuntimeError):
    """A step of the retraining exited with an error; the message ends with its log tail."""


def experiment_dir(settings: Settings, experiment_id: int) -> Path:
    """Where experiment ``experiment_id`` keeps its config, features, run and log."""
    return settings.train.runs_dir / "experiments" / str(experiment_id)


def experiment_settings(settings: Settings, workdir: Path) -> Settings:
    """The service's settings with the experiment's own runs folder."""
    return build_settings(
        settings_to_dict(settings, secrets=True), [("train.runs_dir", str(workdir / "runs"))]
    )


class SubprocessTrainJob:
    """Runs the retrain job (``vigil train --challenger``) in a child process per experiment."""

    def __init__(
        self, settings: Settings, timeout_seconds: float | None = None, python: str = sys.executable
    ) -> None:
        self._settings = settings
        self._timeout = timeout_seconds
        self._python = python
        self._process: subprocess.Popen[bytes] | None = None
        self._cancelled = threading.Event()

    def command(self, workdir: Path) -> list[str]:
        """The child's command line: the retrain job on the experiment's configuration."""
        config = ["--config", str(workdir / CONFIG_FILE)]
        return [
            self._python,
            "-m",
            "vigil",
            "train",
            *config,
            "--challenger",
            str(workdir / OUTCOME_FILE),
        ]

    def run(self, experiment_id: int) -> TrainOutcome:
        """Train experiment ``experiment_id``; raises :class:`TrainingFailed` on any failure."""
        self._cancelled.clear()
        workdir = experiment_dir(self._settings, experiment_id)
        workdir.mkdir(parents=True, exist_ok=True)
        settings = experiment_settings(self._settings, workdir)
        write_settings(workdir / CONFIG_FILE, settings)
        environment = child_environment(settings, os.environ)
        self._run_step(self.command(workdir), workdir / LOG_FILE, environment)
        try:
            return TrainOutcome.read_json(workdir / OUTCOME_FILE)
        except (OSError, ValueError, KeyError) as error:
            raise TrainingFailed(f"the retrain job left no readable outcome: {error}") from None

    def _run_step(
        self, command: Sequence[str], log_file: Path, environment: Mapping[str, str]
    ) -> None:
        if self._cancelled.is_set():
            raise TrainingFailed("cancelled")
        logger.info("retrain step: %s", " ".join(command))
        with log_file.open("ab") as log:
            log.write(f"$ {' '.join(command)}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=environment
            )
            try:
                code = self._process.wait(self._timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
                raise TrainingFailed(f"training timed out after {self._timeout} s") from None
            finally:
                self._process = None
        if code != 0:
            tail = log_file.read_text(errors="replace")[-LOG_TAIL_CHARS:]
            raise TrainingFailed(f"`{' '.join(command[2:])}` exited with {code}; log tail:\n{tail}")

    def cancel(self) -> None:
        """Stop the current step (the runner records the experiment as failed)."""
        self._cancelled.set()
        process = self._process
        if process is not None:
            process.terminate()
