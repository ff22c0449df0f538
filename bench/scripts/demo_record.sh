#!/usr/bin/env bash
# The README's first command on a fresh machine, timed: clone this repository into a new folder, run
# `make demo` there under /usr/bin/time with an empty model cache (venv, pip packages, Gemma 3 270M
# conversion and the demo itself all count), and keep its report under bench/results/demo/.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$(pwd)
FRESH=${FRESH:-/tmp/fresh}
rm -rf "$FRESH" "$FRESH-cache"
LOAD_BEFORE=$(cut -d" " -f1-3 /proc/loadavg)
git clone -q "$REPO" "$FRESH"
( cd "$FRESH" && POLYSPARSE_CACHE="$FRESH-cache" /usr/bin/time -v make demo ) > "$FRESH.log" 2>&1
OUT=bench/results/demo
mkdir -p "$OUT"
cp "$FRESH/polysparse-demo/report.md" "$FRESH/polysparse-demo/polysparse.json" "$OUT/"
grep -E "Command being timed|Elapsed|Maximum resident|Exit status" "$FRESH.log" > "$OUT/make-demo-time.txt"
echo "commit $(git -C "$FRESH" rev-parse HEAD), $(date -Is), $(nproc) CPUs, load before: $LOAD_BEFORE" >> "$OUT/make-demo-time.txt"
cat "$OUT/make-demo-time.txt"
