#!/usr/bin/env bash
# polysparse vs llm-compressor on Gemma 3 270M, German: the same NSAMPLES (64) x 512-token windows of handbook:de, the
# same held-out evaluation windows (the study's: install-guide de and en, 4 x 256 tokens), one table of
# perplexity and wall time (load, calibrate, prune, save) -> bench/results/llmc/gemma-3-270m-de/.
# llm-compressor runs in its own environment (LLMC_PYTHON, default /work/venv-llmc/bin/python), made with
#   python3 -P -m venv /work/venv-llmc && /work/venv-llmc/bin/pip install torch==2.13.0 && \
#   /work/venv-llmc/bin/pip install llmcompressor
# Runs one process at a time; report the machine's load with the numbers (each row records its own).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
LLMC_PYTHON=${LLMC_PYTHON:-/work/venv-llmc/bin/python}
NSAMPLES=${NSAMPLES:-64}
# SEED picks another draw of calibration windows (both tools get the same one); 0 is the tables' default.
SEED=${SEED:-0}
SUFFIX=$([ "$SEED" = 0 ] || echo "-seed$SEED")
# OWL is not among the equal settings: llm-compressor 0.14.0.1's SparseGPTModifier(sparsity_profile="owl") stops
# in oneshot's initialisation ("ValueError: Cannot invoke event before initializing", from
# _infer_owl_layer_sparsity running calibration before the session is initialised), so polysparse's OWL runs alone.
RECIPES=${RECIPES:-"wanda 2:4;sparsegpt 2:4;sparsegpt 0.5"}
EXTRA=${EXTRA-"sparsegpt 0.5 +owl"}  # EXTRA="" runs the equal settings only
RUNS=${RUNS:-runs/llmc-$NSAMPLES$SUFFIX}
OUT=${OUT:-bench/results/llmc/gemma-3-270m-de-$NSAMPLES$SUFFIX}
MODEL_DIR=${MODEL_DIR:-$HOME/.cache/polysparse/gemma-3-270m}
mkdir -p "$RUNS"
[ -f "$RUNS/windows.pt" ] || $PY -P -m polysparse.bench.experiments.llmc_side_by_side windows --nsamples "$NSAMPLES" \
  --seed "$SEED" --out "$RUNS/windows.pt"
IFS=';' read -r -a recipes <<< "$RECIPES"
folders=()
# Equal settings on both tools (RECIPES, ';'-separated), then polysparse's own (EXTRA, ';'-separated).
for recipe in "${recipes[@]}"; do
  slug=$(echo "$recipe" | tr ' :+.' '----')
  if [ ! -f "$RUNS/llmc-$slug/llmc.json" ]; then
    rm -rf "$RUNS/llmc-$slug"
    nice -n 5 "$LLMC_PYTHON" bench/scripts/llmc_oneshot.py --model "$MODEL_DIR" --windows "$RUNS/windows.pt" \
      --recipe "$recipe" --out "$RUNS/llmc-$slug"
  fi
  folders+=("$RUNS/llmc-$slug")
done
IFS=';' read -r -a extra <<< "${EXTRA:-}"
for recipe in "${recipes[@]}" "${extra[@]}"; do
  [ -n "$recipe" ] || continue
  slug=$(echo "$recipe" | tr ' :+.=' '-----')
  if [ ! -f "$RUNS/polysparse-$slug/timing.json" ]; then
    rm -rf "$RUNS/polysparse-$slug"
    nice -n 5 $PY -P -m polysparse.bench.experiments.llmc_side_by_side prune --recipe "$recipe" --nsamples "$NSAMPLES" \
      --seed "$SEED" --out "$RUNS/polysparse-$slug"
  fi
  folders+=("$RUNS/polysparse-$slug")
done
nice -n 5 $PY -P -m polysparse.bench.experiments.llmc_side_by_side table --out "$OUT" "${folders[@]}"
cat "$OUT/side-by-side.md"
