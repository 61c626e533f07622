#!/usr/bin/env bash
# The regression check of .github/workflows/gpu-regress.yml, every step's logic here so that CI runs the same lines
# on CPU (.ci/run: benchmarks/gpu_regress.sh cpu --against metrics/cpu-...) and a removed module or a changed flag
# breaks CI, not the first GPU run.
#
#   benchmarks/gpu_regress.sh DEVICE [--against DIR] [--out DIR] [STEP ...]
#
# DEVICE: cuda (the GPU runner) or cpu. STEPs, in this order (default: all but install):
#   device     the device is there: nvidia-smi (cuda); the CPU model (cpu)
#   install    ./setup.sh with $NTIREKIT_TORCH (a CUDA build of torch on the runner), then torch must see DEVICE
#   tests      the GPU tests: pytest -m gpu (on cpu they are collected and skipped: exit status 5 or 0 is fine)
#   reference  the reference folder: --against DIR, else metrics/<fingerprint id of DEVICE here> (the folder
#              `ntirekit regress` picks by itself); it must exist. Written as id=... to $GITHUB_OUTPUT when set.
#   regress    ntirekit regress --against that folder --device DEVICE: counts identical, PSNR drop <= 0.01 dB,
#              runtime / baseline runtime up <= $TOLERANCE_RUNTIME (default 0.10); --data $NTIREKIT_REGRESS_DATA
#              when set; the fresh records in --out DIR (default regress-results)
# Environment: PYTHON, NTIREKIT (default .venv/bin/python, .venv/bin/ntirekit), NTIREKIT_TORCH (install),
# NTIREKIT_WEIGHTS (the upstream checkpoints of the PSNR records), NTIREKIT_REGRESS_DATA, TOLERANCE_RUNTIME.
# The CPU run compares with the recorded CPU figures (metrics/cpu-intel-xeon-t2-fp32-torch2.13.0: complexity and
# PSNR on the sample images; a CPU's fingerprint names its model, so CI names that folder with --against).
# Exit status: that of the first step that fails (2: bad usage).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '5,21p' "$0" | sed 's/^# \{0,1\}//'; }
[ $# -ge 1 ] || { usage >&2; exit 2; }
DEVICE="$1"; shift
case "$DEVICE" in
  cuda|cpu) ;;
  -h|--help) usage; exit 0 ;;
  *) echo "gpu_regress: DEVICE is cuda or cpu, not '$DEVICE'" >&2; exit 2 ;;
esac
AGAINST=""
OUT="regress-results"
STEPS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --against) [ $# -ge 2 ] || { echo "gpu_regress: --against needs a folder" >&2; exit 2; }; AGAINST="$2"; shift ;;
    --out) [ $# -ge 2 ] || { echo "gpu_regress: --out needs a folder" >&2; exit 2; }; OUT="$2"; shift ;;
    device|install|tests|reference|regress) STEPS+=("$1") ;;
    *) echo "gpu_regress: unknown argument '$1' (steps: device install tests reference regress)" >&2; exit 2 ;;
  esac
  shift
done
[ ${#STEPS[@]} -gt 0 ] || STEPS=(device tests reference regress)
PY="${PYTHON:-.venv/bin/python}"
NTIREKIT="${NTIREKIT:-.venv/bin/ntirekit}"

step_device() {
  if [ "$DEVICE" = cuda ]; then
    nvidia-smi
  else
    grep -m1 "model name" /proc/cpuinfo || uname -m
  fi
}

step_install() {
  ./setup.sh                                       # reads $NTIREKIT_TORCH
  "$PY" - "$DEVICE" <<'EOF'
import sys

import torch

if sys.argv[1] == "cuda":
    assert torch.cuda.is_available(), "torch has no CUDA on this runner"
    print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))
else:
    print(torch.__version__, "cpu")
EOF
}

step_tests() {
  local status=0
  "$PY" -m pytest -m gpu -q -p no:cacheprovider || status=$?
  [ "$status" -eq 0 ] || [ "$status" -eq 5 ]       # 5: no GPU test collected
}

own_id() {      # the fingerprint id of DEVICE here: the folder name `ntirekit regress` picks without --against
  "$PY" -c "import sys; from ntirekit.core.device import fingerprint, fingerprint_id, resolve_device
print(fingerprint_id(fingerprint(resolve_device(sys.argv[1]))))" "$DEVICE"
}

reference_folder() {   # $1: own_id's answer when already known (it starts python and torch)
  if [ -n "$AGAINST" ]; then echo "$AGAINST"; else echo "metrics/${1:-$(own_id)}"; fi
}

step_reference() {
  local folder own
  own=$(own_id)
  folder=$(reference_folder "$own")
  echo "reference figures: $folder (this machine's own folder: metrics/$own)"
  if [ -n "${GITHUB_OUTPUT:-}" ]; then
    echo "id=$(basename "$folder")" >>"$GITHUB_OUTPUT"
  fi
  if [ ! -d "$folder" ]; then
    echo "::error::no reference figures in $folder: record them with" \
         "'ntirekit regress --record --device $DEVICE ...' and commit metrics/$own/" >&2
    return 1
  fi
}

step_regress() {
  local folder
  folder=$(reference_folder)
  "$NTIREKIT" regress --against "$folder" --device "$DEVICE" --tolerance-psnr 0.01 \
    --tolerance-runtime "${TOLERANCE_RUNTIME:-0.10}" --baseline-entry rlfn_ntire \
    ${NTIREKIT_REGRESS_DATA:+--data "$NTIREKIT_REGRESS_DATA"} --out "$OUT"
}

for step in "${STEPS[@]}"; do
  echo "== gpu_regress $DEVICE: $step"
  "step_$step"
done
