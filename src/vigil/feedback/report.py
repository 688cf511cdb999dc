"""Run the feedback evaluation over experiments and seeds; summarise it as a table and JSON."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vigil.config import Settings
from vigil.feedback.evaluation import VARIANTS, FeedbackResult, evaluate_with_feedback
from vigil.feedback.investigator import ReviewPolicy
from vigil.training.data import load_feature_table
from vigil.training.experiments import experiment_settings

logger = logging.getLogger(__name__)

METRICS = (("AP", "average_precision"), ("CP@k", "card_precision_at_k"))


def cached_feature_table(settings: Settings, data: Path, cache_dir: Path) -> pd.DataFrame:
    """The stream feature table of the protocol's periods, computed once per data and config."""
    stat = data.stat()
    key = json.dumps(
        [
            str(data.resolve()),
            stat.st_size,
            stat.st_mtime_ns,
            settings.features.model_dump(mode="json", exclude={"verdicts", "verdict_window_days"}),
            settings.train.model_dump(
                mode="json",
                include={"train_start", "train_days", "history_days", "delay_days", "test_days"},
            ),
        ],
        sort_keys=True,
    )
    path = cache_dir / f"features-{hashlib.sha256(key.encode()).hexdigest()[:16]}.parquet"
    if path.exists():
        logger.info("feature table from cache %s", path)
        return pd.read_parquet(path)
    table = load_feature_table(settings, data).frame
    cache_dir.mkdir(parents=True, exist_ok=True)
    table.to_parquet(path, index=False)
    return table


def run_grid(
    base_config: Path,
    experiment_files: Sequence[Path],
    overrides: Sequence[str],
    seeds: Sequence[int],
    data: Path,
    cache_dir: Path,
    policy: ReviewPolicy,
    feedback: bool,
    retrain: bool,
    *,
    environ: Mapping[str, str],
    on_result: Callable[[list[FeedbackResult]], None] | None = None,
) -> list[FeedbackResult]:
    """Every experiment with every seed; one feature table per feature configuration.

    ``on_result`` receives the results so far after each run (a long grid keeps what it did).
    """
    results: list[FeedbackResult] = []
    for file in experiment_files:
        for seed in seeds:
            settings = experiment_settings(
                base_config, file, [*overrides, f"train.seed={seed}"], environ=environ
            )
            frame = cached_feature_table(settings, data, cache_dir)
            result = evaluate_with_feedback(settings, frame, policy, feedback, retrain)
            logger.info("%s", result.as_dict())
            results.append(result)
            if on_result is not None:
                on_result(results)
    return results


def summarise(results: Sequence[FeedbackResult]) -> dict[str, dict[str, Any]]:
    """Per experiment and variant: mean, population std and values of each metric."""
    summary: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(r.experiment for r in results):
        runs = [r for r in results if r.experiment == name]
        summary[name] = {"seeds": [r.seed for r in runs], "model_kind": runs[0].model_kind}
        for variant in VARIANTS:
            if variant not in runs[0].figures:
                continue
            summary[name][variant] = {}
            for _, key in METRICS:
                values = [r.figures[variant][key] for r in runs]
                summary[name][variant][key] = {
                    "mean": float(np.mean(values)),
                    "std": float(np.std(values)),
                    "values": [round(v, 6) for v in values],
                }
    return summary


def format_table(summary: Mapping[str, Mapping[str, Any]]) -> str:
    """A Markdown table: one row per experiment, mean ± std of each variant's metrics (the
    mean alone for one seed: it has no spread)."""
    variants = [v for v in VARIANTS if any(v in row for row in summary.values())]
    header = ["experiment", "seeds"]
    header += [f"{label} {v.replace('_', ' ')}" for v in variants for label, _ in METRICS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in summary.items():
        cells = [name, str(len(row["seeds"]))]
        for variant in variants:
            for _, key in METRICS:
                figure = row.get(variant, {}).get(key)
                spread = f" ± {figure['std']:.3f}" if figure and len(row["seeds"]) > 1 else ""
                cells.append(f"{figure['mean']:.3f}{spread}" if figure else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def results_payload(
    results: Sequence[FeedbackResult], data: Path, policy: ReviewPolicy, settings: Settings
) -> dict[str, Any]:
    """What ``--results`` writes: protocol, every run, the summary."""
    config = settings.train
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": str(data),
        "protocol": {
            "train_start": str(config.train_start),
            "train_days": config.train_days,
            "history_days": config.history_days,
            "delay_days": config.delay_days,
            "test_days": config.test_days,
            "top_k_cards": config.top_k_cards,
            "review_policy": asdict(policy),
            "verdict_window_days": settings.features.verdict_window_days,
        },
        "runs": [r.as_dict() for r in results],
        "summary": summarise(results),
    }
