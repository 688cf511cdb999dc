"""The one-pager quotes the results files and prints to exactly one A4 page."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from vigil.config import build_settings, load_settings
from vigil.reports.browser import CHROMIUM
from vigil.reports.onepager import (
    FEEDBACK_TARGET,
    SHIPPED_EXPERIMENT,
    SOURCES,
    MissingResultsError,
    build_one_pager,
    figures,
    load_sources,
    pdf_pages,
)
from vigil.training.experiments import experiment_settings

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ROOT = Path(__file__).resolve().parents[2]


def require_renderers() -> None:
    """Chromium and poppler; CI installs them (.ci/run), so there a missing one fails."""
    missing = [n for n in ("pdftoppm", "pdfinfo") if shutil.which(n) is None]
    missing += [] if CHROMIUM.exists() else [str(CHROMIUM)]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"missing {missing}: apt-get install chromium poppler-utils")
        pytest.skip(f"missing {missing}")


def summary_metric(mean: float, std: float) -> dict[str, object]:
    return {"mean": mean, "std": std, "values": [mean - std, mean + std]}


def feedback_payload(cp_with: float) -> dict[str, object]:
    """``vigil evaluate --feedback --results`` for the shipped default, 5 seeds."""
    return {
        "protocol": {"top_k_cards": 100},
        "summary": {"mlp_small": {
            "seeds": [0, 1, 2, 3, 4], "model_kind": "mlp",
            "without_feedback": {"average_precision": summary_metric(0.7156, 0.0079),
                                 "card_precision_at_k": summary_metric(0.3, 0.0013)},
            "with_feedback": {"average_precision": summary_metric(0.7643, 0.005),
                              "card_precision_at_k": summary_metric(cp_with, 0.0021)},
        }},
    }  # fmt: skip


def source_payloads(predict_rps: float, cp_with: float = 0.3083) -> dict[str, Any]:
    """Results as the commands write them (small, made-up but well-formed values)."""
    return {
        "eda": {
            "quality": {"rows": 123_456, "days": 40, "customers": 300, "terminals": 600,
                        "fraud_rate": 0.0081},
        },
        "experiments": {"experiments": [{  # sorted by AP: the shipped default is not first
            "experiment": "lightgbm", "model_kind": "lightgbm", "n_runs": 1,
            "means": {"average_precision": 0.7323, "card_precision_at_k": 0.302},
            "latest_test": {"n_frauds": 400, "n_transactions": 60_000, "expected_cost": 10_000,
                            "recall": 0.8, "precision": 0.5},
        }, {
            "experiment": "mlp_small", "model_kind": "mlp", "n_runs": 1,
            "means": {"average_precision": 0.7123, "card_precision_at_k": 0.301},
            "latest_test": {"n_frauds": 400, "n_transactions": 60_000, "expected_cost": 12_000,
                            "recall": 0.7, "precision": 0.6},
        }]},
        "feedback": feedback_payload(cp_with),
        "api": {"measured_at": "2026-12-04T19:00:00+00:00",
                "machine": {"cpus": 2, "load_average_1m": 1.5},
                "figures": {"predict_requests_per_s": predict_rps, "predict_p99_ms": 7.77,
                            "connections": 32, "predict_per_core_requests_per_s": 7000}},
        "stream": {"measured_at": "2026-12-04T19:05:00+00:00",
                   "machine": {"cpus": 2, "load_average_1m": 3.0},
                   "figures": {"workers_2_tx_per_s": 20_000, "workers_1_tx_per_s": 12_345,
                               "workers_1_per_core_tx_per_s": 14_000,
                               "workers_2_per_core_tx_per_s": 13_000,
                               "latency_p99_ms": 42.0}},
    }  # fmt: skip


def write_sources(root: Path, predict_rps: float) -> None:
    """The results files, written where the one-pager reads them."""
    payloads = source_payloads(predict_rps)
    for key, relative in SOURCES.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payloads[key]))


def test_one_pager_quotes_the_results_and_fits_one_a4_page(tmp_path: Path) -> None:
    require_renderers()
    write_sources(tmp_path, predict_rps=6543.2)
    written = build_one_pager(build_settings({}), tmp_path, tmp_path / "out")
    html = written.html.read_text()
    assert "6,543 req/s" in html and "7.8 ms" in html  # from bench_api.json
    assert "12,345 tx/s" in html and "14,000 tx/s per dedicated core" in html  # one worker
    assert "123,456" in html
    # the shipped default's five seeds, without and with feedback
    assert "0.716 &plusmn; 0.008" in html and "0.300 &plusmn; 0.001" in html
    assert "0.308 &plusmn; 0.002" in html and "0.764 &plusmn; 0.005" in html
    assert f"target {FEEDBACK_TARGET:.3f}: not met" in html
    # the shipped default's run, not the best by AP: 400 frauds x 100 missed = 40,000
    # without a model; its cost is 12,000.
    assert "70%" in html and "466,667" in html
    assert pdf_pages(written.pdf) == 1
    assert written.png.read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize(("cp_with", "status"), [(0.3149, "not met"), (0.315, "met")])
def test_the_feedback_target_is_met_from_the_five_seed_mean(cp_with: float, status: str) -> None:
    sources = source_payloads(predict_rps=1.0, cp_with=cp_with)
    assert figures(sources, build_settings({}))["cp_target_status"] == status


def test_results_without_the_shipped_default_name_the_commands(tmp_path: Path) -> None:
    write_sources(tmp_path, predict_rps=1.0)
    sources = load_sources(tmp_path)
    sources["experiments"]["experiments"] = sources["experiments"]["experiments"][:1]
    with pytest.raises(MissingResultsError, match="make handbook-results"):
        figures(sources, build_settings({}))


def test_a_missing_results_file_names_the_command_that_writes_it(tmp_path: Path) -> None:
    write_sources(tmp_path, predict_rps=1.0)
    (tmp_path / SOURCES["stream"]).unlink()
    with pytest.raises(MissingResultsError, match=r"bench_stream\.py"):
        load_sources(tmp_path)


def test_the_quoted_experiment_is_the_shipped_configuration() -> None:
    """The page calls SHIPPED_EXPERIMENT's figures the shipped model's: its experiment file
    must change nothing of configs/vigil.yaml but the experiment's name."""
    base = ROOT / "configs" / "vigil.yaml"
    experiment = ROOT / "configs" / "experiments" / f"{SHIPPED_EXPERIMENT}.yaml"
    shipped = experiment_settings(base, experiment, environ={}).model_dump()
    default = load_settings(base, environ={}).model_dump()
    shipped["train"].pop("experiment_name")
    default["train"].pop("experiment_name")
    assert shipped == default
