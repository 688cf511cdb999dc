"""Drift without a full retrain: warm-start adaptation vs full retrain vs doing nothing.

    .venv/bin/python benchmarks/bench_drift_adapt.py                 # 3 scenarios, ~10 min
    .venv/bin/python benchmarks/bench_drift_adapt.py --scenarios amount_inflation --kinds lightgbm

For each drift scenario of the simulator (``vigil.data.drift_scenarios``) a world drifts from
``--drift-day``. The champion was trained on the six weeks before the drift. Two weeks after
it, the labels of those two weeks are known (the test week starts after the label delay) and
three answers are compared on the following test week:

- **nothing**: the champion as it is;
- **adapt**: warm start on the two recent labelled weeks only: LightGBM adds trees to the
  champion's (``init_model``), the MLP continues training from the champion's weights and
  scaler, a few epochs;
- **retrain**: a new model from scratch on the six weeks ending with the recent two.

Figures: AP and card precision@100 on the test week, and the CPU seconds of the fit.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from vigil.config import DataConfig, DriftConfig, FeaturesConfig, ModelConfig, TrainConfig
from vigil.data import schema
from vigil.data.simulate import simulate_transactions
from vigil.features.definitions import feature_names
from vigil.features.offline import compute_features_frame
from vigil.fraud_metrics import average_precision, card_precision_at_k
from vigil.models.baselines import fit_lightgbm
from vigil.training.trainer import Dataset, train_mlp

SCENARIOS = ("amount_inflation", "customer_shift", "new_fraud_pattern")
FIT_WEEKS, RECENT_DAYS, DELAY_DAYS, TEST_DAYS = 6, 14, 7, 7


@dataclass(frozen=True)
class Periods:
    """Day ranges ``[start, end)`` of the comparison, from the drift day."""

    champion: tuple[int, int]
    recent: tuple[int, int]
    retrain: tuple[int, int]
    test: tuple[int, int]

    @classmethod
    def around(cls, drift_day: int) -> Periods:
        recent_end = drift_day + RECENT_DAYS
        test_start = recent_end + DELAY_DAYS
        return cls(
            champion=(drift_day - 7 * FIT_WEEKS, drift_day),
            recent=(drift_day, recent_end),
            retrain=(recent_end - 7 * FIT_WEEKS, recent_end),
            test=(test_start, test_start + TEST_DAYS),
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    parser.add_argument("--kinds", nargs="+", default=["lightgbm", "mlp"])
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--terminals", type=int, default=6000)
    parser.add_argument("--drift-day", type=int, default=80)
    parser.add_argument("--strength", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--adapt-trees", type=int, default=100)
    parser.add_argument("--adapt-epochs", type=int, default=5)
    return parser.parse_args()


def world(args: argparse.Namespace, scenario: str) -> pd.DataFrame:
    """A drifting world's transactions with features."""
    periods = Periods.around(args.drift_day)
    config = DataConfig(
        n_customers=args.customers,
        n_terminals=args.terminals,
        n_days=periods.test[1] + 1,
        seed=args.seed,
        drift=DriftConfig(scenario=scenario, start_day=args.drift_day, strength=args.strength),
    )
    frame = compute_features_frame(FeaturesConfig(), simulate_transactions(config))
    start = frame[schema.TX_DATETIME].min().normalize()
    frame["day"] = (frame[schema.TX_DATETIME] - start).dt.days
    return frame


def dataset(frame: pd.DataFrame, days: tuple[int, int]) -> Dataset:
    rows = frame[(frame["day"] >= days[0]) & (frame["day"] < days[1])]
    features = np.ascontiguousarray(rows[feature_names(FeaturesConfig())].to_numpy(np.float32))
    return Dataset(features, rows[schema.TX_FRAUD].to_numpy(dtype=np.int8))


def split_last_day(frame: pd.DataFrame, days: tuple[int, int]) -> tuple[Dataset, Dataset]:
    """Fitting rows and the period's last day as early-stopping validation."""
    return dataset(frame, (days[0], days[1] - 1)), dataset(frame, (days[1] - 1, days[1]))


def timed(fit: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """``fit(*args)`` and its CPU seconds."""
    started = time.process_time()
    model = fit(*args)
    return model, time.process_time() - started


def fitters(args: argparse.Namespace, kind: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """(fit from scratch, warm start from a champion) for one model kind."""
    model_config, train_config = ModelConfig(), TrainConfig()
    if kind == "lightgbm":

        def scratch(train: Dataset, valid: Dataset) -> Any:
            pair = (valid.features, valid.labels)
            return fit_lightgbm(train.features, train.labels, pair, model_config, True, 0)

        def adapt(champion: Any, train: Dataset, valid: Dataset) -> Any:
            extra = model_config.model_copy(
                update={"lightgbm": model_config.lightgbm.model_copy(
                    update={"n_estimators": args.adapt_trees}
                )}
            )  # fmt: skip
            pair = (valid.features, valid.labels)
            return fit_lightgbm(
                train.features, train.labels, pair, extra, True, 0, init_model=champion
            )

        return scratch, adapt

    def mlp_scratch(train: Dataset, valid: Dataset) -> Any:
        return train_mlp(train, valid, model_config, train_config)[0]

    def mlp_adapt(champion: Any, train: Dataset, valid: Dataset) -> Any:
        short = train_config.model_copy(update={"epochs": args.adapt_epochs})
        return train_mlp(train, valid, model_config, short, initial=champion)[0]

    return mlp_scratch, mlp_adapt


def scores(model: Any, data: Dataset) -> np.ndarray:
    if hasattr(model, "predict_proba") and not hasattr(model, "booster_"):
        return np.asarray(model.predict_proba(data.features))
    return np.asarray(model.predict_proba(data.features)[:, 1])


def evaluate(model: Any, frame: pd.DataFrame, days: tuple[int, int]) -> tuple[float, float]:
    rows = frame[(frame["day"] >= days[0]) & (frame["day"] < days[1])]
    data = dataset(frame, days)
    score = scores(model, data)
    ap = average_precision(data.labels, score)
    cp = card_precision_at_k(rows["day"], rows[schema.CUSTOMER_ID], data.labels, score, 100)
    return ap, cp


def main() -> None:
    args = parse_args()
    periods = Periods.around(args.drift_day)
    lines = []
    for scenario in args.scenarios:
        frame = world(args, scenario)
        for kind in args.kinds:
            scratch, adapt = fitters(args, kind)
            champion, champion_cpu = timed(scratch, *split_last_day(frame, periods.champion))
            adapted, adapt_cpu = timed(adapt, champion, *split_last_day(frame, periods.recent))
            fresh, retrain_cpu = timed(scratch, *split_last_day(frame, periods.retrain))
            for name, model, cpu in (
                ("nothing", champion, 0.0),
                ("adapt", adapted, adapt_cpu),
                ("retrain", fresh, retrain_cpu),
            ):
                ap, cp = evaluate(model, frame, periods.test)
                line = (
                    f"{scenario:18s} {kind:8s} {name:8s} test AP {ap:.3f}  CP@100 {cp:.3f}  "
                    f"fit CPU {cpu:6.1f} s"
                )
                print(line, flush=True)
                lines.append(line)
            print(f"{scenario:18s} {kind:8s} (champion's own fit: {champion_cpu:.1f} s CPU)")
    print(f"drift adaptation: {len(lines)} rows above; periods {periods}")


if __name__ == "__main__":
    main()
