#!/usr/bin/env bash
# `make demo`: Vigil's main job on embedded defaults (no server needed).
# simulate -> validate -> features -> train -> batch score -> stream replay (in-process).
set -euo pipefail
cd "$(dirname "$0")/.."

DEMO_DIR=${DEMO_DIR:-data/demo}
WORLD=(
  --set data.n_customers=1000 --set data.n_terminals=2000 --set data.n_days=90
  --set data.raw_dir="$DEMO_DIR/raw"
  --set features.output_path="$DEMO_DIR/features.parquet"
  --set train.train_start=2018-05-20 --set train.train_days=21
  --set train.runs_dir="$DEMO_DIR/runs" --set train.epochs=15
  --set tracking.mlflow_uri="file:$DEMO_DIR/mlruns"
  --set inference.model_path="$DEMO_DIR/model/model.onnx"
  --set storage.database_url="sqlite:///$DEMO_DIR/vigil.db"
)

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

rm -rf "$DEMO_DIR"
step "1/6 simulate transactions (handbook design, 1,000 customers, 90 days)"
vigil generate "${WORLD[@]}"

step "2/6 validate the data contract and write a data-quality report"
vigil validate "$DEMO_DIR/raw" --report "$DEMO_DIR/quality.json"

step "3/6 compute point-in-time features with DuckDB"
vigil features "${WORLD[@]}"

step "4/6 train the MLP and export ONNX / Hugging Face / TorchServe artifacts"
vigil train "${WORLD[@]}" --data "$DEMO_DIR/raw" --promote

step "5/6 batch-score the last week with ONNX Runtime (no torch)"
python - "$DEMO_DIR" <<'PY'
import sys
from pathlib import Path

import pandas as pd

from vigil.data.io import read_transactions

demo = Path(sys.argv[1])
frame = read_transactions(demo / "raw")
last_week = frame[frame["tx_datetime"] >= frame["tx_datetime"].max() - pd.Timedelta(days=7)]
last_week.to_parquet(demo / "last_week_labelled.parquet", index=False)
last_week.drop(columns=["tx_fraud", "tx_fraud_scenario"]).to_csv(demo / "last_week.csv", index=False)
PY
vigil predict "${WORLD[@]}" --input_path "$DEMO_DIR/last_week.csv" --history "$DEMO_DIR/raw" \
  --output_path "$DEMO_DIR/scores.csv"

step "6/6 replay the stream through online features, scoring and storage (in-process)"
vigil replay "${WORLD[@]}" --input "$DEMO_DIR/last_week_labelled.parquet" --limit 5000 --label-after 0

step "summary"
python - "$DEMO_DIR" <<'PY'
import json
import sqlite3
import sys
from pathlib import Path

import pandas as pd

demo = Path(sys.argv[1])
quality = json.loads((demo / "quality.json").read_text())
run_dir = sorted((demo / "runs").iterdir())[-1]
metrics = json.loads((run_dir / "metrics.json").read_text())
test = metrics["test"]
scores = pd.read_csv(demo / "scores.csv")
with sqlite3.connect(demo / "vigil.db") as db:
    stored = db.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
print(f"data        {quality['rows']:,} transactions simulated and validated")
print(
    f"model       {run_dir.name}: test AUC ROC {test['auc_roc']:.3f}, "
    f"AP {test['average_precision']:.3f}, precision {test['precision']:.2f}, "
    f"recall {test['recall']:.2f} at threshold {test['threshold']:.3f}"
)
print(f"batch       {len(scores):,} last-week transactions scored, {int(scores['label'].sum())} flagged")
print(f"stream      {stored:,} predictions persisted in {demo / 'vigil.db'}")
print(f"artifacts   {run_dir} (model.onnx, hf/, model.mar, plots, metrics.json)")
PY
