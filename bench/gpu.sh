#!/usr/bin/env bash
# GPU check and training benchmark in one call; see bench/gpu.py and docs/benchmarks.md.
#
#   bench/gpu.sh [--cpu] [--out DIR] [--shards DIR] [--steps N] [KIND[:PRESET] ...]
#
# Runs this checkout without installing it: the repository goes on PYTHONPATH, and vocalmine's
# stage packages resolve through the vocalmine/<stage> links. Needs torch, numpy, pyarrow, rich
# and the shard sets of `python bench/gpu_prepare.py` (bench/gpu-shards/). Results: gpu.json in
# --out (default $OUT, else bench/results). PYTHON picks the interpreter (default python3).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
exec "${PYTHON:-python3}" "$ROOT/bench/gpu.py" "$@"
