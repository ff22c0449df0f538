#!/usr/bin/env bash
# Issue 25's check on the demo's output: transformers' own from_pretrained loads polysparse-demo/compressed
# with Sparse24Linear layers (after `import polysparse`; without it the load is refused), and
# `polysparse serve` answers the openai client with the pruned dense model's greedy text. Python starts
# outside the repository root. Run after `make demo` (or `polysparse demo`) in the repository root.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$(pwd)
OUT=bench/results/deploy
mkdir -p "$OUT"
LOAD_BEFORE=$(cut -d" " -f1-3 /proc/loadavg)
cd "$(mktemp -d)"
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "$REPO/.venv/bin/python" -P "$REPO/bench/scripts/deploy_check.py" \
    "$REPO/polysparse-demo" "$REPO/$OUT/deploy-check.json" | tail -1
echo "commit $(git -C "$REPO" rev-parse HEAD), $(date -Is), $(nproc) CPUs, load before: $LOAD_BEFORE" \
    > "$REPO/$OUT/deploy-check-run.txt"
cat "$REPO/$OUT/deploy-check-run.txt"
