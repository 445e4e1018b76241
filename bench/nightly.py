"""Nightly mining of a large library, end to end: ``vocalmine mine`` on N real-audio files, then
a run with nothing new and a run where 1 % of the files are new.

Where ``bench/scale.py`` measures the discovery sweep alone, this measures what an operator
waits for: the real command with its temporary Prefect server, its LocalCluster, the scan of
every file, the catalog and the index. The library is made from the 415 MIR-1K clips
(``../shared/data/mir1k``, mixture = L + R): file ``k`` of a clip is the clip resampled by
``1 + 0.03 k`` and written at 16 kHz (pitch and tempo move together, as a tape-speed change
would), so files of one clip share no landmark hashes and the library holds about as many
relations as a real one of singles (the MIR-1K songs whose clips share a karaoke backing
do match). No file is an instrumental by its title: the flow scans, fingerprints, sweeps and
decides, and there are no pairs to process.

    .venv/bin/python bench/nightly.py [--tracks 10000] [--json bench/results/nightly.json]

Prints a table and writes the JSON (one row per run: files, wall and CPU seconds of the
command and its workers, what the scan and discovery reported).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vocalmine.storage import mining_store as store  # noqa: E402
from vocalmine.storage.catalog import open_catalog  # noqa: E402

MIR1K = ROOT.parent / "shared" / "data" / "mir1k"
SR = 16_000
RATE_STEP = 0.03


def build_library(root: Path, tracks: int) -> list[Path]:
    """Write ``tracks`` FLAC files (see the module docstring); returns them in library order."""
    clips = sorted(MIR1K.glob("*.flac"))
    if not clips:
        raise SystemExit(f"{MIR1K}: the MIR-1K clips are needed (see ../shared/data/README.md)")
    written: list[Path] = []
    mixes: dict[Path, np.ndarray] = {}
    for n in range(tracks):
        k, clip = divmod(n, len(clips))
        if clip not in mixes:
            audio, sr = sf.read(clips[clip], dtype="float32", always_2d=True)
            assert sr == SR, f"{clips[clip]}: {sr} Hz, expected {SR}"
            mixes[clip] = 0.5 * audio.sum(axis=1)
        singer, song, part = clips[clip].stem.split("_", 2)
        audio = mixes[clip] if k == 0 else soxr.resample(mixes[clip], SR * (1 + RATE_STEP * k), SR)
        path = root / singer / f"Take {k:02d}" / f"{song} part {part}.flac"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, audio, SR, subtype="PCM_16")
        written.append(path)
    return written


def run_mine(library: Path, env: dict[str, str], timeout: float) -> dict[str, Any]:
    """One ``vocalmine mine`` run: wall and CPU seconds (the command and every process it
    started and waited for) and the counts the run recorded."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "vocalmine"), "mine", str(library)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        start_new_session=True,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"vocalmine mine failed ({result.returncode}): {result.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    counts = _counts(library, Path(env["VOCALMINE_DATA_DIR"]))
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), **counts}


def _counts(library: Path, data_dir: Path) -> dict[str, Any]:
    """What the last run of ``library`` recorded in the catalog: its scan and discovery counts."""
    catalog = open_catalog(f"sqlite:///{data_dir / 'catalog.db'}")
    try:
        last = store.previous_run(catalog, str(library.resolve()), sys.maxsize)
    finally:
        catalog.dispose()
    summary = last[1] if last else {}
    return {k: summary.get(k) for k in ("scan", "discovery")}


def _brief(counts: dict[str, Any] | None, keys: tuple[str, ...]) -> str:
    """``key n, key n`` for the table."""
    return ", ".join(f"{k} {(counts or {}).get(k, '–')}" for k in keys)


def main() -> None:
    """Build the library, mine it three times, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=10_000, help="files in the first run")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "nightly.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vocalmine-nightly-"))
    try:
        library = work / "library"
        start = time.perf_counter()
        extra = max(1, args.tracks // 100)
        files = build_library(library, args.tracks + extra)
        late = work / "late"
        for path in files[args.tracks :]:  # the night's arrivals wait outside the library
            target = late / path.relative_to(library)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(path, target)
        build_s = time.perf_counter() - start
        env = {
            "VOCALMINE_DATA_DIR": str(work / "data"),
            "VOCALMINE_DASK_WORKERS": str(args.workers),
            "PREFECT_HOME": str(work / "prefect"),
        }
        rows = []
        for name in ("first run", "nothing new", "+1 % new"):
            if name == "+1 % new":
                shutil.copytree(late, library, dirs_exist_ok=True)
            files_now = sum(1 for p in library.rglob("*.flac"))
            rows.append({"run": name, "files": files_now, **run_mine(library, env, args.timeout)})
            print(rows[-1], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = Table(title=f"vocalmine mine, nightly runs ({args.tracks} tracks)")
    for column in ("run", "files", "wall s", "CPU s", "scan", "discovery"):
        numeric = column in ("files", "wall s", "CPU s")
        table.add_column(column, justify="right" if numeric else "left")
    for row in rows:
        table.add_row(
            row["run"],
            str(row["files"]),
            f"{row['wall_s']:.1f}",
            f"{row['cpu_s']:.1f}",
            _brief(row.get("scan"), ("new", "updated", "missing")),
            "skipped"
            if (row.get("discovery") or {}).get("skipped")
            else _brief(row.get("discovery"), ("swept", "checks", "discovered")),
        )
    Console(width=200).print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "benchmark": "nightly",
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "command": " ".join(["bench/nightly.py", *sys.argv[1:]]),
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "library_build_s": round(build_s, 1),
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
