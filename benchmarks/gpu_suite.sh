#!/usr/bin/env bash
# Every --full benchmark in one prepared run on one H100/H200-class GPU (issue 13), in under 8 minutes, writing
# the logs and a Markdown table (s/face, faces/s, TFLOP/s achieved vs the bound, peak memory) to a folder.
#
#   bash benchmarks/gpu_suite.sh [OUT_DIR]          # GPU: full-size architectures, random weights
#   bash benchmarks/gpu_suite.sh --dry-run [OUT_DIR] # CPU: the same commands at tiny sizes (seconds each)
#
# OUT_DIR: default $OUT when set (the device machine's result folder), else benchmarks/out. On a machine without
# diffusers (the lent GPU machine: torch, transformers, accelerate and peft only) the wheels of .whl/ are installed
# first (pip --no-index --no-deps into /tmp/authface-site), then AuthFace itself without dependencies; see
# benchmarks/README.md ("GPU suite") for how .whl/ is made. Models: SD 1.5-sized random weights built in code
# (nothing is downloaded). SDXL: not benchmarked here yet (no SDXL bench script); the table says so.
set -uo pipefail

DRY=0
DEST="${OUT:-benchmarks/out}"
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY=1 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    -*) echo "unknown option $arg" >&2; exit 2 ;;
    *) DEST="$arg" ;;
  esac
done
cd "$(dirname "$0")/.."
mkdir -p "$DEST"
PY="${PYTHON:-python3}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1

if [ "$DRY" = 0 ] && ! "$PY" -c "import diffusers" 2>/dev/null; then
  if ! ls .whl/*.whl >/dev/null 2>&1; then
    echo "diffusers is not installed and .whl/ holds no wheels (see benchmarks/README.md, GPU suite)" >&2
    exit 2
  fi
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/authface-site \
    .whl/*.whl || exit 2
  export PYTHONPATH="/tmp/authface-site${PYTHONPATH:+:$PYTHONPATH}"
fi
if ! "$PY" -c "import authface" 2>/dev/null; then
  "$PY" -m pip install -q --no-deps --no-index --no-build-isolation --target /tmp/authface-site . \
    || export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # no build backend there: import from the tree
  export PYTHONPATH="/tmp/authface-site${PYTHONPATH:+:$PYTHONPATH}"
fi

if [ "$DRY" = 1 ]; then
  DEV="--device cpu"
  PIPE="--reps 1 --warmup 0 --batches 1 --size 64 --steps 2 --mem-reps 0 --threads 1"
  SPEED="--dry-run --threads 1"
  GUIDE="--reps 1 --warmup 0 --batches 1 --size 64 --steps 2 --mem-reps 0 --no-breakdown --threads 1"
  TRAIN="--steps 4 --skip 1 --rounds 1 --batch 2 --photos 4 --gc off --no-breakdown --threads 1 --aligned"
  LIMIT=300
else
  DEV="--device cuda"
  PIPE="--full --reps 3 --warmup 1 --mem-reps 1"
  SPEED="--model full --size 512 --reps 3 --warmup 1"
  GUIDE="--full --reps 2 --warmup 1 --batches 1 4 --mem-reps 1 --no-breakdown"
  TRAIN="--full --steps 8 --skip 2 --rounds 1 --gc both --no-breakdown --aligned"
  LIMIT=150
fi

START=$(date +%s)
FAILED=0
run() {  # run NAME ARGS...: one benchmark with a time limit, its log in $DEST/NAME.log
  local name="$1"; shift
  local t0; t0=$(date +%s)
  echo "== $name: $PY $*"
  if timeout "$LIMIT" "$PY" "$@" >"$DEST/$name.log" 2>&1; then
    echo "   ok in $(( $(date +%s) - t0 )) s"
  else
    echo "   FAILED (exit $?) in $(( $(date +%s) - t0 )) s; tail of $DEST/$name.log:"; tail -n 15 "$DEST/$name.log"
    FAILED=$((FAILED + 1))
  fi
}

run pipeline benchmarks/bench_pipeline.py $DEV $PIPE                     # vs diffusers, 512², 20 steps, batch 1, 8
run speed_b1 benchmarks/bench_speed.py $DEV $SPEED --batch 1             # 1-step, 4-step, 20-step
run speed_b8 benchmarks/bench_speed.py $DEV $SPEED --batch 8
run guidance benchmarks/bench_guidance.py $DEV $GUIDE                    # cheap decoder vs full VAE
run train benchmarks/bench_train.py $DEV $TRAIN                          # SD 1.5 step time, facial loss, GC

"$PY" benchmarks/suite_table.py "$DEST" --seconds $(( $(date +%s) - START )) >"$DEST/suite.md" \
  || FAILED=$((FAILED + 1))
cat "$DEST/suite.md"
echo "suite: $(( $(date +%s) - START )) s, $FAILED failure(s); logs and suite.md in $DEST"
[ "$FAILED" = 0 ]
