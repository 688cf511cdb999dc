#!/usr/bin/env bash
# `make demo`: Vigil's main job on embedded defaults (no server needed).
# simulate -> validate -> features -> train -> batch score -> warm state + stream replay.
# It writes where the defaults of configs/vigil.yaml point (data/raw, data/features,
# models/current, data/vigil.db, runs, mlruns), so every README command works next with no
# flags; its own scratch files go to data/demo.
set -euo pipefail
cd "$(dirname "$0")/.."

DEMO_DIR=data/demo
RAW=data/raw
# A smaller world than the handbook's (1,000 customers, 2,000 terminals, its 183 days): the
# default training protocol (configs/vigil.yaml) fits it in under a minute.
WORLD=(--set data.n_customers=1000 --set data.n_terminals=2000)

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

rm -rf "$DEMO_DIR" "$RAW" data/features data/vigil.db models/current
mkdir -p "$DEMO_DIR"
step "1/7 simulate transactions (handbook design, 1,000 customers, 183 days) into $RAW"
vigil generate "${WORLD[@]}" --no-progress

step "2/7 validate the data contract and write a data-quality report"
vigil validate "$RAW" --require-labels --report "$DEMO_DIR/quality.json"

step "3/7 compute point-in-time features (compiled kernels, one pass; ADR 0022)"
vigil features

step "4/7 train the MLP, export ONNX / Hugging Face / TorchServe, promote to models/current"
vigil train --promote

step "5/7 batch-score the last week with ONNX Runtime (no torch), its history from $RAW"
python scripts/demo_report.py split "$RAW" "$DEMO_DIR"
vigil predict --input "$DEMO_DIR/last_week.csv" --history "$RAW" --output "$DEMO_DIR/scores.csv"

step "6/7 warm the online state from $RAW, then replay the last week's stream (in-process)"
vigil replay --input "$DEMO_DIR/last_week_labelled.parquet" --warm-from "$RAW" --limit 5000 \
  --label-after 0

step "7/7 summary: streamed decisions must match the batch scores of the same transactions"
python scripts/demo_report.py summary "$DEMO_DIR"
