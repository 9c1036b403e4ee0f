#!/usr/bin/env bash
# Verify srbench on a GPU, in one go (under 8 minutes on one GPU):
#   - profile LGVAN, RFDN and DLGSANet-Tiny on CUDA under robust, ntire2023 and ntire2024 (robust 5 times);
#   - eval LGVAN and RFDN on Set5 in fp32 and with --exec fp16, bf16, channels_last, compile; and in fp32 on CPU;
#   - the official per-image loop (benchmarks/official_loop.py) and `srbench eval` on the same images;
#   - the real-CUDA tests (pytest -m gpu);
# then prints (and writes to OUT/summary.json): CUDA vs CPU per-image PSNR (must be <= 1e-3 dB), the robust
# median's CV over the 5 profiles (target <= 2%), official loop vs srbench wall time, peak memory per protocol,
# each exec mode's speed-up and PSNR change, and every fair-timing warning. Exit 1 when a hard check fails.
#
# Usage: bash benchmarks/gpu_check.sh [--out DIR] [--data-root DIR] [--dry-run]
#   --out DIR        where records, logs and summary.json go (default: gpu-check-<time>)
#   --data-root DIR  a data root holding Set5 (default: $SRBENCH_DATA, else srbench's built-in Set5)
#   --dry-run        check this script's plumbing on CPU in a few minutes: every step, but RFDN only, 32x32
#                    inputs, 2 robust profiles, 1 Set5 image, channels_last only (fp16 needs CUDA; bf16 is
#                    emulated, and compile takes minutes, on CPUs without AVX512-BF16)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's sr_bench, in every step

OUT="gpu-check-$(date +%Y%m%dT%H%M%S)"
DATA_ROOT=""
DRY_RUN=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --data-root) DATA_ROOT="$2"; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "Error: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ "$DRY_RUN" = 1 ]; then
  DEVICE=cpu
  PROFILE_MODELS=rfdn
  EVAL_MODELS=rfdn
  PROFILE_ARGS=(--size 32)
  ROBUST_ARGS=(--warmup 1 --repeats 2)
  EVAL_ARGS=(--limit 1)
  MODES="channels_last"
  ROBUST_RUNS=2
else
  DEVICE=cuda
  PROFILE_MODELS=lgvan,rfdn,dlgsanet-tiny
  EVAL_MODELS=lgvan,rfdn
  PROFILE_ARGS=()
  ROBUST_ARGS=()
  EVAL_ARGS=()
  MODES="fp16 bf16 channels_last compile"
  ROBUST_RUNS=5
fi
DATA_ARGS=()
[ -n "$DATA_ROOT" ] && DATA_ARGS=(--data-root "$DATA_ROOT")
RESULTS="$OUT/results"
mkdir -p "$OUT/logs"

# timed NAME CMD...: run CMD with its output in OUT/logs/NAME.log, append "NAME<TAB>wall seconds" to OUT/walls.tsv
timed() {
  local name="$1"; shift
  echo "== $name: $*"
  local start end
  start=$(date +%s%N)
  "$@" >"$OUT/logs/$name.log" 2>&1 || { echo "Error: step $name failed; see $OUT/logs/$name.log" >&2; tail -5 "$OUT/logs/$name.log" >&2; exit 1; }
  end=$(date +%s%N)
  awk -v n="$name" -v ns="$((end - start))" 'BEGIN { printf "%s\t%.3f\n", n, ns / 1e9 }' >>"$OUT/walls.tsv"
}

srbench env --device "$DEVICE" --json >"$OUT/env.json"

# 1. profiles: every protocol once, robust repeated (separate processes, as separate runs of the harness)
for protocol in ntire2023 ntire2024; do  # the official protocols as the harness: no warm-up, one forward
  timed "profile-$protocol" srbench profile --model "$PROFILE_MODELS" --device "$DEVICE" --protocol "$protocol" \
    --results "$RESULTS" "${PROFILE_ARGS[@]}"
done
for i in $(seq 1 "$ROBUST_RUNS"); do
  timed "profile-robust-$i" srbench profile --model "$PROFILE_MODELS" --device "$DEVICE" --results "$RESULTS" \
    "${PROFILE_ARGS[@]}" "${ROBUST_ARGS[@]}"
done

# 2. evals on Set5: fp32 (eager), each exec mode, and fp32 on CPU for the PSNR cross-check
timed "eval-fp32" srbench eval --model "$EVAL_MODELS" --dataset set5 "${DATA_ARGS[@]}" --device "$DEVICE" --exec eager \
  --results "$RESULTS" "${EVAL_ARGS[@]}"
for mode in $MODES; do
  timed "eval-$mode" srbench eval --model "$EVAL_MODELS" --dataset set5 "${DATA_ARGS[@]}" --device "$DEVICE" \
    --exec "$mode" --results "$RESULTS" "${EVAL_ARGS[@]}"
done
timed "eval-cpu-fp32" srbench eval --model "$EVAL_MODELS" --dataset set5 "${DATA_ARGS[@]}" --device cpu --exec eager \
  --results "$OUT/results-cpu" "${EVAL_ARGS[@]}"

# 3. the official per-image loop vs `srbench eval` the same way (no warm-up, PNGs saved), one process each
IFS=$'\t' read -r SET5_HR SET5_LR < <(python benchmarks/gpu_check.py set5-dirs "${DATA_ARGS[@]}")
if [ -f benchmarks/official_loop.py ]; then
  for model in ${EVAL_MODELS//,/ }; do
    timed "srbench-eval-$model" srbench eval --model "$model" --hr "$SET5_HR" --lr "$SET5_LR" --device "$DEVICE" \
      --protocol ntire2024 --save-sr "$OUT/sr-srbench" --results "$OUT/results-wall"
    timed "official-$model" python benchmarks/official_loop.py --model "$model" --hr "$SET5_HR" --lr "$SET5_LR" \
      --device "$DEVICE" --save "$OUT/sr-official/$model" --json "$OUT/official-$model.json"
  done
else
  echo "== official loop: benchmarks/official_loop.py is not in this checkout; skipped"
fi

# 4. the real-CUDA tests (they skip, with the reason, without CUDA)
set +e
python -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu_cuda.py >"$OUT/logs/pytest-gpu.log" 2>&1
echo $? >"$OUT/pytest-gpu.rc"
set -e

# 5. the summary (exit 1 when a hard check fails)
python benchmarks/gpu_check.py summarize "$OUT"
