"""Operations test kit: a small real-audio library, a Dask cluster of real processes, the CLI in
a subprocess, and snapshots of what a mining run left behind.

Good pairs come from MIR-1K karaoke clips (left channel accompaniment, right channel vocals):
the original is accompaniment + vocals (FLAC), the instrumental the accompaniment alone, delayed
and quieter (MP3), so mining has real alignment and gain work to do. A lone instrumental gives a
rejection reason too. Snapshots describe a mining result by file paths, never by row ids, so two
catalogs mined in different orders compare equal when they hold the same facts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.orm import aliased

from vocalmine.core.audio import load_audio, save_audio
from vocalmine.storage.catalog import Pair, Rejection, Track, open_catalog

SR = 16000
SONGS = ("amy_10", "leon_1", "yifen_1", "jmzen_1", "geniusturtle_1", "amy_11", "amy_12", "amy_13")


def _song(mir1k: Path, name: str, clips: int) -> tuple[np.ndarray, np.ndarray]:
    paths = sorted(mir1k.glob(f"{name}_*.flac"))[:clips]
    if not paths:
        raise FileNotFoundError(f"{mir1k}: no clips of {name}")
    audio = np.concatenate([load_audio(p)[0] for p in paths], axis=1)
    return audio[0], audio[1]


def make_library(root: Path, mir1k: Path, pairs: int = 2, clips: int = 2) -> Path:
    """Write ``pairs`` (original, instrumental) pairs and one lone instrumental under ``root``."""
    rng = np.random.default_rng(7)
    for name in SONGS[:pairs]:
        acc, voc = _song(mir1k, name, clips)
        artist, title = name.split("_")[0].title(), f"Song {name.split('_')[1]}"
        delay = int(rng.integers(SR // 20, SR // 2))
        instrumental = np.concatenate([np.zeros(delay, np.float32), 0.7 * acc])
        tags = {"artist": artist, "title": title}
        save_audio(root / artist / f"{title}.flac", 0.5 * (acc + voc)[None], SR, tags=tags)
        save_audio(
            root / artist / f"{title} (Instrumental).mp3",
            0.5 * instrumental[None],
            SR,
            bitrate_kbps=128,
            tags={**tags, "title": f"{title} (Instrumental)"},
        )
    acc, _ = _song(mir1k, SONGS[pairs], 1)
    save_audio(
        root / "Lone" / "Alone (Instrumental).flac",
        0.5 * acc[None],
        SR,
        tags={"artist": "Lone", "title": "Alone (Instrumental)"},
    )
    return root


def snapshot(catalog_url: str, shard_root: str, dataset: str) -> dict[str, Any]:
    """What a mining run left behind, keyed by file paths: tracks, pairs, reasons, shard rows."""
    catalog = open_catalog(catalog_url)
    original, instrumental = aliased(Track), aliased(Track)
    with catalog.session() as session:
        tracks = sorted(
            (t.path, t.status, t.error_reason, t.content_hash)
            for t in session.execute(select(Track)).scalars()
        )
        rows = session.execute(
            select(Pair, original.path, instrumental.path)
            .join(original, Pair.original_id == original.id)
            .join(instrumental, Pair.instrumental_id == instrumental.id)
        ).all()
        pair_paths = {p.id: (o, i) for p, o, i in rows}
        pairs = sorted(
            (o, i, p.status, p.reason, p.offset_samples, p.segments, p.split, p.claimed_by)
            for p, o, i in rows
        )
        rejections = Counter(
            (r.reason, r.stage, pair_paths.get(r.pair_id))
            for r in session.execute(select(Rejection)).scalars()
        )
    catalog.dispose()
    base = Path(shard_root) / dataset
    shard_rows: list[tuple[Any, ...]] = []
    for part in sorted(base.glob("*/part-*.parquet")):
        table = pq.read_table(part, columns=["pair_id", "segment_index", "split"])
        for pair_id, index, split in zip(
            *(table[c].to_pylist() for c in table.column_names), strict=True
        ):
            shard_rows.append((pair_paths.get(pair_id), index, split))
    manifest = (
        json.loads((base / "manifest.json").read_text())
        if (base / "manifest.json").exists()
        else {}
    )
    leftovers = (
        sorted(
            str(p.relative_to(base))
            for p in base.rglob("*")
            if p.is_file()
            and not (
                p.name == "manifest.json" or (p.suffix == ".parquet" and p.name.startswith("part-"))
            )
        )
        if base.exists()
        else []
    )
    return {
        "tracks": tracks,
        "pairs": pairs,
        "rejections": sorted(rejections.items(), key=repr),
        "shard_rows": sorted(shard_rows, key=repr),
        "manifest_counts": manifest.get("counts"),
        "leftover_files": leftovers,
    }


ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from vocalmine.cli import main; main()"]


@contextmanager
def dask_cluster(workers: int = 2, env: dict[str, str] | None = None) -> Iterator[str]:
    """A ``dask scheduler`` and ``workers`` ``dask worker`` processes on loopback; yields the
    scheduler address. Workers get ``env`` (PREFECT_API_URL, catalog URL) like compose's do."""
    from distributed import Client

    from tests.pg import free_port

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    common = {"cwd": ROOT, "start_new_session": True, "stdout": subprocess.DEVNULL}
    full_env = {**os.environ, **(env or {})}
    processes = [
        subprocess.Popen(
            [*dask, "--host", "127.0.0.1", "--port", str(port), "--dashboard-address", ":0"],
            env=full_env,
            stderr=subprocess.DEVNULL,
            **common,
        )
    ]
    try:
        for index in range(workers):
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "distributed.cli.dask_worker",
                        address,
                        "--nthreads",
                        "1",
                        "--name",
                        f"worker-{index}",
                        "--no-dashboard",
                    ],
                    env=full_env,
                    stderr=subprocess.DEVNULL,
                    **common,
                )
            )
        with Client(address, timeout=120) as client:
            client.wait_for_workers(workers, timeout=180)
        yield address
    finally:
        for process in reversed(processes):
            stop_group(process)


def stop_group(process: subprocess.Popen[Any], timeout: float = 20) -> None:
    """SIGTERM a process group, then SIGKILL it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            break
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            continue
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # leftovers of a group whose leader exited


def run_cli(
    args: list[str], env: dict[str, str], timeout: float = 900, wrap: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``vocalmine ARGS`` in a fresh process (optionally under ``wrap``, e.g. setpriv)."""
    return subprocess.run(
        [*(wrap or []), *CLI, *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        start_new_session=True,
    )


def spawn_cli(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``vocalmine ARGS`` started in its own process group (so a kill reaches its workers)."""
    with open(log, "ab") as handle:
        return subprocess.Popen(
            [*CLI, *args],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _count(database: Path, table: str) -> int:
    import sqlite3

    if not database.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1) as connection:
            return connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    except sqlite3.Error:  # not created yet, or busy: look again
        return 0


def milestone_reached(name: str, data_dir: Path) -> bool:
    """Observable progress points of a mining run on a SQLite catalog under ``data_dir``."""
    database = data_dir / "catalog.db"
    if name == "scanned":
        return _count(database, "tracks") > 0
    if name == "fingerprinted":
        return any((data_dir / "fingerprint-index").glob("*/objects/*/*.fp"))
    if name == "swept":
        return _count(database, "swept_contents") > 0
    if name == "sharded":
        return any((data_dir / "shards").glob("*/*/part-*.parquet"))
    raise ValueError(f"unknown milestone {name}")


MILESTONES = ("scanned", "fingerprinted", "swept", "sharded")


def kill_at(
    milestone: str, args: list[str], env: dict[str, str], data_dir: Path, timeout: float = 900
) -> bool:
    """Run ``vocalmine ARGS`` and SIGKILL its whole process group once ``milestone`` is seen;
    False when the run finished first."""
    import time

    process = spawn_cli(args, env, data_dir.parent / f"killed-{milestone}.log")
    deadline = time.monotonic() + timeout
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if milestone_reached(milestone, data_dir):
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=60)
                return True
            time.sleep(0.05)
        return False
    finally:
        stop_group(process)
