#!/usr/bin/env bash
# GPU benchmark suite of issue 18: one prepared script, under 8 minutes on one H100/H200.
#
#   OUT=/tmp/suite bash experiments/gpu_suite.sh            # the GPU run (budget 450 s)
#   OUT=/tmp/suite bash experiments/gpu_suite.sh --dry-run  # CPU check: tiny sizes, < 1 min
#
# Options: --dry-run; --budget SECONDS (total wall budget, default 450; dry run 50, of which
# 45 % / 30 % / the rest for its NB201 / DARTS-space / search parts).
# Environment: OUT (output folder, default /tmp/gpu_suite), PYTHON (default python),
# JNAS_DATA_DIR (CIFAR-10 and the NB201 tables, for the search part).
#
# What it runs, in priority order, each part under `timeout` within what is left of the
# budget (experiments/bench_jit.py appends every JSON line as soon as it is measured, so a
# part cut short keeps its finished lines; each part re-times the PyTorch reference first,
# so every speedup_vs_ref is a same-process ratio):
#   1. nb201_b64   NB201 supernet C=16 N=5, batch 64: fp32/bf16 x order 1/2 x population 1/8
#   2. darts_b64   DARTS-space supernet C=16, 8 cells, batch 64: the same grid
#   3. nb201_b256  batch 256: fp32/bf16, first order
#   4. darts_b256  batch 256: fp32/bf16, first order
#   5. matmul_b64  NB201 batch 64 fp32 first order with JNAS_CONV_IMPL's matmul convolution
#   6. search      reference-budget NB201 DARTS-V1 search (C=16, N=5, batch 64, 25k/25k
#                  images, 50 epochs, a_lr 3e-4), seeds 0-3 vmapped in one program
#                  (`jnas search darts --vmap-seeds`), for the rest of the budget
#                  (checkpointed per epoch: a cut-short run leaves its epochs under
#                  $OUT/search/seed_<s>)
# Output under $OUT: bench.jsonl (bench_jit lines), parts.jsonl (one line per part: rc,
# wall_s, timeout_s), bench.png (step-time plot), search/seed_<s>/ (result.json, alpha.png,
# checkpoints), log.txt (everything printed). The PyTorch lines need torch + xautodl
# (bench_jit.py docstring: `pip install -e '.[torch-bench]' && pip install --no-deps
# xautodl==1.0.0`); without them bench_jit writes one "skipped" line and times jnas alone.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_suite}
PY=${PYTHON:-python}
DRY=0
BUDGET=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --budget) BUDGET="$2"; shift ;;
    *) echo "gpu_suite.sh: unknown argument '$1' (use --dry-run, --budget SECONDS)" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$BUDGET" ]; then BUDGET=$([ $DRY = 1 ] && echo 50 || echo 450); fi
mkdir -p "$OUT"
: > "$OUT/bench.jsonl"
: > "$OUT/parts.jsonl"
START=$SECONDS

# part NAME CAP_S COMMAND...: run COMMAND under timeout min(CAP_S, budget left)
part() {
  local name=$1 cap=$2; shift 2
  local left=$(( BUDGET - (SECONDS - START) ))
  local t=$(( left < cap ? left : cap ))
  if [ "$t" -lt 5 ]; then
    echo "{\"part\": \"$name\", \"status\": \"skipped\", \"reason\": \"budget spent\"}" \
      >> "$OUT/parts.jsonl"
    return
  fi
  local t0=$SECONDS
  echo "== $name (timeout ${t}s): $*" >> "$OUT/log.txt"
  timeout "$t" "$@" >> "$OUT/log.txt" 2>&1
  local rc=$?
  echo "{\"part\": \"$name\", \"rc\": $rc, \"wall_s\": $(( SECONDS - t0 )), \"timeout_s\": $t}" \
    >> "$OUT/parts.jsonl"
}

B="$PY experiments/bench_jit.py --out $OUT/bench.jsonl --append"
if [ $DRY = 1 ]; then
  # tiny sizes, one timed step: checks the paths of the script (no population step: its
  # compile alone would double the time; bench_jit's --populations is the same code path;
  # the matmul convolution is checked by tests/test_fastconv.py, not compiled again here)
  T="--C 2 --N 1 --layers 3 --steps 1 --xla-options fastest"
  part nb201_b64 $(( BUDGET * 45 / 100 )) $B $T --spaces nb201 --batches 2 --dtypes fp32 \
    --orders 1 --populations "" --conv-impls xla
  part darts_b64 $(( BUDGET * 30 / 100 )) $B $T --spaces darts --batches 2 --dtypes fp32 \
    --orders 1 --populations "" --conv-impls xla
  SEEDS=0-1
  SEARCH="--epochs 1 --set C=4 --set N=1 --set batch_size=8 --set train_size=16
          --set val_size=16 --set eval_batches=1 --set xla=fastest --set augment=false"
else
  part nb201_b64 150 $B --spaces nb201 --batches 64 --dtypes fp32,bf16 --orders 1,2 \
    --populations 1,8 --conv-impls xla
  part darts_b64 150 $B --spaces darts --batches 64 --dtypes fp32,bf16 --orders 1,2 \
    --populations 8 --conv-impls xla
  part nb201_b256 50 $B --spaces nb201 --batches 256 --dtypes fp32,bf16 --orders 1 \
    --populations "" --conv-impls xla
  part darts_b256 50 $B --spaces darts --batches 256 --dtypes fp32,bf16 --orders 1 \
    --populations "" --conv-impls xla
  part matmul_b64 30 $B --no-torch --spaces nb201 --batches 64 --dtypes fp32 --orders 1 \
    --populations "" --conv-impls matmul
  SEEDS=0-3
  SEARCH="--epochs 50 --set C=16 --set N=5 --set batch_size=64
          --set train_size=25000 --set val_size=25000"
fi
$PY experiments/bench_jit.py --plot-from "$OUT/bench.jsonl" --plot "$OUT/bench.png" \
  >> "$OUT/log.txt" 2>&1
# the search: DARTS-V1 at its defaults (a_lr 3e-4), seeds $SEEDS as one vmapped program
# (jnas.oneshot_seeds), for the rest of the budget
# shellcheck disable=SC2086
part search 100000 $PY -m jnas.cli search darts --space nb201 --dataset cifar10 --quiet \
  --seeds $SEEDS --vmap-seeds --out "$OUT/search" $SEARCH
echo "{\"part\": \"total\", \"wall_s\": $(( SECONDS - START )), \"budget_s\": $BUDGET}" \
  >> "$OUT/parts.jsonl"
cat "$OUT/parts.jsonl"
