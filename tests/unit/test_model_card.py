"""The hand-written model card quotes the results files its figures come from, unchanged."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CARD = ROOT / "docs" / "MODEL_CARD.md"


def section(heading: str) -> str:
    """The card's text under ``## heading`` up to the next section, lines joined."""
    text = CARD.read_text()
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return " ".join(text[start:end].split())


def results(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((ROOT / "docs" / "results" / name).read_text())
    return loaded


def test_reason_code_counts_are_those_of_bench_reason_codes() -> None:
    """``benchmarks/bench_reason_codes.py`` wrote the counts; the card says them as written."""
    payload = results("bench_reason_codes.json")
    figures = {key: int(value) for key, value in payload["figures"].items()}
    first = payload["first_reasons"]
    families = [name for name in first if name in payload["families"]]
    singles = [first[name] for name in first if name not in payload["families"]]
    without = figures["flagged_without_reason"]
    measured = datetime.fromisoformat(payload["measured_at"])
    expected = [
        f"the {figures['rows']:,} payments",
        f"flags {figures['flagged']:,} payments",
        "none gets an empty list" if without == 0 else f"{without:,} get an empty list",
        f"a family for {figures['family_first']:,} of them",
        "(" + ", ".join(f"`{name}` {first[name]:,}" for name in families) + ")",
        f"among the reasons of {figures['family_among_reasons']:,}",
        f"({singles[0]:,}) and",
        f"({singles[1]:,})",
        f"{measured:%Y-%m-%d %H:%M} UTC",
        f"load {payload['machine']['load_average_1m']:.1f}",
    ]
    text = section("Reason codes (ADR 0024)")
    missing = [phrase for phrase in expected if phrase not in text]
    assert not missing, f"the card does not say {missing} (docs/results/bench_reason_codes.json)"
    assert payload["command"].startswith("python benchmarks/bench_reason_codes.py")
    assert payload["model"]["path"] == "models/pipeline/model.onnx"
    assert payload["data"]["path"] == "data/pipeline/holdout.parquet"
