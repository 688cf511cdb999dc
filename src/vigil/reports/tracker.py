"""The experiment tracker as people see it: a real MLflow store and screenshots of its UI.

:func:`build_showcase` trains the experiments of ``configs/experiments`` on two dataset
versions of a small simulated world (the handbook's simulator, then with a card-testing
drift), logs and registers every run and sets the aliases; :func:`screenshot_tracker` starts
``mlflow server`` on that store and photographs runs compared, one run and the registry.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vigil.config import Settings
from vigil.reports.browser import chromium, free_port, server

logger = logging.getLogger(__name__)

EXPERIMENTS = ("logistic", "lightgbm", "mlp_small")
# A world small enough for a few minutes on 2 cores; dates fit its 60 days.
WORLD = {
    "data.n_customers": 400,
    "data.n_terminals": 800,
    "data.n_days": 60,
    "train.train_start": "2018-05-05",
    "train.train_days": 14,
    "train.history_days": 0,
    "train.test_days": 7,
    "train.epochs": 8,
    "model.lightgbm.n_estimators": 200,
}
DATASETS = {"v1-base": "none", "v2-drift": "new_fraud_pattern"}
DRIFT_START_DAY = 35
RENDER_WAIT_MS = 2500
LOAD_TIMEOUT_MS = 90_000


@dataclass(frozen=True)
class Showcase:
    """The store, the registered model and what the screenshots should open."""

    tracking_uri: str
    model_name: str
    run_ids: list[str]
    experiment_ids: list[str]  # one per run, in the same order


def _tracking_uri(workdir: Path) -> str:
    return f"sqlite:///{workdir.resolve() / 'mlflow.db'}"


def _overrides(workdir: Path, dataset: str, scenario: str) -> list[str]:
    values = {
        **WORLD,
        "data.drift.scenario": scenario,
        "data.drift.start_day": DRIFT_START_DAY,
        "data.raw_dir": str(workdir / dataset / "raw"),
        "train.runs_dir": str(workdir / dataset / "runs"),
        "tracking.mlflow_uri": _tracking_uri(workdir),
        "features.output_path": str(workdir / dataset / "features.parquet"),
    }
    return [f"{key}={json.dumps(value)}" for key, value in values.items()]


def build_showcase(
    base_config: Path, workdir: Path, experiments_dir: Path, environ: Mapping[str, str]
) -> Showcase:
    """Simulate both dataset versions, run every experiment on each, register, set aliases.

    ``environ``'s ``VIGIL_*`` variables apply as in ``vigil experiments run``.
    """
    from vigil.data.simulate import generate
    from vigil.inference.roles import CHAMPION
    from vigil.tracking.model_registry import ModelRegistry
    from vigil.tracking.registration import register_run
    from vigil.training.experiments import experiment_files, experiment_settings, run_experiments

    files = experiment_files(experiments_dir, EXPERIMENTS)
    _create_experiments(base_config, files, workdir, environ)
    registrations = []
    for dataset, scenario in DATASETS.items():
        overrides = _overrides(workdir, dataset, scenario)
        settings = experiment_settings(base_config, files[0], overrides, environ=environ)
        if not settings.data.raw_dir.exists():
            generate(settings.data, settings.data.raw_dir, progress=False)
        for metrics in run_experiments(base_config, files, overrides, environ=environ):
            run_dir = settings.train.runs_dir / metrics["run_id"]
            registrations.append((metrics, register_run(settings, run_dir)))
    best = max(registrations, key=lambda pair: pair[0]["test"]["average_precision"])
    registry = ModelRegistry(settings.tracking)
    registry.set_alias(CHAMPION, best[1].version)
    return _describe(settings, [r.run_id for _, r in registrations])


def _create_experiments(
    base_config: Path, files: Sequence[Path], workdir: Path, environ: Mapping[str, str]
) -> None:
    """Create the experiments with their artifacts under ``workdir`` (not the working dir)."""
    from mlflow import MlflowClient

    from vigil.tracking.model_registry import prepare_tracking_uri
    from vigil.training.experiments import experiment_settings

    uri = prepare_tracking_uri(_tracking_uri(workdir))
    client = MlflowClient(uri)
    for file in files:
        name = experiment_settings(base_config, file, environ=environ).train.experiment_name
        if client.get_experiment_by_name(name) is None:
            artifacts = workdir.resolve() / "artifacts" / name
            client.create_experiment(name, artifact_location=str(artifacts))


def _describe(settings: Settings, run_ids: list[str]) -> Showcase:
    from mlflow import MlflowClient

    client = MlflowClient(settings.tracking.mlflow_uri)
    experiment_ids = [client.get_run(r).info.experiment_id for r in run_ids]
    return Showcase(settings.tracking.mlflow_uri, settings.tracking.registered_model, run_ids,
                    experiment_ids)  # fmt: skip


def _hide_side_panels(page: Any) -> None:
    """Collapse MLflow's navigation sidebar and close its assistant panel (which collapsing
    the sidebar opens), so nothing covers or squeezes the content."""
    expanded = page.get_by_role("link", name="Home", exact=True)
    if expanded.count() and expanded.first.is_visible():
        page.get_by_role("button", name="Toggle sidebar").first.click()
        page.wait_for_timeout(500)
    close = page.get_by_role("button", name="Close", exact=True)
    if close.count() and close.first.is_visible():
        close.first.click()
    page.wait_for_timeout(500)


def _show(page: Any, action: str) -> None:
    """Bring the part of a view worth showing into sight (a section, a file preview)."""
    if action:
        target = page.get_by_text(action, exact=True).first
        if action.endswith((".json", ".png")):
            target.click()
        else:
            target.scroll_into_view_if_needed()
        page.wait_for_timeout(1000)


def screenshot_tracker(showcase: Showcase, out_dir: Path, log: Path) -> list[Path]:
    """Start ``mlflow server`` on the store and save the four tracker views as PNG."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "mlflow", "server", "--backend-store-uri", showcase.tracking_uri,
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    experiments = json.dumps(sorted(set(showcase.experiment_ids)))
    runs = json.dumps(showcase.run_ids)
    experiment, one_run = showcase.experiment_ids[-1], showcase.run_ids[-1]
    run_page = f"#/experiments/{experiment}/runs/{one_run}"
    compare = f"#/compare-runs?runs={runs}&experiments={experiments}"
    # file name: (page, text that shows it has loaded, what to scroll to or click there)
    views = {
        "mlflow-experiments.png": (
            f"#/compare-experiments/s?experiments={experiments}",
            "matching runs",
            "",
        ),
        "mlflow-compare.png": (compare, "Parallel Coordinates Plot", ""),
        "mlflow-compare-metrics.png": (compare, "Run details", "Metrics"),
        "mlflow-run.png": (run_page, "About this run", ""),
        "mlflow-artifacts.png": (f"{run_page}/artifacts", "metrics.json", "metrics.json"),
        "mlflow-registry.png": (f"#/models/{showcase.model_name}", "Versions", ""),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with server(command, f"{url}/health", log), chromium((1440, 900)) as page:
        for name, (fragment, ready, action) in views.items():
            page.goto(f"{url}/{fragment}", wait_until="load")
            page.get_by_text(ready).first.wait_for(timeout=LOAD_TIMEOUT_MS)
            page.wait_for_timeout(RENDER_WAIT_MS)  # the UI polls, so the network never idles
            _hide_side_panels(page)
            _show(page, action)
            page.screenshot(path=str(out_dir / name))
            written.append(out_dir / name)
    return written
