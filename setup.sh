#!/usr/bin/env bash
# ntirekit set-up: system tools for video (x265 encoder, ffmpeg decoder) and for sandboxing untrusted entries
# (bubblewrap), a virtual environment, torch, the kit.
#   ./setup.sh                      # CPU build of torch 2.13.0 (the pinned build CI uses)
#   NTIREKIT_TORCH=torch ./setup.sh # whatever torch your platform's index gives (CUDA builds)
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v x265 >/dev/null || ! command -v ffmpeg >/dev/null || ! command -v bwrap >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq x265 ffmpeg bubblewrap >/dev/null
  else
    echo "setup: x265 and ffmpeg are needed for 'ntirekit data compress', bubblewrap (bwrap) to sandbox untrusted" \
         "entries (e.g. sudo apt-get install x265 ffmpeg bubblewrap)" >&2
  fi
fi

python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q "${NTIREKIT_TORCH:-torch==2.13.0}"
.venv/bin/pip install -q -e '.[test]'
echo "setup: done. Run the tests with: .venv/bin/pytest"
