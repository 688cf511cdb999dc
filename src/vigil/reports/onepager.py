"""The one-pager: problem, value in money, data, architecture, stack and measured figures.

Every figure is read from a file a command wrote: ``docs/eda/findings.json`` (``vigil eda``),
``docs/results/handbook_experiments.json`` (``vigil experiments --results``), the shipped
default's five-seed figures without and with analysts' feedback (``vigil evaluate --feedback
--results``) and ``docs/results/bench_{api,stream}.json`` (the benchmarks). Only the
handbook's published results and issue 17's with-feedback target are constants: they are the
references.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from vigil.config import Settings
from vigil.reports.browser import chromium
from vigil.reports.onepager_html import render

# The handbook's best published figures (its README): chapter-3 split and prequential.
PUBLISHED = {
    "ap_chapter3": 0.658,
    "cp_chapter3": 0.291,
    "ap_best": 0.687,
    "cp_best": 0.305,
}
# The with-feedback target of issue 17 (CP@100, handbook week, 100 cards reviewed a day).
FEEDBACK_TARGET = 0.315
SHIPPED_EXPERIMENT = "mlp_small"  # configs/experiments/mlp_small.yaml: the shipped default
SOURCES = {
    "eda": Path("docs/eda/findings.json"),
    "experiments": Path("docs/results/handbook_experiments.json"),
    "feedback": Path("docs/results/feedback_handbook_mlp_small_lookback_log1p.json"),
    "api": Path("docs/results/bench_api.json"),
    "stream": Path("docs/results/bench_stream.json"),
}
MAKE_TARGET = {
    "eda": "make eda",
    "experiments": "make handbook-results",
    "feedback": "make feedback-results",
    "api": "python benchmarks/bench_api.py",
    "stream": "python benchmarks/bench_stream.py",
}


class MissingResultsError(FileNotFoundError):
    """A results file the one-pager quotes has not been written yet."""


@dataclass(frozen=True)
class OnePager:
    """The files written."""

    html: Path
    pdf: Path
    png: Path


def load_sources(root: Path) -> dict[str, Any]:
    """Every results file, parsed; :class:`MissingResultsError` names the command to run."""
    loaded = {}
    for key, relative in SOURCES.items():
        path = root / relative
        if not path.is_file():
            raise MissingResultsError(f"{path} is missing: run `{MAKE_TARGET[key]}` first")
        loaded[key] = json.loads(path.read_text())
    return loaded


def figures(sources: dict[str, Any], settings: Settings) -> dict[str, str]:
    """The quoted numbers, formatted, from the parsed sources and the cost settings.

    The money figures come from the shipped default's run in the experiments file; the model
    quality figures from its five seeds of the feedback evaluation, without and with feedback.
    """
    quality = sources["eda"]["quality"]
    shipped = next(
        (e for e in sources["experiments"]["experiments"] if e["experiment"] == SHIPPED_EXPERIMENT),
        None,
    )
    if shipped is None or SHIPPED_EXPERIMENT not in sources["feedback"]["summary"]:
        raise MissingResultsError(
            f"the results files have no `{SHIPPED_EXPERIMENT}` entry: run "
            f"`{MAKE_TARGET['experiments']}` and `{MAKE_TARGET['feedback']}`"
        )
    test = shipped["latest_test"]
    seeds = sources["feedback"]["summary"][SHIPPED_EXPERIMENT]
    missed_cost, alarm_cost = settings.train.cost_missed_fraud, settings.train.cost_false_alarm
    no_model = test["n_frauds"] * missed_cost
    saved_share = 1 - test["expected_cost"] / no_model
    per_million = (no_model - test["expected_cost"]) / test["n_transactions"] * 1_000_000
    api, stream = sources["api"]["figures"], sources["stream"]["figures"]
    workers = sorted(
        (k for k in stream if k.endswith("_tx_per_s") and "per_core" not in k),
        key=lambda k: int(k.split("_")[1]),
    )
    return {
        "rows": f"{quality['rows']:,}",
        "days": str(quality["days"]),
        "customers": f"{quality['customers']:,}",
        "terminals": f"{quality['terminals']:,}",
        "fraud_rate": f"{quality['fraud_rate']:.2%}",
        "missed_cost": f"{missed_cost:,.0f}",
        "alarm_cost": f"{alarm_cost:,.0f}",
        "saved_share": f"{saved_share:.0%}",
        "per_million": f"{per_million:,.0f}",
        "recall": f"{test['recall']:.0%}",
        "precision": f"{test['precision']:.0%}",
        "model": escape(f"{SHIPPED_EXPERIMENT} ({shipped['model_kind']})"),
        "seeds": str(len(seeds["seeds"])),
        "ap": _mean_std(seeds["without_feedback"]["average_precision"]),
        "cp": _mean_std(seeds["without_feedback"]["card_precision_at_k"]),
        "ap_feedback": _mean_std(seeds["with_feedback"]["average_precision"]),
        "cp_feedback": _mean_std(seeds["with_feedback"]["card_precision_at_k"]),
        "cp_target": f"{FEEDBACK_TARGET:.3f}",
        "cp_target_status": "met"
        if seeds["with_feedback"]["card_precision_at_k"]["mean"] >= FEEDBACK_TARGET
        else "not met",
        "review_budget": str(sources["feedback"]["protocol"]["top_k_cards"]),
        "ap_published": f"{PUBLISHED['ap_best']:.3f}",
        "cp_published": f"{PUBLISHED['cp_best']:.3f}",
        "ap_chapter3": f"{PUBLISHED['ap_chapter3']:.3f}",
        "cp_chapter3": f"{PUBLISHED['cp_chapter3']:.3f}",
        "predict_rps": f"{api['predict_requests_per_s']:,.0f}",
        "predict_p99": f"{api['predict_p99_ms']:.1f}",
        "connections": f"{api['connections']:.0f}",
        "predict_per_core": f"{api['predict_per_core_requests_per_s']:,.0f}",
        "stream_tps": f"{stream[workers[0]]:,.0f}" if workers else "n/a",
        "stream_p99": f"{stream['latency_p99_ms']:.0f}",
        "stream_per_core": f"{stream[workers[0].replace('_tx_per_s', '_per_core_tx_per_s')]:,.0f}"
        if workers
        else "n/a",
        "stream_load": f"{sources['stream']['machine']['load_average_1m']:.1f}",
        "api_date": escape(sources["api"]["measured_at"][:10]),
        "api_load": f"{sources['api']['machine']['load_average_1m']:.1f}",
        "stream_date": escape(sources["stream"]["measured_at"][:10]),
        "cpus": str(sources["api"]["machine"]["cpus"]),
    }


def _mean_std(metric: dict[str, float]) -> str:
    """``mean ± std`` of a summary metric, to three decimals."""
    return f"{metric['mean']:.3f} &plusmn; {metric['std']:.3f}"


def build_one_pager(settings: Settings, root: Path, out_dir: Path) -> OnePager:
    """Write ``one-pager.html``, print it to an A4 ``one-pager.pdf``, render page 1 as PNG."""
    values = figures(load_sources(root), settings)
    out_dir.mkdir(parents=True, exist_ok=True)
    html = out_dir / "one-pager.html"
    html.write_text(render(values))
    pdf = out_dir / "one-pager.pdf"
    with chromium() as page:
        page.goto(html.resolve().as_uri(), wait_until="load")
        page.pdf(path=str(pdf), format="A4", print_background=True, prefer_css_page_size=True)
    png = pdf_page_png(pdf, out_dir / "one-pager")
    return OnePager(html, pdf, png)


def pdf_page_png(pdf: Path, stem: Path, page: int = 1, dpi: int = 80) -> Path:
    """Page ``page`` of ``pdf`` as ``<stem>.png`` (poppler's pdftoppm)."""
    command = ["pdftoppm", "-png", "-r", str(dpi), "-f", str(page), "-l", str(page)]
    subprocess.run([*command, "-singlefile", str(pdf), str(stem)], check=True)
    return stem.with_suffix(".png")


def pdf_pages(pdf: Path) -> int:
    """How many pages ``pdf`` has (poppler's pdfinfo)."""
    info = subprocess.run(["pdfinfo", str(pdf)], check=True, capture_output=True, text=True)
    line = next(x for x in info.stdout.splitlines() if x.startswith("Pages:"))
    return int(line.split()[1])
