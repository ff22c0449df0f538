#!/usr/bin/env bash
# The calibration-language x evaluation-language study (issue 3) on Gemma 3 270M, CPU-sized: for Wanda and
# SparseGPT at 2:4 and 50% unstructured, calibrate on 16 windows x 512 tokens of the Debian Administrator's
# Handbook per language (plus an equal mix and X->English gettext translation prompts), evaluate on 4 held-out
# windows x 256 tokens of the Debian installation guide per language (handbook pages for Arabic, which the
# guide lacks). Cells are kept in runs/study_cells, so an interrupted run resumes where it stopped.
set -euo pipefail
cd "$(dirname "$0")/../.."
COMMON=(--model gemma-3-270m --langs en,de,ru,zh,ja,ar --calib-source handbook --eval-source install-guide
        --translate-source gettext --nsamples 16 --seqlen 512 --eval-windows 4 --eval-seqlen 256
        --out bench/results/study/gemma-3-270m --cells runs/study_cells --quiet)
polysparse study "${COMMON[@]}" --method wanda --pattern 2:4
polysparse study "${COMMON[@]}" --method sparsegpt --pattern 2:4
polysparse study "${COMMON[@]}" --method wanda --sparsity 0.5
polysparse study "${COMMON[@]}" --method sparsegpt --sparsity 0.5
