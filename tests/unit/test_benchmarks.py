"""Benchmark entry points: the project's logging and configuration; what `make bench` runs."""

from __future__ import annotations

import gc
import importlib
import json
import logging
import re
import shlex
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from onnx_factory import logistic_model, make_metadata, save
from vigil.config import load_settings
from vigil.features.definitions import feature_families, feature_names
from vigil.inference.decision import Decision
from vigil.inference.reasons import ReasonCode
from vigil.logs import PLAIN_FORMAT

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.mark.usefixtures("restored_logging")
def test_bench_model_cost_runs_outside_the_project_on_its_logging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    monkeypatch.delenv("VIGIL_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # no configs/ here: the project's file is found all the same
    from bench_model_cost import main

    names = feature_names(load_settings().features)
    model = save(logistic_model([0.1] * len(names), 0.0, make_metadata(names)), tmp_path / "m.onnx")
    results = tmp_path / "cost.json"
    main([str(model), "--customers", "20", "--days", "8", "--calls", "8", "--rounds", "1",
          "--results", str(results)])  # fmt: skip

    figures = json.loads(results.read_text())["figures"]
    assert figures["0_logistic_score_one_cpu_us"] > 0
    (handler,) = logging.getLogger().handlers  # vigil.logs, as every entry point
    assert handler.formatter is not None and handler.formatter._fmt == PLAIN_FORMAT
    assert logging.getLogger("vigil").level == logging.WARNING


def decision(label: int, *reasons: str) -> Decision:
    codes = tuple(ReasonCode(name, 0.1) for name in reasons)
    return Decision(0, 0.9 if label else 0.1, label, 0.5, codes, "m-1")


def test_bench_reason_codes_counts_only_flagged_rows_and_families_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from bench_reason_codes import count_reasons

    decisions = [
        decision(1, "terminal_risk", "tx_amount"),  # a family first
        decision(1, "tx_amount", "customer_tx_count"),  # a family, not first
        decision(1, "tx_amount"),
        decision(1),  # flagged, no reason
        decision(0, "terminal_risk"),  # not flagged: not counted (reasons only if asked)
    ]
    counts = count_reasons(decisions, {"terminal_risk", "customer_tx_count"})
    assert counts.figures() == {
        "rows": 5,
        "flagged": 4,
        "family_first": 1,
        "family_among_reasons": 2,
        "flagged_without_reason": 1,
    }
    assert counts.first_reasons == {"tx_amount": 2, "terminal_risk": 1}


@pytest.mark.usefixtures("restored_logging")
def test_bench_reason_codes_writes_the_counts_with_the_command_time_and_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from bench_reason_codes import main

    names = feature_names(load_settings().features)
    # flags on the terminal's risk windows (a family) or the amount (no family)
    weights = [3.0 if "_risk_" in n and n.startswith("terminal") else 0.0 for n in names]
    weights[names.index("tx_amount")] = 2.0
    model = save(
        logistic_model(weights, -3.0, make_metadata(names, model_version="m-7")),
        tmp_path / "m.onnx",
    )
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.random((300, len(names))), columns=names)
    frame.insert(0, "transaction_id", range(300))
    frame.insert(1, "tx_datetime", pd.date_range("2018-06-24", periods=300, freq="h"))
    features = tmp_path / "f.parquet"
    frame.to_parquet(features)
    results = tmp_path / "reasons.json"

    main(["--model", str(model), "--features", str(features), "--results", str(results)])

    payload = json.loads(results.read_text())
    figures = payload["figures"]
    x = frame[names].to_numpy(np.float32)
    expected_flagged = int((1 / (1 + np.exp(3.0 - x @ np.asarray(weights))) >= 0.5).sum())
    assert 0 < figures["flagged"] == expected_flagged < figures["rows"] == 300
    assert figures["flagged_without_reason"] == 0
    assert sum(payload["first_reasons"].values()) == expected_flagged
    assert payload["families"] == sorted(feature_families(names))
    family_first = sum(n for k, n in payload["first_reasons"].items() if k in payload["families"])
    assert figures["family_first"] == family_first
    assert payload["model"]["model_version"] == "m-7"
    assert payload["model"]["baseline"] == "feature_means"  # no reason_baseline in this file
    assert payload["data"]["first_tx"] == "2018-06-24 00:00:00"
    assert datetime.fromisoformat(payload["measured_at"]).tzinfo is not None
    assert payload["command"].startswith("python ")


def test_results_name_the_cpu_and_the_numeric_libraries_they_ran_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An MLP fit's figures differ between CPUs (docs/benchmarks.md, "Why the shipped figures
    moved"): a results file says which CPU and library versions produced it."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from importlib import metadata

    from _results import write_results

    machine = json.loads(write_results("x", {"a": 1.0}, tmp_path / "x.json").read_text())["machine"]
    assert machine["cpu"]["model"]
    assert all(f.startswith(("avx", "amx")) for f in machine["cpu"]["vector_extensions"])
    assert machine["libraries"]["numpy"] == metadata.version("numpy")
    assert machine["libraries"]["torch"] == metadata.version("torch")


def _make_bench_commands() -> dict[str, list[str]]:
    """Script name -> the arguments `make bench` runs it with (a dry run)."""
    dry = subprocess.run(
        ["make", "-n", "bench", "STAMP="],  # no set-up prerequisite in the dry run
        cwd=BENCHMARKS.parent,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    commands = {}
    for line in dry.splitlines():
        words = shlex.split(line)
        if len(words) >= 2 and words[1].startswith("benchmarks/bench_"):
            commands[Path(words[1]).stem] = words[2:]
    return commands


def _needs_arguments(script: Path) -> bool:
    """Whether the script's parser declares an argument it cannot run without."""
    source = script.read_text()
    return (
        "required=True" in source
        or re.search(r'add_argument\("\w+".*nargs="\+"', source) is not None
    )


def test_make_bench_runs_every_benchmark_that_needs_no_input_in_short_form() -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    commands = _make_bench_commands()
    scripts = {path.stem: path for path in BENCHMARKS.glob("bench_*.py")}
    left_out = set(scripts) - set(commands)
    assert left_out == {
        "bench_model_cost",
        "bench_reason_codes",
        "bench_train_stream",
        "bench_surge",
    }
    for name, arguments in commands.items():  # no run stops `make bench` for a missing input
        assert arguments or not _needs_arguments(scripts[name]), name
    # the A/Bs of this tree against itself: ~15 min each on their defaults
    assert commands["bench_api_ab"] == ["--pairs", "2", "--duration", "5"]
    assert commands["bench_api_instructions"] == ["--warmup-batches", "10", "--batches", "20"]
    assert commands["bench_pg_trees"] == ["this=."]  # with no tree it measures nothing


@pytest.mark.parametrize("name", ["bench_api_ab", "bench_api_instructions", "bench_pg_trees"])
def test_make_bench_arguments_are_accepted(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    monkeypatch.setattr(sys, "argv", [name, *_make_bench_commands()[name]])
    importlib.import_module(name).parse_args()  # argparse exits on an unknown flag


@pytest.mark.parametrize("script", sorted(BENCHMARKS.glob("*.py")), ids=lambda p: p.name)
def test_benchmarks_use_the_projects_logging_and_configuration_path(script: Path) -> None:
    source = script.read_text()
    assert "logging.basicConfig" not in source  # vigil.logs.configure_logging
    assert '"configs/vigil.yaml"' not in source  # vigil.config.DEFAULT_CONFIG_PATH


def test_bench_instrumentation_prints_each_cost_and_removes_its_hook(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    monkeypatch.setattr(sys, "argv", ["bench_instrumentation", "--number", "50", "--repeats", "1"])
    callbacks = list(gc.callbacks)
    from bench_instrumentation import main

    main()

    headline = capsys.readouterr().out.splitlines()[-1]
    assert re.match(
        r"GcPauses hook -?[\d.]+ us per collection; loop-lag histogram [\d.]+ us", headline
    )
    assert gc.callbacks == callbacks
