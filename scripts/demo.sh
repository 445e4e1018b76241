#!/usr/bin/env bash
# The main job end to end on an embedded default: a generated demo library, a SQLite catalog,
# Prefect's local API and a Dask LocalCluster. Everything lands in demo-output/.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${DEMO_OUT:-demo-output}"
export VOCALMINE_DATA_DIR="$OUT/data"
export PREFECT_HOME="${PREFECT_HOME:-$PWD/$OUT/prefect}"
export PREFECT_SERVER_ANALYTICS_ENABLED=false
VM=.venv/bin/vocalmine
rm -rf "$OUT"
mkdir -p "$OUT"

echo "== 1. build a synthetic demo library (with ground truth beside it)"
$VM library build --from synthetic --count 6 --duration 40-50 --seed 7 --out "$OUT/library"

echo "== 2. scan it into the catalog"
$VM scan "$OUT/library"
