#!/usr/bin/env bash
# SparseGPT layer by layer, polysparse vs llm-compressor, on the same weights and Hessians (Gemma 3 270M, blocks
# 0, 8 and 17, the dense model's inputs on 16 x 512 windows of handbook:de)
# -> bench/results/llmc/gemma-3-270m-layer-parity/layer-parity.{json,md}. LLMC_PYTHON as in llmc_side_by_side.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
LLMC_PYTHON=${LLMC_PYTHON:-/work/venv-llmc/bin/python}
RUNS=${RUNS:-runs/llmc-layer-parity}
OUT=${OUT:-bench/results/llmc/gemma-3-270m-layer-parity}
mkdir -p "$RUNS"
[ -f "$RUNS/layers.pt" ] || $PY -P -m polysparse.bench.experiments.llmc_layer_parity dump --out "$RUNS/layers.pt"
[ -f "$RUNS/llmc.pt" ] || "$LLMC_PYTHON" bench/scripts/llmc_layer_solve.py --layers "$RUNS/layers.pt" \
  --out "$RUNS/llmc.pt"
$PY -P -m polysparse.bench.experiments.llmc_layer_parity compare --layers "$RUNS/layers.pt" --llmc "$RUNS/llmc.pt" --out "$OUT"
cat "$OUT/layer-parity.md"
