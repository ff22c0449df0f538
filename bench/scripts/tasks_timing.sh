#!/usr/bin/env bash
# Wall time of one task (500 items x 4 choices) on Gemma 3 270M, dense, on this machine's CPU:
# bench/results/tasks/timing-gemma-3-270m.{json,md,txt}. Records the load before and after.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=bench/results/tasks
mkdir -p "$out"
{
  echo "command: polysparse eval --model gemma-3-270m --tasks translation-choice:de->en:gettext --limit 500"
  echo "date: $(date -u +%FT%TZ)  commit: $(git rev-parse --short HEAD)  cpu: $(nproc) cores"
  echo "load before: $(uptime)"
  start=$(date +%s)
  .venv/bin/polysparse eval --model gemma-3-270m --tasks "translation-choice:de->en:gettext" --limit 500 \
    --out "$out/timing-gemma-3-270m.json" --overwrite --quiet
  end=$(date +%s)
  echo "load after: $(uptime)"
  echo "wall seconds (item building, model load and scoring): $((end - start))"
} > "$out/timing-gemma-3-270m.txt" 2>&1
cat "$out/timing-gemma-3-270m.txt"
