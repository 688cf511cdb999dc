"""MLP training time on the handbook's chapter-3 training week (or any raw data).

    .venv/bin/python benchmarks/bench_train.py                 # handbook data, 30 epochs
    .venv/bin/python benchmarks/bench_train.py --data PATH --epochs 10 --set train.lr=0.003

Times only the fit (features are computed first, outside the timer); early stopping is
disabled so that every epoch runs. Prints the headline figure last.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import numpy as np

from vigil.config import DEFAULT_CONFIG_PATH, load_settings
from vigil.logs import configure_logging
from vigil.training.data import feature_matrix, load_feature_table
from vigil.training.splits import handbook_split
from vigil.training.trainer import Dataset, train_mlp

HANDBOOK = Path(__file__).resolve().parents[2] / "shared/datasets/handbook"
DEFAULT_DATA = HANDBOOK / "transactions_2018-04-01_2018-08-14.parquet"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="raw transactions")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    configure_logging()
    logging.getLogger("vigil").setLevel(logging.WARNING)
    overrides = [
        *args.overrides,
        f"train.epochs={args.epochs}",
        f"train.early_stopping_patience={args.epochs}",
    ]
    settings = load_settings(args.config, overrides, environ=os.environ)
    split = handbook_split(load_feature_table(settings, args.data).frame, settings.train)
    train, validation = (
        Dataset(feature_matrix(f, settings), f["tx_fraud"].to_numpy(np.int8))
        for f in (split.train, split.validation)
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    _, history = train_mlp(train, validation, settings.model, settings.train)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    row_epochs = len(train.labels) * len(history)
    print(f"torch threads: {__import__('torch').get_num_threads()}, rows: {len(train.labels)}")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"CPU time: {cpu_seconds:.1f} s ({cpu_seconds / row_epochs * 1e6:.2f} us per row-epoch)")
    print(
        f"MLP {settings.model.hidden_sizes} training: {seconds:.1f} s for {len(history)} epochs "
        f"({seconds / len(history):.2f} s/epoch, {row_epochs / seconds:,.0f} rows/s)"
    )


if __name__ == "__main__":
    main()
