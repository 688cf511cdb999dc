"""The demo's data split and its summary (``scripts/demo.sh``).

``split RAW DEMO_DIR``: the last week of RAW, labelled (Parquet, for the stream replay) and
without labels (CSV, for batch scoring). ``summary DEMO_DIR``: what the demo built, and the
average precision of the streamed decisions against the batch scores of the same
transactions; exits 1 when they differ by more than ``MAX_AP_GAP`` (online and offline
features must agree).
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pandas as pd
from sklearn.metrics import average_precision_score

from vigil.data.io import read_transactions

MAX_AP_GAP = 0.02
DATABASE = Path("data/vigil.db")
RUNS = Path("runs")


def split(raw: Path, demo: Path) -> None:
    """Write the last 7 days of ``raw`` with and without labels."""
    frame = read_transactions(raw)
    last_week = frame[frame["tx_datetime"] >= frame["tx_datetime"].max() - pd.Timedelta(days=7)]
    last_week.to_parquet(demo / "last_week_labelled.parquet", index=False)
    unlabelled = last_week.drop(columns=["tx_fraud", "tx_fraud_scenario"])
    unlabelled.to_csv(demo / "last_week.csv", index=False)
    print(f"last week: {len(last_week):,} transactions -> {demo}/last_week.csv")


def summary(demo: Path) -> int:
    """Print the demo's figures; 1 if the streamed and batch AP disagree."""
    quality = json.loads((demo / "quality.json").read_text())
    run_dir = sorted(RUNS.iterdir())[-1]
    test = json.loads((run_dir / "metrics.json").read_text())["test"]
    labels = pd.read_parquet(demo / "last_week_labelled.parquet")[["transaction_id", "tx_fraud"]]
    batch = pd.read_csv(demo / "scores.csv")
    with sqlite3.connect(DATABASE) as db:
        streamed = pd.read_sql("SELECT transaction_id, score FROM predictions", db)
    both = streamed.merge(batch, on="transaction_id", suffixes=("_stream", "_batch")).merge(
        labels, on="transaction_id"
    )
    ap_stream = average_precision_score(both["tx_fraud"], both["score_stream"])
    ap_batch = average_precision_score(both["tx_fraud"], both["score_batch"])
    gap = abs(ap_stream - ap_batch)
    print(f"data        {quality['rows']:,} transactions simulated and validated")
    print(
        f"model       {run_dir.name}: test AUC ROC {test['auc_roc']:.3f}, "
        f"AP {test['average_precision']:.3f}, precision {test['precision']:.2f}, "
        f"recall {test['recall']:.2f} at threshold {test['threshold']:.3f}"
    )
    flagged = int(batch["label"].sum())
    print(f"batch       {len(batch):,} last-week transactions scored, {flagged} flagged")
    print(f"stream      {len(streamed):,} decisions persisted in {DATABASE}")
    print(
        f"agreement   {len(both):,} transactions ({int(both['tx_fraud'].sum())} frauds): "
        f"streamed AP {ap_stream:.3f}, batch AP {ap_batch:.3f} (gap {gap:.3f}, "
        f"max {MAX_AP_GAP}); max |score difference| "
        f"{(both['score_stream'] - both['score_batch']).abs().max():.2e}"
    )
    print(f"artifacts   {run_dir} (model.onnx, hf/, model.mar, plots, metrics.json)")
    print(
        "serving     models/current/model.onnx "
        "(try: vigil serve --insecure-dev-key, then open http://127.0.0.1:8000/docs)"
    )
    if gap > MAX_AP_GAP:
        print(f"error: streamed and batch AP differ by {gap:.3f} > {MAX_AP_GAP}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str]) -> int:
    """``split RAW DEMO_DIR`` or ``summary DEMO_DIR``."""
    if argv[:1] == ["split"] and len(argv) == 3:
        split(Path(argv[1]), Path(argv[2]))
        return 0
    if argv[:1] == ["summary"] and len(argv) == 2:
        return summary(Path(argv[1]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
