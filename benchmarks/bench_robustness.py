"""The shipped default against the handbook's random forest and logistic regression, on
simulated worlds the default was never tuned on (issue 17, item 7).

    .venv/bin/python benchmarks/bench_robustness.py                       # seeds 1,2,3, 2 weeks
    .venv/bin/python benchmarks/bench_robustness.py --seeds 1 --weeks 2018-07-25
    .venv/bin/python benchmarks/bench_robustness.py --shift-days -7       # the weeks before:
                                                                          # for choosing settings
    .venv/bin/python benchmarks/bench_robustness.py --protocol handbook   # references on the
                                                                          # 7 training days only

Each world is the handbook's simulator (5,000 customers, 10,000 terminals, 183 days from
2018-04-01, r = 5) under one seed; each week is the handbook protocol laid out from a training
start (``train.*`` of the configuration: history, training days, validation day, 7-day delay,
7-day test week). The default is fitted as shipped; the references (``--protocol``) either on
exactly the default's fitting rows (``strict``, the default) or on the handbook's chapter-3
training week only (``handbook``: 7 days, no history), with the same features, or with the
handbook's 15 features (``handbook-15``: chapter 3 as published); all are scored on the same
test set (``vigil.training.robustness``). Results go to ``docs/results/robustness.json``
(strict) or ``robustness_<protocol>.json``; with ``--default-only`` (the default fitted alone,
e.g. to try a setting) to ``robustness_default_only.json``, with the leads over the references
of a full run's results file when ``--references`` names one. The
references' figures are cached (``--reference-cache``): they do not depend on the default's
model settings, so trying a setting fits only the default. ``--shift-days -7`` moves every
training start a week back, so that settings are chosen on the week before each test week,
never on the test week. Prints the table, then the headline (the smallest AP and CP@100
leads) last.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from _results import default_path, write_results
from vigil.config import DEFAULT_CONFIG_PATH, Settings, load_settings
from vigil.data import schema
from vigil.data.simulate import simulate_transactions
from vigil.features.offline import compute_features_frame
from vigil.logs import configure_logging
from vigil.training.robustness import (
    DEFAULT,
    FITTERS,
    PROTOCOLS,
    REFERENCES,
    STRICT,
    WeekResult,
    evaluate_week,
    format_table,
    needed_window,
    reference_settings,
)

# Two test weeks four weeks apart: the handbook's chapter-3 week (test 2018-08-08..14) and
# one in the world's later part (test 2018-09-12..18).
DEFAULT_WEEKS = "2018-07-25,2018-08-29"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH)
    parser.add_argument("--seeds", default="1,2,3", help="world seeds (data.seed; 0 is tuned)")
    parser.add_argument("--weeks", default=DEFAULT_WEEKS, help="training starts, comma-separated")
    parser.add_argument("--shift-days", type=int, default=0, help="move every training start")
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--terminals", type=int, default=10000)
    parser.add_argument("--days", type=int, default=183)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default=STRICT,
        help="references on the default's rows (strict) or the 7 training days (handbook[-15])",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="default: docs/results/robustness.json (strict), robustness_<protocol>.json; "
        "robustness_default_only.json with --default-only",
    )
    parser.add_argument(
        "--default-only",
        action="store_true",
        help="fit only the default (choosing its settings on the weeks before: --shift-days -7)",
    )
    parser.add_argument(
        "--references",
        type=Path,
        default=None,
        help="with --default-only: a full run's results (e.g. docs/results/robustness.json) "
        "whose references' figures give the leads; its weeks must have the same rows",
    )
    parser.add_argument(
        "--reference-cache",
        type=Path,
        default=Path("data/robustness-references.json"),
        help="the references' figures per world and week (they do not depend on the default)",
    )
    args = parser.parse_args(argv)
    if args.default_only and args.protocol != STRICT:
        parser.error("--default-only fits no reference: --protocol does not apply to it")
    if args.references is not None and not args.default_only:
        parser.error("--references needs --default-only (a full run fits its own references)")
    return args


def results_path(args: argparse.Namespace) -> Path:
    """Where the run writes unless ``--results`` says: a full run's file per protocol, and a
    default-only run's own file, so that it never overwrites a full run's."""
    if args.results is not None:
        return Path(args.results)
    if args.default_only:
        return default_path("robustness_default_only")
    suffix = "" if args.protocol == STRICT else "_" + args.protocol.replace("-", "_")
    return default_path(f"robustness{suffix}")


def main() -> None:
    args = parse_args()
    args.results = results_path(args)
    reference_run = None if args.references is None else json.loads(args.references.read_text())
    configure_logging()
    logging.getLogger("vigil").setLevel(logging.WARNING)
    settings = load_settings(args.config, args.overrides, environ=os.environ)
    shift = timedelta(days=args.shift_days)
    weeks = [date.fromisoformat(day) + shift for day in args.weeks.split(",")]
    seeds = [int(seed) for seed in args.seeds.split(",")]
    started = time.perf_counter()
    results: list[WeekResult] = []
    model = settings.model.model_dump(mode="json")
    models = 1 if args.default_only else len(FITTERS)
    steps = len(seeds) * (1 + len(weeks) * models)
    with tqdm(total=steps, desc="robustness", unit="step") as bar:
        for seed in seeds:
            data = settings.data.model_copy(
                update={
                    "seed": seed,
                    "n_customers": args.customers,
                    "n_terminals": args.terminals,
                    "n_days": args.days,
                }
            )
            bar.set_postfix_str(f"world {seed}: simulate + features")
            raw = simulate_transactions(data)
            first, end = needed_window(settings, weeks)
            times = raw[schema.TX_DATETIME]
            needed = raw[(times >= first) & (times < end)].reset_index(drop=True)
            features = compute_features_frame(settings.features, needed)
            bar.update()
            for week in weeks:
                bar.set_postfix_str(f"world {seed}, week {week}")
                result = _evaluate(args, settings, features, seed, week, bar)
                if reference_run is not None:
                    result = with_references(result, reference_run, args.references)
                results.append(result)
                _write(args, model, results, started, reference_run)
    if not all(r.has_references for r in results):
        _print_default(results, started)
        return
    print(f"protocol: {results[0].protocol}")
    print(format_table(results))
    print(f"wall time: {time.perf_counter() - started:.0f} s")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ap_lead = min(r.lead("average_precision") for r in results)
    cp_lead = min(r.lead("card_precision_at_k") for r in results)
    met = sum(r.meets_criterion for r in results)
    print(
        f"default's smallest lead over the references: AP {ap_lead:+.3f}, CP@100 {cp_lead:+.3f} "
        f"({met} of {len(results)} world-weeks meet AP lead >= 0.03 and CP@100 lead >= 0)"
    )


def with_references(result: WeekResult, run: dict[str, Any], source: Path) -> WeekResult:
    """``result`` with the references' figures of the same world-week in a full run's results
    (``run``, read from ``source``); refused unless that week was fitted and tested on as many
    rows and frauds (another history or period would make the leads meaningless)."""
    week = next(
        (
            w
            for w in run["weeks"]
            if w["world_seed"] == result.world_seed
            and w["train_start"] == result.train_start.isoformat()
        ),
        None,
    )
    if week is None:
        raise ValueError(f"{source} has no world {result.world_seed}, week {result.train_start}")
    theirs = (week["train_rows"], week["test_rows"], week["test_frauds"])
    ours = (result.train_rows, result.test_rows, result.test_frauds)
    if theirs != ours:
        raise ValueError(
            f"{source}, world {result.world_seed}, week {result.train_start}: train rows, test "
            f"rows and test frauds {theirs}, here {ours}: not the same rows"
        )
    return replace(
        result,
        figures={**result.figures, **{name: week["figures"][name] for name in REFERENCES}},
        seconds={**result.seconds, **{name: week["seconds"][name] for name in REFERENCES}},
        protocol=run.get("protocol", STRICT),
        reference_train_rows=week.get("reference_train_rows"),
    )


def _print_default(results: list[WeekResult], started: float) -> None:
    """The default's figures per world-week and their means (no references fitted)."""
    for r in results:
        figures = r.figures[DEFAULT]
        print(
            f"world {r.world_seed}, test {r.test_start}: AP {figures['average_precision']:.4f}, "
            f"CP@100 {figures['card_precision_at_k']:.4f}, fit {r.seconds[DEFAULT]:.0f} s"
        )
    print(f"wall time: {time.perf_counter() - started:.0f} s")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ap, cp = default_means(results)
    print(f"default over {len(results)} world-weeks: mean AP {ap:.4f}, mean CP@100 {cp:.4f}")


def default_means(results: list[WeekResult]) -> tuple[float, float]:
    """The default's AP and CP@k, each averaged over the world-weeks."""
    ap = sum(r.figures[DEFAULT]["average_precision"] for r in results) / len(results)
    cp = sum(r.figures[DEFAULT]["card_precision_at_k"] for r in results) / len(results)
    return ap, cp


def _reference_key(args: argparse.Namespace, settings: Settings, seed: int, week: date) -> str:
    """What the references' figures depend on: the world, the week, the features, the rows
    (the protocol and the ``train`` periods).

    The world is every simulator setting: the seed and size given here, and the configured
    start date, radius and drift (``--set data.…`` changes the world, so it must miss the cache).
    """
    world = settings.data.model_dump(mode="json", include={"start_date", "radius", "drift"})
    periods = {"train_days", "delay_days", "test_days"}
    if args.protocol == STRICT:  # the references are fitted on the default's own fitting rows
        periods |= {"history_days", "validation_days"}
    train = settings.train.model_dump(mode="json", include=periods)
    return json.dumps(
        [
            args.protocol,
            seed,
            week.isoformat(),
            [args.customers, args.terminals, args.days],
            world,
            reference_settings(settings, args.protocol).features.model_dump(mode="json"),
            train,
            settings.train.top_k_cards,
            settings.train.seed,
        ],
        sort_keys=True,
    )


def _evaluate(
    args: argparse.Namespace,
    settings: Settings,
    features: pd.DataFrame,
    seed: int,
    week: date,
    bar: tqdm,
) -> WeekResult:
    """One world-week; the references' figures come from the cache when it has them."""
    if args.default_only:
        fit = {DEFAULT: FITTERS[DEFAULT]}
        return evaluate_week(settings, features, seed, week, fit, on_model=lambda _: bar.update())
    cache = json.loads(args.reference_cache.read_text()) if args.reference_cache.exists() else {}
    key = _reference_key(args, settings, seed, week)
    cached = cache.get(key)
    fitters = {DEFAULT: FITTERS[DEFAULT]} if cached else FITTERS
    if cached:
        bar.update(len(FITTERS) - 1)
    result = evaluate_week(
        settings,
        features,
        seed,
        week,
        fitters,
        on_model=lambda _: bar.update(),
        protocol=args.protocol,
    )
    if cached:
        return replace(
            result,
            figures={**result.figures, **cached["figures"]},
            seconds={**result.seconds, **cached["seconds"]},
        )
    cache[key] = {
        "figures": {name: result.figures[name] for name in REFERENCES},
        "seconds": {name: result.seconds[name] for name in REFERENCES},
        "reference_train_rows": result.reference_train_rows,
    }
    args.reference_cache.parent.mkdir(parents=True, exist_ok=True)
    args.reference_cache.write_text(json.dumps(cache, indent=1) + "\n")
    return result


def _write(
    args: argparse.Namespace,
    model: dict[str, object],
    results: list[WeekResult],
    started: float,
    reference_run: dict[str, Any] | None,
) -> None:
    """Headline figures and the whole table through ``write_results``: the default's means, and
    the leads when every world-week has the references' figures."""
    mean_ap, mean_cp = default_means(results)
    figures = {
        "mean_ap": mean_ap,
        "mean_cp": mean_cp,
        "world_weeks": len(results),
        "wall_seconds": time.perf_counter() - started,
    }
    with_leads = all(r.has_references for r in results)
    if with_leads:
        figures |= {
            "min_ap_lead": min(r.lead("average_precision") for r in results),
            "min_cp_lead": min(r.lead("card_precision_at_k") for r in results),
            "world_weeks_meeting_criterion": sum(r.meets_criterion for r in results),
        }
    details: dict[str, object] = {
        "default_only": args.default_only,
        "protocol": results[0].protocol if with_leads else None,
    }
    if reference_run is not None:
        details["references"] = {
            "path": str(args.references),
            "measured_at": reference_run["measured_at"],
            "command": reference_run["command"],
        }
    details |= {
        "model": model,
        "overrides": args.overrides,
        "weeks": [r.as_dict() for r in results],
    }
    write_results("robustness", figures, args.results, details)


if __name__ == "__main__":
    main()
