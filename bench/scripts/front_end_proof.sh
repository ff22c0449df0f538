#!/usr/bin/env bash
# Real-model proof of the pruning front end (issue 2): Gemma 3 270M pruned for German on this machine's CPU,
# calibrated on 64 windows x 512 tokens of the Debian Administrator's Handbook in German; perplexity on
# held-out handbook pages (documents never used for calibration). Writes bench/results/front_end/.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-runs/front_end}
OUT=bench/results/front_end
mkdir -p "$RUNS" "$OUT"
COMMON=(--model gemma-3-270m --calib handbook:de --nsamples 64 --seqlen 512 --overwrite --quiet)
polysparse prune "${COMMON[@]}" --method magnitude --pattern 2:4 --out "$RUNS/magnitude-2-4"
polysparse prune "${COMMON[@]}" --method magnitude --sparsity 0.5 --out "$RUNS/magnitude-50"
polysparse prune "${COMMON[@]}" --method wanda --pattern 2:4 --out "$RUNS/wanda-2-4"
polysparse prune "${COMMON[@]}" --method sparsegpt --sparsity 0.5 --out "$RUNS/sparsegpt-50"
EVAL=(--data handbook:de --windows 16 --seqlen 512 --quiet)
polysparse eval --model gemma-3-270m "${EVAL[@]}" --out "$RUNS/eval-dense.json"
for run in magnitude-2-4 magnitude-50 wanda-2-4 sparsegpt-50; do
  polysparse eval --model "$RUNS/$run" "${EVAL[@]}" --out "$RUNS/eval-$run.json"
done
python -P -m polysparse.bench.experiments.collect_front_end "$RUNS" "$OUT/gemma-3-270m-de"
