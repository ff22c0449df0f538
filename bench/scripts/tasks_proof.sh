#!/usr/bin/env bash
# Task columns on Gemma 3 270M (issue 10), sized for the shared 2-core CPU.
#   step 1: dense and magnitude 2:4 on every task (dense must be clearly above chance, magnitude near it)
#   step 2: a reduced study with task columns (wanda 2:4; en and de; fewer items) and collect_study
# LIMIT, TASKS, LANGS, TASK_LIMIT, STUDY_TASKS, STUDY_FLAGS and STEPS override the sizes. What has run so far
# (bench/results/tasks/sanity-*, 80 items of 13 tasks, one thread):
#   OMP_NUM_THREADS=1 STEPS=1 LIMIT=80 TASKS=translation-choice:{de,ru,zh,ja,ar}->en:gettext,\
#   translation-choice:en->{de,ja}:gettext,continuation-choice:{en,de,ru,zh,ja,ar}:handbook \
#     nice -n 10 bench/scripts/tasks_proof.sh       (the TASKS list written out, comma-separated)
# Step 2 ran once with its defaults (STEPS=2, two threads, idle CPU, 27.5 min) -> bench/results/study/
# gemma-3-270m-tasks/. The full proof the issue asks for is
#   LANGS=en,de,ru,zh,ja,ar TASK_LIMIT=500 with --method wanda|sparsegpt and --pattern 2:4 | --sparsity 0.5.
set -euo pipefail
cd "$(dirname "$0")/../.."
PS=.venv/bin/polysparse
LIMIT=${LIMIT:-100}
LANGS=${LANGS:-en,de}
TASK_LIMIT=${TASK_LIMIT:-100}
STEPS=${STEPS:-1 2}
STUDY_TASKS=${STUDY_TASKS:-translation-choice:X->en:gettext,continuation-choice:X:handbook}
STUDY_FLAGS=${STUDY_FLAGS:-}
out=bench/results/tasks
mkdir -p "$out"
TASKS=${TASKS:-translation-choice:de->en:gettext,translation-choice:en->de:gettext,translation-choice:ja->en:gettext,translation-choice:en->ja:gettext,translation-choice:ar->en:gettext,continuation-choice:en:handbook,continuation-choice:de:handbook,continuation-choice:zh:handbook,continuation-choice:ar:handbook}

if [[ " $STEPS " == *" 1 "* ]]; then
  echo "load before step 1: $(uptime)" | tee "$out/sanity-load.txt"
  [ -d runs/gemma-magnitude24 ] || $PS prune --model gemma-3-270m --method magnitude --pattern 2:4 \
    --out runs/gemma-magnitude24 --quiet
  $PS eval --model gemma-3-270m --tasks "$TASKS" --limit "$LIMIT" --out "$out/sanity-dense.json" --overwrite \
    --dump-items "$out/sanity-items.jsonl" --quiet
  $PS eval --model runs/gemma-magnitude24 --tasks "$TASKS" --limit "$LIMIT" --out "$out/sanity-magnitude-2-4.json" --overwrite --quiet
  .venv/bin/python -P -m polysparse.bench.studies.tasks_eval "$out/sanity-dense.json" "$out/sanity-magnitude-2-4.json" \
    --out "$out/sanity-dense-vs-magnitude-2-4.md"
  rm -f "$out/sanity-items.jsonl"  # third-party text: never committed (re-create it with the command above)
  echo "load after step 1: $(uptime)" | tee -a "$out/sanity-load.txt"
fi

if [[ " $STEPS " == *" 2 "* ]]; then
  study=bench/results/study/gemma-3-270m-tasks
  echo "load before step 2: $(uptime)" | tee "$study-load.txt"
  $PS study --model gemma-3-270m --langs "$LANGS" --method wanda --pattern 2:4 --nsamples 16 --seqlen 512 \
    --eval-windows 4 --eval-seqlen 256 --out "$study" --cells runs/study-tasks-cells \
    --tasks "$STUDY_TASKS" --task-limit "$TASK_LIMIT" $STUDY_FLAGS --quiet
  .venv/bin/python -P -m polysparse.bench.studies.collect_study "$study"
  echo "load after step 2: $(uptime)" | tee -a "$study-load.txt"
fi
