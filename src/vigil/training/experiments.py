"""Experiments: override files merged over the base config, run in turn, compared in a table."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from vigil.config import ConfigError, Settings, flatten, load_settings
from vigil.training.artifacts import METRICS_FILE

logger = logging.getLogger(__name__)

# Table columns: (header, key in the run's "test" metrics).
COLUMNS = (
    ("AUC ROC", "auc_roc"),
    ("AP", "average_precision"),
    ("CP@k", "card_precision_at_k"),
    ("cost/tx", "expected_cost_per_transaction"),
)


def parse_seeds(text: str, base_seed: int) -> list[int]:
    """``--seeds``: ``"0,1,2,3,4"`` (those seeds), ``"0-4"`` (inclusive range) or ``"5"``
    (five seeds from ``base_seed``, the experiment's ``train.seed``)."""
    text = text.strip()
    try:
        if "," in text:
            seeds = [int(part) for part in text.split(",") if part.strip()]
        elif "-" in text.lstrip("-"):
            first, last = text.split("-", 1) if not text.startswith("-") else ("", "")
            seeds = list(range(int(first), int(last) + 1))
        else:
            seeds = list(range(base_seed, base_seed + int(text)))
    except ValueError:
        raise ConfigError(f"--seeds {text!r}: expected e.g. 0,1,2,3,4 or 0-4 or 5") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {text!r}: expected at least one seed and no repeats")
    return seeds


def experiment_files(directory: Path, names: Sequence[str] = ()) -> list[Path]:
    """The override files to run: all ``*.yaml`` in ``directory``, or the named ones."""
    available = {p.stem: p for p in sorted(directory.glob("*.yaml"))}
    if not available:
        raise ConfigError(f"no experiment files (*.yaml) in {directory}")
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ConfigError(f"unknown experiment(s) {unknown}; available: {sorted(available)}")
    return [available[n] for n in names] if names else list(available.values())


def experiment_settings(
    base_config: Path,
    experiment_file: Path,
    overrides: Sequence[str] = (),
    *,
    environ: Mapping[str, str],
) -> Settings:
    """Base YAML, then ``VIGIL_*`` of ``environ``, then the experiment file, then ``--set``.

    The experiment name defaults to the file's stem.
    """
    tree = yaml.safe_load(experiment_file.read_text()) or {}
    if not isinstance(tree, dict):
        raise ConfigError(f"experiment file {experiment_file} must hold a mapping of sections")
    tree.setdefault("train", {}).setdefault("experiment_name", experiment_file.stem)
    merged = [f"{key}={json.dumps(value, default=str)}" for key, value in flatten(tree).items()]
    return load_settings(base_config, [*merged, *overrides], environ=environ)


@dataclass(frozen=True)
class Row:
    """One line of the comparison table: an experiment's runs, aggregated."""

    experiment: str
    model_kind: str
    n_runs: int
    means: dict[str, float]
    spreads: dict[str, float]


def read_run_metrics(runs_dir: Path) -> list[dict[str, Any]]:
    """``metrics.json`` of every run under ``runs_dir`` (oldest first)."""
    files = sorted(runs_dir.glob(f"*/{METRICS_FILE}"), key=lambda p: p.stat().st_mtime)
    return [json.loads(f.read_text()) for f in files]


def aggregate(runs: Sequence[dict[str, Any]]) -> list[Row]:
    """Group runs by experiment name: mean and standard deviation of each table column."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault(run["experiment_name"], []).append(run)
    rows = []
    for name, members in groups.items():
        values = {key: np.array([m["test"][key] for m in members]) for _, key in COLUMNS}
        rows.append(
            Row(
                experiment=name,
                model_kind=members[-1]["model_kind"],
                n_runs=len(members),
                means={k: float(v.mean()) for k, v in values.items()},
                spreads={k: float(v.std()) for k, v in values.items()},
            )
        )
    return sorted(rows, key=lambda r: -r.means["average_precision"])


def format_table(rows: Sequence[Row]) -> str:
    """A Markdown table, best AP first; ``mean ± std`` when an experiment has several runs."""
    header = ["experiment", "kind", "runs", *(title for title, _ in COLUMNS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row.experiment, row.model_kind, str(row.n_runs)]
        for _, key in COLUMNS:
            spread = f" ± {row.spreads[key]:.4f}" if row.n_runs > 1 else ""
            cells.append(f"{row.means[key]:.4f}{spread}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def results_payload(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The comparison as JSON for generated docs: each experiment's mean and std of the table
    columns, and the newest run's whole test evaluation (costs, precision, recall)."""
    newest = {run["experiment_name"]: run for run in runs}
    return {
        "experiments": [
            {
                **asdict(row),
                "latest_test": newest[row.experiment]["test"],
                "dataset": newest[row.experiment]["dataset"],
            }
            for row in aggregate(runs)
        ]
    }


def run_experiments(
    base_config: Path,
    files: Sequence[Path],
    overrides: Sequence[str] = (),
    data: Path | None = None,
    seeds: str = "1",
    *,
    environ: Mapping[str, str],
) -> list[dict[str, Any]]:
    """Run every experiment once per seed of ``seeds`` (see :func:`parse_seeds`).

    Features are computed once per distinct feature configuration and data.
    """
    from vigil.training.data import FeatureTable, load_feature_table
    from vigil.training.run import run_training

    tables: dict[str, FeatureTable] = {}
    results = []
    for file in files:
        first = experiment_settings(base_config, file, overrides, environ=environ)
        for value in parse_seeds(seeds, first.train.seed):
            seed = f"train.seed={value}"
            settings = experiment_settings(base_config, file, [*overrides, seed], environ=environ)
            # Runs that share data, features and periods share one feature table.
            key = json.dumps(
                [str(data or settings.data.raw_dir), settings.features.model_dump(mode="json"),
                 str(settings.train.train_start), settings.train.train_days,
                 settings.train.delay_days, settings.train.test_days],
            )  # fmt: skip
            if key not in tables:
                tables[key] = load_feature_table(settings, data)
            logger.info("experiment %s (%s)", settings.train.experiment_name, seed)
            results.append(run_training(settings, tables[key]).metrics)
    return results
