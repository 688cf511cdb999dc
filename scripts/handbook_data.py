"""Build the handbook benchmark folder from the handbook's public raw data.

The sessions' machines have ``../shared/datasets/handbook`` already; a fresh CI runner (GitHub
Actions) builds the same layout from a clone of ``Fraud-Detection-Handbook/simulated-data-raw``:

    git clone --depth 1 https://github.com/Fraud-Detection-Handbook/simulated-data-raw /tmp/raw
    python scripts/handbook_data.py --raw /tmp/raw/data --out ../shared/datasets/handbook

Output: the first 136 days (2018-04-01..2018-08-14) as one Parquet file, integer-valued
``object`` columns stored as int64, and the first three daily pickles as published.
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

import pandas as pd

LAST_DAY = "2018-08-14"
PARQUET_NAME = "transactions_2018-04-01_2018-08-14.parquet"
INTEGER_COLUMNS = (
    "TRANSACTION_ID",
    "CUSTOMER_ID",
    "TERMINAL_ID",
    "TX_TIME_SECONDS",
    "TX_TIME_DAYS",
    "TX_FRAUD",
    "TX_FRAUD_SCENARIO",
)
log = logging.getLogger("handbook_data")


def build(raw: Path, out: Path) -> pd.DataFrame:
    """Concatenate the daily pickles up to ``LAST_DAY`` into ``out`` (pickles: trusted input)."""
    days = sorted(p for p in raw.glob("*.pkl") if p.stem <= LAST_DAY)
    if not days:
        raise SystemExit(f"no daily .pkl files in {raw}")
    frame = pd.concat([pd.read_pickle(day) for day in days], ignore_index=True)
    for column in INTEGER_COLUMNS:
        frame[column] = frame[column].astype("int64")
    (out / "daily_pkl").mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out / PARQUET_NAME, index=False)
    for day in days[:3]:
        shutil.copy2(day, out / "daily_pkl" / day.name)
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, required=True, help="folder of YYYY-MM-DD.pkl files")
    parser.add_argument("--out", type=Path, required=True, help="handbook folder to write")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    frame = build(args.raw, args.out)
    log.info(
        "wrote %s: %d transactions, fraud rate %.3f %%",
        args.out / PARQUET_NAME,
        len(frame),
        100 * frame["TX_FRAUD"].mean(),
    )


if __name__ == "__main__":
    main()
