"""Benchmark entry points: run from anywhere on the project's logging and configuration."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from onnx_factory import logistic_model, make_metadata, save
from vigil.config import load_settings
from vigil.features.definitions import feature_names
from vigil.logs import PLAIN_FORMAT

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """The root and ``vigil`` loggers as they were: a benchmark's main configures them."""
    root, vigil = logging.getLogger(), logging.getLogger("vigil")
    handlers, level, vigil_level = root.handlers[:], root.level, vigil.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    vigil.setLevel(vigil_level)


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
