"""What the with-feedback protocol allows, and where a model's misses come from (issue 17).

    .venv/bin/python benchmarks/bench_feedback_bound.py         # the handbook week, seed 0
    .venv/bin/python benchmarks/bench_feedback_bound.py --experiments lightgbm --seed 2

For each experiment (one seed), the protocol of ``vigil evaluate --feedback --no-retrain``
(``vigil.feedback.evaluation``: the point-in-time model, its past deployment's verdict log,
the verdict-feature model) is replayed over the delay and test weeks under the same
investigator (``--cards-per-day``, daily rounds, ``--lookback-days``, terminal marks on) with
several scorers:

- ``<experiment>``: the verdict-feature model (the with-feedback figure of ``vigil evaluate``);
- ``<experiment> + explore``: its score plus ``--explore-weight`` x the exploration value
  (the transactions a review of the card would label: the day's and the look-back's without
  a verdict yet; no label used), a deployable try at discovering compromised terminals;
- ``<experiment> + terminal rule``: its score + 1 at a terminal with a fraud marked by a
  verdict or delayed-labelled inside the 28 days before (deployable: no scenario used);
- ``oracle(<experiment>)``: the informed oracle (``vigil.feedback.bound``) — every fraud
  knowable from the protocol's information first, the model's scores for the rest;
- ``oracle(<experiment> point-in-time)``, ``oracle(zero, …)``, ``oracle(explore, …)``: the
  same with the point-in-time model's scores, 0 (ties by card number) or the exploration
  value for the rest.

Reviews follow each scorer's scores, so discovery of compromised terminals follows them too.
For each replay: CP@100 and AP on the test set; the test week's compromised card-days split
into found and missed, the missed ones by scenario and by whether the fraud was knowable
(missed knowable = ranking loss, a model could fix it; missed unknowable = discovery loss);
the week's compromised terminals: how many were marked, how many days after their first
fraud, how many before their delayed label and of those how many through a card reviewed
for a knowable fraud. The perfect score (true labels as scores) is the check. Results go to
``docs/results/feedback_bound.json``; prints the table, then the bound last.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from _results import default_path, write_results  # benchmarks/ is the script's folder
from vigil.config import DEFAULT_CONFIG_PATH
from vigil.data import schema
from vigil.features.verdicts import REVIEWED_AT, TERMINAL_COMPROMISED
from vigil.feedback.bound import (
    card_days,
    compromises,
    informed_oracle,
    knowledge,
    labelled_compromises,
    labelled_frauds,
    terminal_alerts,
)
from vigil.feedback.evaluation import (
    Deployment,
    Scorer,
    deploy,
    model_scorer,
    point_in_time_scores,
    replay_weeks,
)
from vigil.feedback.investigator import ReviewPolicy
from vigil.feedback.report import cached_feature_table
from vigil.logs import configure_logging
from vigil.training.experiments import experiment_files, experiment_settings
from vigil.training.splits import figures_on_test_set, handbook_split

HANDBOOK = Path(__file__).resolve().parents[2] / "shared/datasets/handbook"
DEFAULT_DATA = HANDBOOK / "transactions_2018-04-01_2018-08-14.parquet"


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="raw transactions")
    parser.add_argument("--experiments", default="lightgbm,mlp_small", help="comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cards-per-day", type=int, default=100)
    parser.add_argument("--lookback-days", type=int, default=7)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH)
    parser.add_argument("--experiments-dir", type=Path, default=Path("configs/experiments"))
    parser.add_argument("--cache-dir", type=Path, default=Path("data/feedback-cache"))
    parser.add_argument(
        "--explore-weight", type=float, default=0.05, help="of the model + explore replay"
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--results", type=Path, default=default_path("feedback_bound"))
    return parser.parse_args()


def _zero(rows: pd.DataFrame, _log: pd.DataFrame) -> np.ndarray:
    return np.zeros(len(rows))


def _fixed(scores: pd.Series) -> Scorer:
    return lambda rows, _log: scores.loc[rows.index].to_numpy()


def _explorer(frame: pd.DataFrame, policy: ReviewPolicy) -> Scorer:
    """A card's transactions a review would label (the round's and the look-back's without
    a verdict yet), scaled into [0, 1): what a review of the card can reveal."""
    times, ids = frame[schema.TX_DATETIME], frame[schema.TRANSACTION_ID]
    span = pd.Timedelta(hours=policy.every_hours) - pd.Timedelta(days=policy.lookback_days)

    def score(rows: pd.DataFrame, log: pd.DataFrame) -> np.ndarray:
        start = rows[schema.TX_DATETIME].min().normalize()
        window = (times >= start + span) & (times < start) & ~ids.isin(log[schema.TRANSACTION_ID])
        before = frame.loc[window, schema.CUSTOMER_ID].value_counts()
        card = rows[schema.CUSTOMER_ID]
        value = card.map(before).fillna(0) + card.map(card.value_counts())
        return (value / (value.max() + 1)).to_numpy()

    return score


def _plus(model: Scorer, explore: Scorer, weight: float) -> Scorer:
    """The model's score plus ``weight`` x the exploration value: below the model's clear
    alerts, the cards whose review reveals most come first."""
    return lambda rows, log: model(rows, log) + weight * explore(rows, log)


def _with_alerts(model: Scorer, labelled: pd.DataFrame) -> Scorer:
    """The model's score, + 1 at a terminal with a recent marked or labelled fraud."""
    return lambda rows, log: model(rows, log) + terminal_alerts(rows, log, labelled)


def _replay(
    deployment: Deployment,
    frame: pd.DataFrame,
    policy: ReviewPolicy,
    scorer: Scorer,
    labelled: pd.DataFrame,
) -> dict[str, float]:
    """One replay's figures, test-week card-days and compromised terminals."""
    split, k = deployment.split, deployment.settings.train.top_k_cards
    delay = deployment.settings.features.label_delay_days
    weeks = replay_weeks(deployment, frame, policy, scorer)
    scores = weeks.test_week.scores.loc[split.test.index].to_numpy()
    figures = figures_on_test_set(split, scores, k)
    days = card_days(split.test, scores, weeks.state.log, labelled, k)
    missed = days[~days["found"]]
    s2 = missed[missed["scenario"] == 2]
    found_s2 = days[days["found"] & (days["scenario"] == 2)]
    test_start, test_end = (
        pd.Timestamp(d) for d in (split.periods.test_start, split.periods.test_end)
    )
    table = compromises(frame, weeks.state.log, delay)
    week = table[(table["last_fraud"] >= test_start) & (table["first_fraud"] < test_end)]
    marked = week[week["first_mark"] < test_end]
    to_mark = (marked["first_mark"] - marked["first_fraud"]) / pd.Timedelta(days=1)
    early = marked[marked["first_mark"] < marked["first_label"]]
    via_fraud = _marked_via_knowable_fraud(early, weeks.state.log, frame, labelled)
    known = week[["first_mark", "first_label"]].min(axis=1)
    to_known = (known - week["first_fraud"]) / pd.Timedelta(days=1)
    return {
        "cp_at_100": figures["card_precision_at_k"],
        "ap": figures["average_precision"],
        "card_days": len(days),
        "found": int(days["found"].sum()),
        "found_unknowable": int((days["found"] & ~days["knowable"]).sum()),
        "missed": len(missed),
        "missed_knowable": int(missed["knowable"].sum()),
        "missed_unknowable": int((~missed["knowable"]).sum()),
        "missed_s1": int((missed["scenario"] == 1).sum()),
        "missed_s3": int((missed["scenario"] == 3).sum()),
        "found_s2_marked": int((found_s2["marked"]).sum()),
        "found_s2_labelled_only": int((found_s2["labelled"] & ~found_s2["marked"]).sum()),
        "missed_s2": len(s2),
        "missed_s2_marked": int(s2["marked"].sum()),
        "missed_s2_labelled_only": int((s2["labelled"] & ~s2["marked"]).sum()),
        "missed_s2_unknown": int((~s2["marked"] & ~s2["labelled"]).sum()),
        "week_compromises": len(week),
        "week_compromises_marked": len(marked),
        "marked_before_label": len(early),
        "marked_before_label_via_knowable_fraud": via_fraud,
        "marked_before_test_week": int((week["first_mark"] < test_start).sum()),
        "days_to_mark_median": float(to_mark.median()) if len(to_mark) else float("nan"),
        "days_to_known_mean": float(to_known.mean()),
        "verdicts": len(weeks.state.log) - len(deployment.past.log),
    }


def _marked_via_knowable_fraud(
    early: pd.DataFrame, log: pd.DataFrame, frame: pd.DataFrame, labelled: pd.DataFrame
) -> int:
    """Of the compromises marked before their delayed label: those whose first marking
    review was of a card with a knowable fraud that round (found by exploiting what was
    known, the mark coming with the card's look-back), not of a card reviewed on its
    score alone (exploration)."""
    marks = log[log[TERMINAL_COMPROMISED] == 1]
    times, cards = frame[schema.TX_DATETIME], frame[schema.CUSTOMER_ID]
    count = 0
    for compromise in early.itertuples():
        first = marks[
            (marks[schema.TERMINAL_ID] == compromise.terminal_id)
            & (marks[REVIEWED_AT] == compromise.first_mark)
        ]
        day = frame[
            cards.isin(first[schema.CUSTOMER_ID]).to_numpy()
            & (times >= compromise.first_mark - pd.Timedelta(days=1)).to_numpy()
            & (times < compromise.first_mark).to_numpy()
        ]
        count += bool(knowledge(day, log, labelled).knowable.any())
    return count


COLUMNS = (
    ("CP@100", "cp_at_100", "{:.4f}"),
    ("AP", "ap", "{:.3f}"),
    ("card-days", "card_days", "{}"),
    ("found", "found", "{}"),
    ("missed", "missed", "{}"),
    ("ranking loss", "missed_knowable", "{}"),
    ("discovery loss", "missed_unknowable", "{}"),
    ("missed s1/s2/s3", "", ""),
    ("missed s2 marked/label/unknown", "", ""),
    ("terminals marked", "", ""),
    ("days to mark (median)", "days_to_mark_median", "{:.1f}"),
    ("days to known (mean)", "days_to_known_mean", "{:.2f}"),
    ("marked before label (via a knowable fraud)", "", ""),
)


def _row(name: str, f: dict[str, float]) -> str:
    cells = [name]
    for header, key, fmt in COLUMNS:
        if header.startswith("missed s1"):
            cells.append(f"{f['missed_s1']}/{f['missed_s2']}/{f['missed_s3']}")
        elif header.startswith("missed s2"):
            cells.append(
                f"{f['missed_s2_marked']}/{f['missed_s2_labelled_only']}/{f['missed_s2_unknown']}"
            )
        elif header.startswith("marked before label"):
            cells.append(
                f"{f['marked_before_label']} ({f['marked_before_label_via_knowable_fraud']})"
            )
        elif header == "terminals marked":
            cells.append(f"{f['week_compromises_marked']}/{f['week_compromises']}")
        else:
            cells.append(fmt.format(f[key]))
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    args = parse_args()
    configure_logging()
    logging.getLogger("vigil").setLevel(logging.WARNING)
    started = time.perf_counter()
    policy = ReviewPolicy(args.cards_per_day, 24, True, lookback_days=args.lookback_days)
    names = args.experiments.split(",")
    results: dict[str, dict[str, float]] = {}
    perfect = float("nan")
    for file in experiment_files(args.experiments_dir, names):
        settings = experiment_settings(
            args.config, file, [*args.overrides, f"train.seed={args.seed}"], environ=os.environ
        )
        name, k = file.stem, settings.train.top_k_cards
        frame = cached_feature_table(settings, args.data, args.cache_dir)
        split = handbook_split(frame, settings.train)
        labels = split.test[schema.TX_FRAUD].to_numpy(dtype=float)
        perfect = figures_on_test_set(split, labels, k)["card_precision_at_k"]
        base = point_in_time_scores(settings, frame, split)
        deployment = deploy(settings, frame, split, base, policy)
        labelled = labelled_compromises(frame, settings.features.label_delay_days)
        model = model_scorer(deployment.model, deployment.settings)
        explore = _explorer(frame, policy)
        all_frauds = labelled_frauds(frame, settings.features.label_delay_days)
        scorers: dict[str, Scorer] = {
            name: model,
            f"{name} + explore": _plus(model, explore, args.explore_weight),
            f"{name} + terminal rule": _with_alerts(model, all_frauds),
            f"oracle({name})": informed_oracle(labelled, model),
            f"oracle({name} point-in-time)": informed_oracle(labelled, _fixed(base)),
            f"oracle(zero, {name}'s past)": informed_oracle(labelled, _zero),
            f"oracle(explore, {name}'s past)": informed_oracle(labelled, explore),
        }
        for label, scorer in scorers.items():
            results[label] = _replay(deployment, frame, policy, scorer, labelled)
            print(_row(label, results[label]), flush=True)

    print(
        f"\nseed {args.seed}, {args.cards_per_day} cards a day, daily rounds, "
        f"look-back {args.lookback_days} days, terminal marks on"
    )
    print("| replay | " + " | ".join(h for h, _, _ in COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for label, figures in results.items():
        print(_row(label, figures))
    print(f"perfect scores (true labels) CP@100: {perfect:.4f}")
    print(f"wall time: {time.perf_counter() - started:.0f} s")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    flat = {f"{label}.{key}": value for label, f in results.items() for key, value in f.items()}
    write_results("feedback_bound", {**flat, "perfect.cp_at_100": perfect}, args.results)
    bounds = {label: f["cp_at_100"] for label, f in results.items() if label.startswith("oracle(")}
    best = max(bounds, key=bounds.__getitem__)
    print(
        f"informed-oracle bound, CP@100: {bounds[best]:.4f} ({best}; "
        + ", ".join(f"{label} {value:.4f}" for label, value in bounds.items() if label != best)
        + f"; perfect {perfect:.4f})"
    )


if __name__ == "__main__":
    main()
