#!/usr/bin/env bash
# One prepared GPU check: everything the kit can only show on a CUDA device, in one run of at most 9 minutes on one
# GPU, all output under one folder.
#
#   1. gpu_tests     the test suite's GPU tests (pytest -m gpu)
#   2. runtime       CUDA runtime and max_memory_allocated of the three 2022 baselines (imdn_baseline, rfdn,
#                    rlfn_ntire) under both timers (ntire, robust), the spread over 5 fresh processes each
#                    (benchmarks/runtime_spread.py --memory, full DIV2K-like inputs)
#   3. deform        torchvision's deform_conv2d against the kit's pure-torch one: agreement and speed
#                    (benchmarks/deform_compare.py)
#   4. vqe_memory    VQE chunked against whole-clip inference memory on CUDA (benchmarks/chunk_memory.py)
#   5. throughput    the psnr track against the official NTIRE loop (benchmarks/eval_throughput.py)
#   6. regress       ntirekit regress --record of the three baselines' overall track into
#                    OUT/metrics/<fingerprint id>/ (copy that folder into the repository's metrics/ to commit it)
#   7. graph         the three baselines' exported graphs against their eager modules on CUDA: runtime ratio
#                    graph/eager timed side by side in one run, max_memory_allocated of both, outputs identical or
#                    not (benchmarks/graph_runtime.py)
#
# Usage:
#   benchmarks/gpu_check.sh [--out DIR]       on a machine with a CUDA device (DIR: gpu_check_<UTC time>)
#   benchmarks/gpu_check.sh --dry-run --out DIR
#       the same seven steps on the CPU with tiny sizes, in seconds: every step's command line runs (the test suite
#       runs this, so the script cannot rot); the figures mean nothing.
# Environment: PYTHON (default .venv/bin/python), NTIREKIT (default .venv/bin/ntirekit).
# OUT/summary.txt lists each step's status, seconds and log; OUT/<step>.log holds its output, OUT/<step>.json its
# figures. The exit status is 1 when any step failed, 2 on bad usage or (without --dry-run) no CUDA device.

set -uo pipefail
cd "$(dirname "$0")/.."

DRY=0
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --out) [ $# -ge 2 ] || { echo "--out needs a folder" >&2; exit 2; }; OUT="$2"; shift ;;
    -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (--dry-run, --out DIR)" >&2; exit 2 ;;
  esac
  shift
done
PY="${PYTHON:-.venv/bin/python}"
NTIREKIT="${NTIREKIT:-.venv/bin/ntirekit}"
OUT="${OUT:-gpu_check_$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
BASELINES=(imdn_baseline rfdn rlfn_ntire)

if [ "$DRY" = 1 ]; then
  DEV=cpu
else
  if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "no CUDA device here (torch.cuda.is_available() is False): run with --dry-run for the CPU rehearsal" >&2
    exit 2
  fi
  DEV=cuda
fi

{
  echo "gpu_check $( [ "$DRY" = 1 ] && echo "DRY RUN (cpu, tiny sizes)" || echo "on cuda" ), $(date -u +%FT%TZ)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'device', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
} > "$OUT/env.txt" 2>&1

: > "$OUT/summary.txt"
FAILED=0
CHECK_START=$(date +%s)

# step NAME LIMIT_S COMMAND...: run it with a time limit, output in OUT/NAME.log, one line in OUT/summary.txt
step() {
  local name=$1 limit=$2
  shift 2
  local start end rc status
  start=$(date +%s%N)
  echo "+ $*" > "$OUT/$name.log"
  timeout "$limit" "$@" >> "$OUT/$name.log" 2>&1
  rc=$?
  end=$(date +%s%N)
  case $rc in
    0) status=ok ;;
    124) status="TIMEOUT(${limit}s)"; FAILED=1 ;;
    *) status="FAILED(rc=$rc)"; FAILED=1 ;;
  esac
  printf "%-12s %-16s %7d s  %s\n" "$name" "$status" "$(( (end - start) / 1000000000 ))" "$OUT/$name.log" \
    | tee -a "$OUT/summary.txt"
}

if [ "$DRY" = 1 ]; then
  step gpu_tests 300 "$PY" -m pytest -m gpu -q -p no:cacheprovider tests/test_deform.py tests/test_memory.py \
    tests/test_runtime.py
  step runtime 300 "$PY" benchmarks/runtime_spread.py --device cpu --runs 1 --images 1 --size 16 --warmup 0 \
    --repeats 1 --memory --entries "${BASELINES[@]}" --json "$OUT/runtime.json"
  step deform 120 "$PY" benchmarks/deform_compare.py --device cpu --size 12x16 --channels 8 --deform-groups 2 \
    --warmup 0 --repeats 1 --json "$OUT/deform.json"
  step vqe_memory 300 "$PY" benchmarks/chunk_memory.py --device cpu --lengths 6 --chunk 3 --overlap 1 \
    --size 16x16 --mid-channels 8 --num-blocks 1 --reconstruction-blocks 1 --flow zero \
    --json "$OUT/vqe_memory.json"
  step throughput 300 "$PY" benchmarks/eval_throughput.py --device cpu --images 2 --hr-size 64x96 --rounds 1 \
    --json "$OUT/throughput.json"
  step regress 300 "$NTIREKIT" regress --record --device cpu --entry rlfn_ntire --track complexity \
    --against "$OUT/metrics/dry-run"
  step graph 300 "$PY" benchmarks/graph_runtime.py --device cpu --size 16 --images 1 --warmup 0 --repeats 1 \
    --entries "${BASELINES[@]}" --json "$OUT/graph.json"
else
  FP=$("$PY" -c "from ntirekit.core.device import fingerprint, fingerprint_id, resolve_device; \
print(fingerprint_id(fingerprint(resolve_device('cuda'))))")
  step gpu_tests 60 "$PY" -m pytest -m gpu -q -p no:cacheprovider
  step runtime 150 "$PY" benchmarks/runtime_spread.py --device cuda --runs 5 --images 6 --size 0 --memory \
    --entries "${BASELINES[@]}" --json "$OUT/runtime.json"
  step deform 30 "$PY" benchmarks/deform_compare.py --device cuda --json "$OUT/deform.json"
  step vqe_memory 60 "$PY" benchmarks/chunk_memory.py --device cuda --mid-channels 64 --size 540x960 \
    --lengths 20 40 --json "$OUT/vqe_memory.json"
  step throughput 120 "$PY" benchmarks/eval_throughput.py --device cuda --rounds 3 --rlfn-rounds 2 \
    --json "$OUT/throughput.json"
  regress_args=()
  for e in "${BASELINES[@]}"; do regress_args+=(--entry "$e"); done
  step regress 60 "$NTIREKIT" regress --record --device cuda "${regress_args[@]}" --track overall \
    --against "$OUT/metrics/$FP"
  step graph 60 "$PY" benchmarks/graph_runtime.py --device cuda --size 256 --images 3 --warmup 5 --repeats 10 \
    --entries "${BASELINES[@]}" --json "$OUT/graph.json"
fi

echo "total $(( $(date +%s) - CHECK_START )) s; output in $OUT" | tee -a "$OUT/summary.txt"
if [ "$DRY" = 0 ]; then
  echo "to commit the reference figures: cp -r $OUT/metrics/* metrics/" | tee -a "$OUT/summary.txt"
fi
exit $FAILED
