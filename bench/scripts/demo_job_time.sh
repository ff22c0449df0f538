#!/usr/bin/env bash
# The demo job alone, timed (the model already converted in ~/.cache/polysparse, the venv in place): what
# `make demo` costs once set up, against its budget of 5 minutes on the 2-core CPU. Torch keeps its default
# threads, as `make demo` does. The load average before and after goes with the time: the machine may be
# shared. -> bench/results/demo/{demo-job-time.txt,report.md,polysparse.json}
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=bench/results/demo
RUN=${RUN:-runs/demo-job}
rm -rf "$RUN"
mkdir -p "$OUT"
before=$(cut -d' ' -f1-3 /proc/loadavg)
/usr/bin/time -v .venv/bin/polysparse demo --out "$RUN" > "$RUN.log" 2>&1
after=$(cut -d' ' -f1-3 /proc/loadavg)
cp "$RUN/report.md" "$RUN/polysparse.json" "$OUT/"
{
  echo "polysparse demo (job only: venv and model conversion already done)"
  grep -E "Elapsed|Maximum resident|Exit status" "$RUN.log"
  echo "load average (1, 5, 15 min) before: $before; after: $after; $(nproc) CPUs"
  echo "commit $(git rev-parse HEAD), $(date -Is)"
} > "$OUT/demo-job-time.txt"
cat "$OUT/demo-job-time.txt"
