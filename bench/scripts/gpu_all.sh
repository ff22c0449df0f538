#!/usr/bin/env bash
# Every GPU number the README owes, in one call on one H100/H200 (budget: under 8 minutes).
#
#   bench/scripts/gpu_all.sh            # from the repository root or anywhere
#   STOP_ON_FAIL=1 bench/scripts/gpu_all.sh    # stop at the first failing step
#   STEPS="tests e2e-gemma-3-270m" bench/scripts/gpu_all.sh    # a subset of the steps below
#   DRY_RUN=1 bench/scripts/gpu_all.sh  # list the steps, their expected durations and commands; run nothing
#
# Steps and the time each is expected to take on an H100/H200 (estimates from the work each does: none has
# been timed on a GPU yet; the summary prints the real durations, and each step is killed at 3x its
# estimate so that one hang cannot eat the machine):
#
#   install            10 s   pip install --no-deps --no-build-isolation -e . (the machine has no internet)
#   tests             100 s   POLYSPARSE_TEST_GPU=1 pytest -m gpu: every kernel compiled, against its reference
#   compiled           40 s   python -P -m polysparse.bench.kernels.compiled (all launch configs, sm_80 + sm_90)
#   matmul            120 s   2:4 matmul vs dense / cuSPARSELt / CUTLASS, Llama-3-8B, Qwen2.5-7B, Gemma 3
#                             270M layer shapes, M = 1..4096, bf16
#   topk               25 s   mask selection kernels vs reference
#   sparsegpt          35 s   SparseGPT block solve vs reference loop
#   e2e-llama-3-8b     50 s   random weights at Llama-3-8B shapes (4 of 32 blocks), 2:4, polysparse bench:
#                             decode at batch 1 and 16 after 2k and 4k-token prompts (prefill 2k-4k), each
#                             step one CUDA-graph replay with a static KV cache, then eager as a second row
#   e2e-qwen2.5-7b     50 s   the same at Qwen2.5-7B shapes (4 of 28 blocks)
#   e2e-gemma-3-270m   40 s   the same at Gemma 3 270M shapes (all 18 blocks)
#                     ----
#                     470 s
#
# Results: bench/results/kernels/*.json|md (kernel benchmarks, under their usual names so the README and
# the runtime's dispatch table read them), bench/results/throughput/throughput_*_cuda.json|md, and
# bench/results/gpu/<UTC time>/ (logs, the test report, steps.tsv, summary.md). Commit them.
# Without a CUDA device the script stops at once with exit status 2 and says why.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2
PYTHON="${PYTHON:-python}"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RUN="bench/results/gpu/${STAMP}"
WORK="${WORK:-${TMPDIR:-/tmp}/polysparse-gpu-all}"
ALL_STEPS="install tests compiled matmul topk sparsegpt e2e-llama-3-8b e2e-qwen2.5-7b e2e-gemma-3-270m"
STEPS="${STEPS:-$ALL_STEPS}"
declare -A EXPECTED=(
    [install]=10 [tests]=100 [compiled]=40 [matmul]=120 [topk]=25 [sparsegpt]=35
    [e2e-llama-3-8b]=50 [e2e-qwen2.5-7b]=50 [e2e-gemma-3-270m]=40
)
declare -A LAYERS=([e2e-llama-3-8b]=4 [e2e-qwen2.5-7b]=4 [e2e-gemma-3-270m]=18)

say() { printf '%s\n' "gpu_all: $*"; }
die() { printf '%s\n' "gpu_all: $*" >&2; exit 2; }

total=0
for s in $STEPS; do
    [ -n "${EXPECTED[$s]:-}" ] || die "unknown step '$s' (steps: $ALL_STEPS)"
    total=$((total + ${EXPECTED[$s]}))
done

# --- preflight: fail in seconds, not after an install, where there is nothing to measure ----------------
if [ "${DRY_RUN:-0}" = 1 ]; then
    say "dry run: steps (expected ${total} s in all; each killed at 3x its estimate + 30 s)"
    for s in $STEPS; do printf '  %-18s %4s s\n' "$s" "${EXPECTED[$s]}"; done
    run_step() {
        case " $STEPS " in *" $1 "*) say "[$1] would run: ${*:2}" ;; esac
    }
    record() { :; }
else
    # --- preflight: fail in seconds, not after an install, where there is nothing to measure -------------
    command -v "$PYTHON" >/dev/null 2>&1 || die "no '$PYTHON' on PATH (set PYTHON=/path/to/python)"
    cuda_report="$("$PYTHON" -P - <<'EOF' 2>&1
import sys
try:
    import torch
except Exception as error:  # noqa: BLE001
    sys.exit(f"torch cannot be imported: {error}")
if not torch.cuda.is_available():
    sys.exit(f"torch {torch.__version__} sees no CUDA device (torch.version.cuda={torch.version.cuda}); "
             "this script measures GPU speed and has nothing to do without one")
print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
EOF
    )" || die "$cuda_report"
    say "device: ${cuda_report}"
    mkdir -p "$RUN" "$WORK" || die "cannot create $RUN or $WORK"
    : > "$RUN/steps.tsv"
    : > "$RUN/files.txt"
    say "steps: ${STEPS} (expected ${total} s); logs and summary: $RUN"

    run_step() {  # name, command...
        local name="$1"; shift
        case " $STEPS " in *" $name "*) ;; *) return 0 ;; esac
        local expected="${EXPECTED[$name]}" start end status verdict=ok
        say "[$name] started (expected ~${expected} s): $*"
        start=$(date +%s)
        timeout --signal=TERM --kill-after=10 "$((3 * expected + 30))" "$@" > "$RUN/$name.log" 2>&1
        status=$?
        end=$(date +%s)
        if [ "$status" -eq 124 ]; then verdict=timeout; elif [ "$status" -ne 0 ]; then verdict="failed($status)"; fi
        printf '%s\t%s\t%s\t%s\n' "$name" "$verdict" "$((end - start))" "$expected" >> "$RUN/steps.tsv"
        say "[$name] $verdict in $((end - start)) s (log: $RUN/$name.log)"
        if [ "$verdict" != ok ]; then
            failed=$((failed + 1))
            tail -n 15 "$RUN/$name.log" | sed 's/^/    /'
            if [ "${STOP_ON_FAIL:-0}" = 1 ]; then
                say "stopping (STOP_ON_FAIL=1)"
                "$PYTHON" -P -m polysparse.bench.speed.gpu_summary "$RUN"
                exit 1
            fi
        fi
    }
    record() { for f in "$@"; do echo "$f" >> "$RUN/files.txt"; done; }
fi
failed=0

run_step install "$PYTHON" -P -m pip install --no-deps --no-build-isolation -q -e .

# The test dependencies are not part of a --no-deps install: say so instead of failing obscurely.
run_step tests bash -c '
    "$0" -P -c "import pytest, hypothesis" || { echo "pytest and hypothesis are needed for the GPU tests"; exit 3; }
    extra=$("$0" -P -c "import pytest_benchmark" 2>/dev/null && echo --benchmark-disable)
    POLYSPARSE_TEST_GPU=1 TRITON_INTERPRET=0 "$0" -P -m pytest -q -m gpu -p no:cacheprovider $extra \
        --junitxml="$1" tests
' "$PYTHON" "$RUN/gpu-tests.xml"

run_step compiled "$PYTHON" -P -m polysparse.bench.kernels.compiled --jobs "$(nproc)" --out "$RUN" \
    --name compiled-on-gpu-machine

run_step matmul "$PYTHON" -P -m polysparse.bench.kernels.sparse24_matmul --dtype bf16 \
    --models llama-3-8b,qwen2.5-7b,gemma-3-270m --out bench/results/kernels
record bench/results/kernels/sparse24_matmul_bf16.json

run_step topk "$PYTHON" -P -m polysparse.bench.kernels.topk_mask --dtype bfloat16
run_step sparsegpt "$PYTHON" -P -m polysparse.bench.kernels.sparsegpt_solve

for step in e2e-llama-3-8b e2e-qwen2.5-7b e2e-gemma-3-270m; do
    model="${step#e2e-}"
    folder="$WORK/${model}-${LAYERS[$step]}blocks-random24"
    # The folder name becomes the result's name: throughput_<folder>_cuda.json.
    run_step "$step" bash -c '
        "$0" -P -m polysparse.bench.speed.shape_models --model "$1" --layers "$2" --dtype bfloat16 --out "$3" &&
        "$0" -P -m polysparse.bench.cli bench --model "$3" --batch 1,16 --prompt 2048,4096 \
            --new-tokens 32 --repeats 3 --warmup 1 --out bench/results/throughput --quiet
    ' "$PYTHON" "$model" "${LAYERS[$step]}" "$folder"
    record "bench/results/throughput/throughput_$(basename "$folder")_cuda.json"
done

[ "${DRY_RUN:-0}" = 1 ] && exit 0
"$PYTHON" -P -m polysparse.bench.speed.gpu_summary "$RUN"
if [ "$failed" -gt 0 ]; then
    say "$failed step(s) failed: see the logs above and in $RUN"
    exit 1
fi
say "all steps passed; commit bench/results"
