"""Reason codes of a model's flagged payments: how often a feature family is the first reason.

Every row of a feature file goes through ``decide`` (the decision path of the API, the stream
worker and batch scoring: ``inference.reason_codes`` reasons for the flagged rows, single
features and feature families occluded toward the model's baseline, ADR 0024); the flagged
rows' reasons are counted. By default the model and the rows are the DVC pipeline's, both
rebuilt by ``dvc repro``: its model (``models/pipeline/model.onnx``) on its hold-out days
(``data/pipeline/holdout.parquet``, the days after the test week that the ``inference_model``
stage batch-scores). The model card quotes ``docs/results/bench_reason_codes.json``.

    dvc repro && .venv/bin/python benchmarks/bench_reason_codes.py
    .venv/bin/python benchmarks/bench_reason_codes.py --model runs/X/model.onnx --features F

Prints the first reasons, then the headline (flagged rows, a family first, no reason) last.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from _results import default_path, write_results  # benchmarks/ is the script's folder
from vigil.config import DEFAULT_CONFIG_PATH, load_settings
from vigil.data.schema import TX_DATETIME
from vigil.features.definitions import feature_families
from vigil.inference.batch import feature_matrix, load_feature_frame
from vigil.inference.decision import Decision, decide
from vigil.inference.scorer import OnnxScorer
from vigil.logs import configure_logging
from vigil.training.provenance import dataset_hash

ROOT = Path(__file__).resolve().parents[1]
PIPELINE_MODEL = ROOT / "models" / "pipeline" / "model.onnx"
PIPELINE_HOLDOUT = ROOT / "data" / "pipeline" / "holdout.parquet"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; the defaults are the DVC pipeline's model and hold-out days."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=PIPELINE_MODEL, help="ONNX model")
    parser.add_argument(
        "--features", type=Path, default=PIPELINE_HOLDOUT, help="feature Parquet or CSV"
    )
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument(
        "--results", type=Path, default=default_path("bench_reason_codes"), help="JSON results"
    )
    return parser.parse_args(argv)


@dataclass(frozen=True)
class ReasonCounts:
    """Rows decided, flagged, and how the flagged rows' reasons fall on feature families."""

    rows: int
    flagged: int
    family_first: int  # flagged rows whose first reason is a family
    family_among_reasons: int  # flagged rows with a family among their reasons
    flagged_without_reason: int
    first_reasons: dict[str, int]  # flagged rows per first reason, most frequent first

    def figures(self) -> dict[str, float]:
        """The headline counts, for ``write_results``."""
        return {
            "rows": self.rows,
            "flagged": self.flagged,
            "family_first": self.family_first,
            "family_among_reasons": self.family_among_reasons,
            "flagged_without_reason": self.flagged_without_reason,
        }


def count_reasons(decisions: Sequence[Decision], families: Collection[str]) -> ReasonCounts:
    """Count the flagged decisions' reasons; ``families``: the feature family names."""
    flagged = [d for d in decisions if d.label == 1]
    first = Counter(d.reason_codes[0].feature for d in flagged if d.reason_codes)
    return ReasonCounts(
        rows=len(decisions),
        flagged=len(flagged),
        family_first=sum(n for name, n in first.items() if name in families),
        family_among_reasons=sum(
            any(r.feature in families for r in d.reason_codes) for d in flagged
        ),
        flagged_without_reason=sum(not d.reason_codes for d in flagged),
        first_reasons=dict(first.most_common()),
    )


def _shown(path: Path) -> str:
    """``path`` relative to the repository when inside it (the JSON is committed)."""
    resolved = path.resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(path)


def main(argv: list[str] | None = None) -> None:
    """Decide every row, count the flagged rows' reasons, print and save the counts."""
    args = parse_args(argv)
    configure_logging()
    logging.getLogger("vigil").setLevel(logging.WARNING)  # figures only
    settings = load_settings(args.config, args.overrides, environ=os.environ)
    scorer = OnnxScorer.load(args.model)
    frame = load_feature_frame(settings, args.features, features_precomputed=True)
    x = feature_matrix(frame, scorer.feature_names)
    ids = list(range(len(x)))
    step, k = settings.inference.batch_size, settings.inference.reason_codes
    decisions = [
        decision
        for start in range(0, len(x), step)
        for decision in decide(scorer, ids[start : start + step], x[start : start + step], k)
    ]
    families = sorted(feature_families(scorer.feature_names))
    counts = count_reasons(decisions, families)
    for name, n in counts.first_reasons.items():
        print(f"first reason {name}{' (family)' if name in families else ''}: {n:,}")
    metadata = scorer.metadata
    times = frame[TX_DATETIME]  # every feature file keeps the event time
    details = {
        "model": {
            "path": _shown(args.model),
            "sha256": dataset_hash(args.model),
            "model_version": metadata.model_version,
            "model_kind": metadata.model_kind,
            "threshold": metadata.threshold,
            "baseline": "feature_means" if metadata.reason_baseline is None else "reason_baseline",
        },
        "data": {
            "path": _shown(args.features),
            "sha256": dataset_hash(args.features),
            "first_tx": str(times.min()),
            "last_tx": str(times.max()),
        },
        "reason_codes": k,
        "families": families,
        "first_reasons": counts.first_reasons,
    }
    write_results("bench_reason_codes", counts.figures(), args.results, details)
    print(
        f"{metadata.model_kind} {metadata.model_version} flags {counts.flagged:,} of "
        f"{counts.rows:,} rows: a family is the first reason of {counts.family_first:,} "
        f"and among the reasons of {counts.family_among_reasons:,}; "
        f"{counts.flagged_without_reason:,} without a reason"
    )


if __name__ == "__main__":
    main()
