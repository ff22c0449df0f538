#!/usr/bin/env bash
# Issue 23: the seeds' question asked of task accuracy on Gemma 3 270M, sized for the shared 2-core CPU.
#   SparseGPT 2:4 and Wanda 2:4, calibrated on 16 x 512 windows of handbook text in en, de, ru, zh, the
#   four-language mix and ru->en translation prompts; dense and magnitude 2:4; the best 2:4 recipe (SparseGPT
#   2:4 + ADMM + block-wise reconstruction, docs/recovery.md) calibrated on de and on the mix.
#   Perplexity on 4 x 256 held-out install-guide windows per language (the study's columns); tasks on the same
#   items for every row: translation-choice X->en (en->de in the English column), 300 items, and
#   continuation-choice (acc_norm), 200 items, per language.
# Resumable: every cell is kept in $CELLS, outside the repository; a killed run loses at most the cell in
# progress and resumes when this script is started again. The tables in $OUT are rewritten after every row.
# PY is the Python that runs it (with PYTHONPATH pointing at a copy of the package, a long run is not changed
# by later edits of the tree). RECIPE and RECIPE_CALIB replace the recipe rows (the follow-up that split the
# recipe into its parts: METHODS=sparsegpt RECIPE="sparsegpt 2:4 +admm" RECIPE_CALIB=mix OUT=...). Started as
#   mkdir -p /work/runs-23 && OMP_NUM_THREADS=1 nohup nice -n 10 bench/scripts/tasks_answer.sh \
#     > /work/runs-23/study.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-bench/results/study/gemma-3-270m-tasks-answer}
CELLS=${CELLS:-/work/runs-23/cells}
METHODS=${METHODS:-sparsegpt wanda}
RECIPE=${RECIPE:-sparsegpt 2:4 +admm +recon}
RECIPE_CALIB=${RECIPE_CALIB:-de,mix}
TASKS=translation-choice:X-\>en:gettext,en=translation-choice:en-\>de:gettext,continuation-choice:X:handbook
COMMON=(--model gemma-3-270m --langs en,de,ru,zh --pattern 2:4 --calib-source handbook
        --eval-source install-guide --translate-source gettext --translate-langs ru --nsamples 16 --seqlen 512
        --eval-windows 4 --eval-seqlen 256 --tasks "$TASKS"
        --task-limit translation-choice=300,continuation-choice=200 --out "$OUT" --cells "$CELLS" --quiet)
mkdir -p "$OUT"
for method in $METHODS; do
  echo "$method start: $(date -u +%FT%TZ) $(uptime), OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset}" >> "$OUT/load.txt"
  if [[ $method == sparsegpt ]]; then
    "$PY" -P -m polysparse.bench.cli study "${COMMON[@]}" --method sparsegpt \
      --recipe "$RECIPE" --recipe-calib "$RECIPE_CALIB"
  else
    "$PY" -P -m polysparse.bench.cli study "${COMMON[@]}" --method "$method"
  fi
  echo "$method end: $(date -u +%FT%TZ) $(uptime)" >> "$OUT/load.txt"
done
"$PY" -P -m polysparse.bench.studies.collect_study "$OUT"
