"""The default against the handbook's references (``vigil.training.robustness``), tiny world."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from vigil.config import Settings
from vigil.data import schema
from vigil.data.simulate import simulate_transactions
from vigil.features.offline import compute_features_frame
from vigil.training.data import feature_matrix
from vigil.training.robustness import (
    DEFAULT,
    FITTERS,
    HANDBOOK,
    HANDBOOK_15,
    MODELS,
    PROTOCOLS,
    REFERENCES,
    Fitter,
    Scorer,
    WeekResult,
    at_train_start,
    evaluate_week,
    format_table,
    needed_window,
    reference_settings,
    scored_week,
)
from vigil.training.splits import figures_on_test_set, handbook_split
from vigil.training.trainer import Dataset

WEEKS = [date(2018, 4, 25), date(2018, 5, 2)]


@pytest.fixture
def world(small_settings: Settings) -> tuple[Settings, pd.DataFrame]:
    settings = small_settings.model_copy(
        update={"train": small_settings.train.model_copy(update={"history_days": 7})}
    )
    raw = simulate_transactions(settings.data)
    first, end = needed_window(settings, WEEKS)
    times = raw[schema.TX_DATETIME]
    needed = raw[(times >= first) & (times < end)].reset_index(drop=True)
    return settings, compute_features_frame(settings.features, needed)


class Recorder:
    """Wraps the real fitters, keeping the rows each model was fitted on and scored."""

    def __init__(self) -> None:
        self.fitted: dict[str, Dataset] = {}
        self.validated: dict[str, Dataset] = {}
        self.scored: dict[str, np.ndarray] = {}
        self.scores: dict[str, np.ndarray] = {}

    def wrap(self, name: str, fit: Fitter) -> Fitter:
        def recorded(settings: Settings, train: Dataset, validation: Dataset) -> Scorer:
            self.fitted[name], self.validated[name] = train, validation
            scorer = fit(settings, train, validation)

            def score(features: np.ndarray) -> np.ndarray:
                self.scored[name] = features
                self.scores[name] = scorer(features)
                return self.scores[name]

            return score

        return recorded


def test_every_model_fits_the_same_rows_and_is_measured_on_the_test_week_only(
    world: tuple[Settings, pd.DataFrame],
) -> None:
    settings, features = world
    recorder = Recorder()
    fitters = {name: recorder.wrap(name, fit) for name, fit in FITTERS.items()}
    result = evaluate_week(settings, features, 7, WEEKS[0], fitters)

    split = handbook_split(features, at_train_start(settings, WEEKS[0]).train)
    expected_train = feature_matrix(split.train, settings)
    expected_test = feature_matrix(split.test, settings)
    assert set(recorder.fitted) == set(MODELS)
    for name in MODELS:
        np.testing.assert_array_equal(recorder.fitted[name].features, expected_train)
        np.testing.assert_array_equal(
            recorder.fitted[name].labels, split.train[schema.TX_FRAUD].to_numpy()
        )
        np.testing.assert_array_equal(recorder.scored[name], expected_test)
    # fitting rows end before the validation day; the scored rows are the test week's only
    first_test, last_test = scored_week(settings, WEEKS[0])
    assert (first_test, last_test) == (date(2018, 5, 16), date(2018, 5, 22))
    assert split.train[schema.TX_DATETIME].max() < pd.Timestamp(split.periods.validation_start)
    test_days = split.test[schema.TX_DATETIME].dt.date
    assert test_days.min() == first_test and test_days.max() == last_test
    assert result.train_rows == len(split.train)
    assert (
        result.test_rows
        == len(split.test)
        < (features[schema.TX_DATETIME].dt.date >= first_test).sum()
    )
    assert result.test_frauds == int(split.test[schema.TX_FRAUD].sum()) > 0
    # the figures are those of the recorded test scores, recomputed from the test rows alone
    for name in MODELS:
        figures = figures_on_test_set(split, recorder.scores[name], settings.train.top_k_cards)
        assert result.figures[name] == pytest.approx(figures)
        assert 0 < figures["average_precision"] <= 1


@pytest.mark.parametrize(("protocol", "reference_columns"), [(HANDBOOK, 24), (HANDBOOK_15, 15)])
def test_the_handbook_protocol_fits_the_references_on_the_training_week_only(
    world: tuple[Settings, pd.DataFrame], protocol: str, reference_columns: int
) -> None:
    """``--protocol handbook``: the references see the 7 training days (validation day
    included, no history days), the default still its history + training days; same test set.
    ``handbook-15``: the same rows, the handbook's 15 features for the references."""
    settings, features = world
    recorder = Recorder()
    fitters = {name: recorder.wrap(name, fit) for name, fit in FITTERS.items()}
    result = evaluate_week(settings, features, 7, WEEKS[0], fitters, protocol=protocol)
    reference = reference_settings(settings, protocol)

    week_settings = at_train_start(settings, WEEKS[0])
    split = handbook_split(features, week_settings.train)
    days = features[schema.TX_DATETIME].dt.date
    start = split.periods.train_start
    training_week = features[(days >= start) & (days < split.periods.delay_start)]
    assert training_week[schema.TX_DATETIME].dt.date.nunique() == settings.train.train_days
    np.testing.assert_array_equal(
        recorder.fitted[DEFAULT].features, feature_matrix(split.train, settings)
    )
    assert recorder.fitted[DEFAULT].features.shape[1] == 24
    for name in REFERENCES:
        np.testing.assert_array_equal(
            recorder.fitted[name].features, feature_matrix(training_week, reference)
        )
        assert recorder.fitted[name].features.shape[1] == reference_columns
        np.testing.assert_array_equal(
            recorder.fitted[name].labels, training_week[schema.TX_FRAUD].to_numpy()
        )
        np.testing.assert_array_equal(recorder.scored[name], feature_matrix(split.test, reference))
        # a fitter's validation rows have its training rows' features (none reads them yet)
        np.testing.assert_array_equal(
            recorder.validated[name].features, feature_matrix(split.validation, reference)
        )
    np.testing.assert_array_equal(recorder.scored[DEFAULT], feature_matrix(split.test, settings))
    assert result.protocol == protocol
    assert result.reference_train_rows == len(training_week) != result.train_rows
    assert result.as_dict()["reference_train_rows"] == len(training_week)


def week(seed: int, ap: tuple[float, float, float], cp: tuple[float, float, float]) -> WeekResult:
    figures = {
        name: {"average_precision": a, "card_precision_at_k": c}
        for name, a, c in zip(MODELS, ap, cp, strict=True)
    }
    return WeekResult(seed, WEEKS[0], date(2018, 5, 16), 10, 5, 1, figures, {})


@pytest.mark.parametrize(
    ("ap", "cp", "ap_lead", "cp_lead", "meets"),
    [
        ((0.70, 0.66, 0.60), (0.30, 0.29, 0.30), 0.04, 0.0, True),
        ((0.70, 0.68, 0.60), (0.30, 0.29, 0.28), 0.02, 0.01, False),  # AP lead too small
        ((0.70, 0.60, 0.66), (0.297, 0.30, 0.28), 0.04, -0.003, False),  # trails on CP@100
    ],
)
def test_the_lead_is_over_the_best_reference(
    ap: tuple[float, float, float],
    cp: tuple[float, float, float],
    ap_lead: float,
    cp_lead: float,
    meets: bool,
) -> None:
    result = week(1, ap, cp)
    assert result.lead("average_precision") == pytest.approx(ap_lead)
    assert result.lead("card_precision_at_k") == pytest.approx(cp_lead)
    assert result.meets_criterion is meets
    assert result.as_dict()["meets_criterion"] is meets


def test_the_table_has_a_row_per_world_and_week() -> None:
    results = [week(seed, (0.7, 0.6, 0.6), (0.3, 0.29, 0.28)) for seed in (1, 2, 3) for _ in WEEKS]
    lines = format_table(results).splitlines()
    assert len(lines) == 2 + len(results)
    assert all(line.count("|") == 13 for line in lines)
    assert lines[2].startswith("| 1 | 2018-05-16 | 5 (1) | 0.700 | 0.600 | 0.600 | 0.300 |")


def test_the_reference_cache_key_changes_with_the_simulated_world(
    small_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The references' cached figures are reused only for the same world: a world simulated
    with another radius, start date or drift must not get the figures of the default one."""
    import argparse
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from bench_robustness import _reference_key

    args = argparse.Namespace(customers=50, terminals=100, days=60, protocol="strict")

    def key(**data: object) -> str:
        world = small_settings.data.model_copy(update=data)
        return _reference_key(args, small_settings.model_copy(update={"data": world}), 1, WEEKS[0])

    assert key() == key(raw_dir=Path("elsewhere"))  # where the raw data goes: same world
    drift = small_settings.data.drift.model_copy(update={"scenario": "amount_inflation"})
    other_worlds = [
        key(radius=2 * small_settings.data.radius),
        key(start_date=date(2018, 1, 1)),
        key(drift=drift),
    ]
    assert all(other != key() for other in other_worlds)
    strict = key()
    args.protocol = "handbook"  # the references are fitted on other rows: another entry
    assert key() != strict
    # handbook: the references never see the history days, so trying the default's history
    # reuses them; strict: the references are fitted on the default's rows, so it must not
    longer = small_settings.train.model_copy(update={"history_days": 63})
    with_history = small_settings.model_copy(update={"train": longer})
    assert _reference_key(args, with_history, 1, WEEKS[0]) == key()
    args.protocol = "strict"
    assert _reference_key(args, with_history, 1, WEEKS[0]) != strict


@pytest.fixture
def bench_robustness(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``benchmarks/bench_robustness.py`` as a module."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import bench_robustness

    return bench_robustness


TINY_RUN = [
    "benchmarks/bench_robustness.py",
    "--customers", "100", "--terminals", "200", "--days", "60", "--seeds", "1",
    "--weeks", WEEKS[0].isoformat(), "--set", "train.history_days=7", "--set", "train.epochs=1",
]  # fmt: skip


def test_a_default_only_run_writes_its_own_file_unless_told(bench_robustness: Any) -> None:
    path = bench_robustness.results_path
    parse = bench_robustness.parse_args
    full = {path(parse(["--protocol", protocol])) for protocol in PROTOCOLS}
    default_only = path(parse(["--default-only"]))
    assert default_only.name == "robustness_default_only.json" and default_only not in full
    assert path(parse(["--default-only", "--results", "x.json"])) == Path("x.json")
    with pytest.raises(SystemExit):  # the default's fit has no protocol: only the references'
        parse(["--default-only", "--protocol", HANDBOOK])
    with pytest.raises(SystemExit):  # a full run fits its own references
        parse(["--references", "robustness.json"])


@pytest.mark.usefixtures("restored_logging")
def test_a_default_only_run_writes_its_results_and_the_leads_over_a_full_runs_references(
    bench_robustness: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--default-only`` writes as the full run does (ISO time, command, the weeks); with
    ``--references`` the leads over that run's references, refused for other rows."""
    monkeypatch.chdir(tmp_path)  # the reference cache is not read, nor written

    def run(*argv: str) -> None:
        monkeypatch.setattr(sys, "argv", list(argv))
        bench_robustness.main()

    alone = tmp_path / "alone.json"
    run(*TINY_RUN, "--default-only", "--results", str(alone))
    payload = json.loads(alone.read_text())
    assert datetime.fromisoformat(payload["measured_at"]).tzinfo is not None
    assert payload["command"] == " ".join(
        ["python", *TINY_RUN, "--default-only", "--results", str(alone)]
    )
    assert payload["default_only"] is True and payload["protocol"] is None
    (week,) = payload["weeks"]
    assert set(week["figures"]) == {DEFAULT} and "ap_lead" not in week
    ap = week["figures"][DEFAULT]["average_precision"]
    assert payload["figures"]["mean_ap"] == pytest.approx(ap, abs=1e-3)
    assert payload["figures"]["world_weeks"] == 1 and "min_ap_lead" not in payload["figures"]
    assert not (tmp_path / "data").exists()

    # a full run's results for the same world-week: the references' figures and seconds
    full_run = {
        "measured_at": "2026-12-06T01:13:25+00:00",
        "command": "python benchmarks/bench_robustness.py",
        "protocol": "strict",
        "weeks": [week | {
            "figures": {"default": {"average_precision": 0.5, "card_precision_at_k": 0.5},
                        "random_forest": {"average_precision": ap - 0.02,
                                          "card_precision_at_k": 0.01},
                        "logistic_regression": {"average_precision": ap - 0.05,
                                                "card_precision_at_k": 0.0}},
            "seconds": {"random_forest": 9.0, "logistic_regression": 1.0},
        }],
    }  # fmt: skip
    references = tmp_path / "full.json"
    references.write_text(json.dumps(full_run))
    led = tmp_path / "led.json"
    run(*TINY_RUN, "--default-only", "--references", str(references), "--results", str(led))
    payload = json.loads(led.read_text())
    (week,) = payload["weeks"]
    assert week["figures"][DEFAULT]["average_precision"] == ap  # the default's own figure
    assert week["ap_lead"] == pytest.approx(0.02, abs=1e-4) and week["meets_criterion"] is False
    assert payload["figures"]["min_ap_lead"] == pytest.approx(0.02, abs=1e-3)
    assert payload["protocol"] == "strict"
    assert payload["references"] == {
        "path": str(references),
        "measured_at": full_run["measured_at"],
        "command": full_run["command"],
    }

    full_run["weeks"][0]["train_rows"] += 1  # another history: leads would mean nothing
    references.write_text(json.dumps(full_run))
    with pytest.raises(ValueError, match="not the same rows"):
        run(*TINY_RUN, "--default-only", "--references", str(references), "--results", "no.json")
    assert not (tmp_path / "no.json").exists()
