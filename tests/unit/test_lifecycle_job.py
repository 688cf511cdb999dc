"""The retrain job's child processes: commands, outcome collection, failures, cancel."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr

from vigil.config import Settings
from vigil.retraining.job import (
    CONFIG_FILE,
    LOG_FILE,
    SubprocessTrainJob,
    TrainingFailed,
    experiment_dir,
)
from vigil.storage import REGISTRY_VERSION
from vigil.training.challenger import headline_metrics

# Stands in for the interpreter: "-m vigil train --challenger OUT" (the retrain job) writes a
# run and the outcome the real job writes (TrainOutcome.write_json). What it does is read from
# the file "mode" beside it (the child inherits no test variable), and it saves its environment.
FAKE_PYTHON = """#!{python}
import json, os, sys, time
from pathlib import Path
args = sys.argv[1:]
assert args[:3] == ["-m", "vigil", "train"], args
config = Path(args[args.index("--config") + 1])
out = Path(args[args.index("--challenger") + 1])
mode_file = Path(__file__).with_name("mode")
mode = mode_file.read_text() if mode_file.exists() else "ok"
(config.parent / "child_env.json").write_text(json.dumps(dict(os.environ)))
print("training...", flush=True)
if mode == "fail":
    print("CUDA? no: loss is NaN", flush=True)
    sys.exit(3)
if mode == "hang":
    time.sleep(60)
run = config.parent / "runs" / "vigil-run-1"
run.mkdir(parents=True)
(run / "model.onnx").write_bytes(b"onnx")
metrics = {{"test.average_precision": 0.5, "test.top_k": 100, "validation.auc_roc": 0.9,
           "threshold": 0.4, "registry_version": 4}}
out.write_text(json.dumps({{"model_path": str(run / "model.onnx"), "metrics": metrics,
                            "mlflow_run_id": "mlflow-123"}}))
"""


@pytest.fixture
def fake_python(tmp_path: Path) -> str:
    script = tmp_path / "python"
    script.write_text(FAKE_PYTHON.format(python=sys.executable))
    script.chmod(0o755)
    return str(script)


def fake_mode(fake_python: str, mode: str) -> None:
    """What the fake interpreter does next: "ok", "fail" or "hang"."""
    Path(fake_python).with_name("mode").write_text(mode)


def test_headline_metrics_keep_numbers_only() -> None:
    summary = {
        "test": {"average_precision": 0.5, "n_frauds": 3, "model": "x"},
        "validation": {"auc_roc": 0.9},
        "threshold": 0.25,
        "history": [{"epoch": 1}],
        "flag": True,
    }
    assert headline_metrics(summary) == {
        "test.average_precision": 0.5,
        "test.n_frauds": 3.0,
        "validation.auc_roc": 0.9,
        "threshold": 0.25,
    }


def test_run_trains_registers_and_reports(small_settings: Settings, fake_python: str) -> None:
    fake_mode(fake_python, "ok")
    outcome = SubprocessTrainJob(small_settings, python=fake_python).run(5)
    workdir = experiment_dir(small_settings, 5)
    assert outcome.model_path == workdir / "runs" / "vigil-run-1" / "model.onnx"
    assert outcome.mlflow_run_id == "mlflow-123"
    assert outcome.metrics == {
        "test.average_precision": 0.5,
        "test.top_k": 100.0,
        "validation.auc_roc": 0.9,
        "threshold": 0.4,
        REGISTRY_VERSION: 4,
    }
    saved = yaml.safe_load((workdir / CONFIG_FILE).read_text())
    assert saved["train"]["runs_dir"] == str(workdir / "runs")
    assert saved["data"] == json.loads(json.dumps(small_settings.data.model_dump(mode="json")))
    log = (workdir / LOG_FILE).read_text()
    assert "-m vigil train --config" in log and "--challenger" in log


def test_a_failing_step_raises_with_the_log_tail(
    small_settings: Settings, fake_python: str
) -> None:
    fake_mode(fake_python, "fail")
    with pytest.raises(TrainingFailed, match=r"exited with 3(.|\n)*loss is NaN"):
        SubprocessTrainJob(small_settings, python=fake_python).run(6)


def test_cancel_stops_the_running_step(small_settings: Settings, fake_python: str) -> None:
    fake_mode(fake_python, "hang")
    job = SubprocessTrainJob(small_settings, python=fake_python)
    errors: list[Exception] = []

    def run() -> None:
        try:
            job.run(7)
        except TrainingFailed as error:
            errors.append(error)

    thread = threading.Thread(target=run)
    started = time.monotonic()
    thread.start()
    time.sleep(0.5)
    job.cancel()
    thread.join(10)
    assert not thread.is_alive()
    assert time.monotonic() - started < 10
    assert len(errors) == 1


def test_the_child_gets_the_secrets_but_not_the_servers_overrides(
    small_settings: Settings, fake_python: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """VIGIL_TRAIN__RUNS_DIR in the server's environment once made every retrain fail; the
    child's environment is an allow-list, so nothing else of the server's reaches it either."""
    monkeypatch.setenv("VIGIL_TRAIN__RUNS_DIR", "/nowhere")
    monkeypatch.setenv("CLOUD_TOKEN", "t0k3n")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    serving = small_settings.serving.model_copy(update={"api_key": SecretStr("k-e-y-123")})
    settings = small_settings.model_copy(update={"serving": serving})
    SubprocessTrainJob(settings, python=fake_python).run(8)
    workdir = experiment_dir(settings, 8)
    child = json.loads((workdir / "child_env.json").read_text())
    assert "VIGIL_TRAIN__RUNS_DIR" not in child and "CLOUD_TOKEN" not in child
    assert child["PATH"] == os.environ["PATH"] and child["LC_ALL"] == "C.UTF-8"
    assert child["VIGIL_SERVING__API_KEY"] == "k-e-y-123"
    assert "k-e-y-123" not in (workdir / CONFIG_FILE).read_text()
    assert (workdir / CONFIG_FILE).stat().st_mode & 0o777 == 0o600
