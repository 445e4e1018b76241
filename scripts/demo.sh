#!/usr/bin/env bash
# The main job end to end on an embedded default: a generated demo library, a SQLite catalog,
# Prefect's local API and a Dask LocalCluster. Everything lands in demo-output/.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${DEMO_OUT:-demo-output}"
rm -rf "$OUT"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
export VOCALMINE_DATA_DIR="$OUT/data"
export PREFECT_HOME="$OUT/prefect"
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=180
VM=.venv/bin/vocalmine

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. build a synthetic demo library (ground truth kept beside it, in library.truth/)"
# 12 songs: every decoy once, five true pairs, and on four of them an a cappella (tagged), an
# untagged a cappella, a re-encoded copy of an original and one of an instrumental.
$VM library build --from synthetic --count 12 --duration 60-75 --seed 7 --out "$OUT/library"
MANIFEST="$OUT/library.truth/manifest.json"

step "2. scan it into the catalog"
$VM scan "$OUT/library"

step "3. mine (original, instrumental) pairs into Parquet shards (Prefect flow on a Dask LocalCluster)"
$VM mine "$OUT/library"

step "4. explain decisions: a mined pair, and a decoy that must be rejected (the a cappella)"
$VM pairs --why 1
ACAPPELLA="$(.venv/bin/python -c "import json,sys; m=json.load(open(sys.argv[1])); print(next(d['paths'][0] for d in m['decoys'] if d['kind'] == 'a_cappella'))" "$MANIFEST")"
echo "-- the a cappella decoy $ACAPPELLA (expected: never mined; reason a_cappella, or never proposed)"
$VM pairs --why "$OUT/library/$ACAPPELLA"
REJECTED="$(.venv/bin/python -c "import sqlite3,sys; db=sqlite3.connect(sys.argv[1]); print(db.execute(\"SELECT id FROM pairs WHERE status = 'rejected' ORDER BY reason NOT IN ('a_cappella', 'role_mismatch', 'duplicate', 'same_audio'), id LIMIT 1\").fetchone()[0])" "$VOCALMINE_DATA_DIR/catalog.db")"
echo "-- a rejected pair, with its reason and every check"
$VM pairs --why "$REJECTED"

step "5. train a tiny U-Net for a few steps on CPU and register it"
$VM train --width 4 --max-steps 20 --steps-per-epoch 10 --batch-size 4 --workers 0 --promote

step "6. separate one demo song with the demo model"
SONG="$(.venv/bin/python -c "import json,sys; m=json.load(open(sys.argv[1])); print(next(s['original']['path'] for s in m['songs'] if s.get('expected') == 'pair'))" "$MANIFEST")"
$VM separate "$OUT/library/$SONG" -o "$OUT/separated"

step "7. import the pretrained Spleeter 2-stems model into the default data dir (./vocalmine-data)"
# The demo's own model above is a 20-step toy; the pretrained one is what `vocalmine separate`
# uses by default once imported (until you train and register a model named vocalmine).
env -u VOCALMINE_DATA_DIR $VM models import spleeter-2stems
env -u VOCALMINE_DATA_DIR $VM models list

step "8. separate a real-music clip with it"
CLIP="$(ls ../shared/data/musdb18-7/test/*.stem.mp4 2>/dev/null | head -n 1 || true)"
if [ -z "$CLIP" ]; then
  echo "(../shared/data/musdb18-7 is absent: separating the demo song instead)"
  CLIP="$OUT/library/$SONG"
fi
env -u VOCALMINE_DATA_DIR $VM separate "$CLIP" -o "$OUT/pretrained"

step "done"
echo "library:   $OUT/library"
echo "catalog:   $VOCALMINE_DATA_DIR/catalog.db"
echo "shards:    $VOCALMINE_DATA_DIR/shards"
echo "models:    $VOCALMINE_DATA_DIR/models"
echo "stems:     $(find "$OUT/separated" -type f | sort | tr '\n' ' ')"
echo "pretrained: $(find "$OUT/pretrained" -type f | sort | tr '\n' ' ')"
echo
echo "Separate your own song with the pretrained model:"
echo "  .venv/bin/vocalmine separate path/to/song.mp3 -o separated/"
