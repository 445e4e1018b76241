"""Mining benchmark, part 1: build (or reuse) a test library, run ``vocalmine mine`` on it in a
fresh catalog, and read back what the catalog and the bench's own Prefect database say.

Used by ``bench/mining.py`` (the entry point; its docstring describes the whole benchmark).
"""

from __future__ import annotations

import inspect
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.truth import truth_from_manifest
from vocalmine.core.atomic import atomic_write_text
from vocalmine.testlib.builder import build_library, default_truth_dir

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
console = Console(width=200)


# --- library and mine run -----------------------------------------------------------------------


def library_key(
    source: str,
    count: int | None,
    seed: int,
    durations: tuple[float, float],
    profile: str = "default",
) -> str:
    """Cache name of a built library: everything that changes its bytes."""
    key = f"{source}-n{count if count else 'all'}-seed{seed}"
    if source == "synthetic":
        key += f"-d{durations[0]:g}-{durations[1]:g}"
    if profile != "default":
        key += f"-{profile}"
    return key


def _profile_kwargs(profile: str) -> dict[str, Any]:
    """``profile=`` for :func:`build_library`, only when not the default (older builders have
    no such keyword)."""
    if profile == "default":
        return {}
    if "profile" not in inspect.signature(build_library).parameters:
        sys.exit(f"--profile {profile}: this library builder has no profiles yet")
    return {"profile": profile}


def write_truth(truth: dict[str, Any], path: Path) -> None:
    """Write a truth file (atomically; left alone when the bytes are the same)."""
    text = json.dumps(truth, indent=2, ensure_ascii=False) + "\n"
    if path.is_file() and path.read_text("utf-8") == text:
        return
    atomic_write_text(path, text)


def ensure_library(
    source: str,
    count: int | None,
    seed: int,
    durations: tuple[float, float],
    workdir: Path,
    profile: str = "default",
) -> dict[str, Any]:
    """The cached library of these arguments, built first when missing (atomically, by rename),
    with its manifest and the manifest as a truth (also written to ``<truth dir>/truth.json``)."""
    home = workdir / "libraries" / library_key(source, count, seed, durations, profile)
    library = home / "library"
    truth = default_truth_dir(library)
    built_s, cached = 0.0, (truth / "manifest.json").is_file()
    if not cached:
        partial = home.with_name(home.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        console.log(f"building the {source} library ({count or 'all'} songs) in {home}")
        start = time.perf_counter()
        build_library(
            source,
            partial / "library",
            count=count,
            seed=seed,
            duration_range=durations,
            data_root=DATA,
            **_profile_kwargs(profile),
        )
        built_s = time.perf_counter() - start
        shutil.rmtree(home, ignore_errors=True)
        partial.rename(home)
    manifest = json.loads((truth / "manifest.json").read_text("utf-8"))
    converted = truth_from_manifest(manifest)
    write_truth(converted, truth / "truth.json")
    return {
        "library": library,
        "truth": truth,
        "manifest": manifest,
        "truth_data": converted,
        "cached": cached,
        "build_s": built_s,
    }


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def run_mine(
    library: Path,
    run_dir: Path,
    segment_skip_s: float,
    workers: int,
    preset: str,
    dask_address: str | None = None,
    prefect_api_url: str | None = None,
) -> dict[str, Any]:
    """``vocalmine mine`` on a fresh catalog in a subprocess: wall time and CPU of its tree.

    With ``dask_address`` and ``prefect_api_url`` it runs on a cluster and server that are
    already up (a standing deployment); their processes are not the command's children, so the
    CPU then counts the command only.
    """
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    config = run_dir / "vocalmine.toml"
    config.write_text(
        f"data_dir = {_toml_str(str(run_dir / 'data'))}\n"
        f"segment_skip_s = {segment_skip_s}\n"
        f"dask_workers = {workers}\n"
        f"stft_preset = {_toml_str(preset)}\n"
        + (f"dask_address = {_toml_str(dask_address)}\n" if dask_address else "")
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOCALMINE_", "PREFECT_"))}
    env.update(
        PREFECT_HOME=str(run_dir.parents[1] / "prefect"),
        PREFECT_LOGGING_LEVEL="WARNING",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180",
        PYTHONPATH=str(ROOT),
    )
    if prefect_api_url:
        env["PREFECT_API_URL"] = prefect_api_url
    command = [
        sys.executable,
        "-c",
        "from vocalmine.cli import main; main()",
        "mine",
        str(library),
        "--config",
        str(config),
    ]
    log = run_dir / "mine.log"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.run(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise SystemExit(
            f"vocalmine mine failed (exit {proc.returncode}); {log}:\n" + "\n".join(tail)
        )
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    standing = bool(dask_address or prefect_api_url)
    run = {
        "wall_s": wall,
        "cpu_s": None if standing else cpu,
        "config": str(config),
        "log": str(log),
        "standing_deployment": {"dask_address": dask_address, "prefect_api_url": prefect_api_url},
    }
    atomic_write_text(run_dir / "run.json", json.dumps(run, indent=2))
    return run


# --- catalog ------------------------------------------------------------------------------------


def read_catalog(config: Path, library: Path) -> dict[str, Any]:
    """Tracks (by library-relative path) with their reasons, every pair, and the run's times."""
    from sqlalchemy import select

    from vocalmine.core.settings import get_settings
    from vocalmine.storage.catalog import MiningRun, Pair, Rejection, Track, open_catalog

    catalog = open_catalog(get_settings(config).catalog_url)
    root = str(library.resolve()) + os.sep

    def rel(path: str) -> str:
        return path[len(root) :] if path.startswith(root) else path

    with catalog.session() as session:
        tracks = {t.id: t for t in session.execute(select(Track)).scalars()}
        reasons: dict[str, set[str]] = {rel(t.path): set() for t in tracks.values()}
        for t in tracks.values():
            if t.error_reason:
                reasons[rel(t.path)].add(t.error_reason)
        track_rejections = select(Rejection).where(Rejection.track_id.is_not(None))
        for r in session.execute(track_rejections).scalars():
            reasons[rel(tracks[r.track_id].path)].add(r.reason)
        details = {
            r.pair_id: r.detail
            for r in session.execute(select(Rejection).where(Rejection.pair_id.is_not(None)))
            .scalars()
            .all()
        }
        pairs = [
            {
                "id": p.id,
                "original": rel(tracks[p.original_id].path),
                "instrumental": rel(tracks[p.instrumental_id].path),
                "source": p.source,
                "status": p.status,
                "reason": p.reason,
                "detail": details.get(p.id),
                "offset_samples": p.offset_samples,
                "offset_s": p.offset_s,
                "sample_rate": p.sample_rate,
                "polarity": p.polarity,
                "gain_db": p.gain_db,
                "fp_ratio": p.fp_ratio,
                "quality": p.quality,
                "segments": p.segments,
            }
            for p in session.execute(select(Pair)).scalars()
        ]
        runs = session.execute(select(MiningRun)).scalars().all()
        flow_s = [(r.finished_at - r.started_at).total_seconds() for r in runs if r.finished_at]
        flow_run_id = runs[-1].flow_run_id if runs else None
    catalog.dispose()
    return {
        "track_reasons": {k: sorted(v) for k, v in reasons.items()},
        "pairs": pairs,
        "flow_body_s": flow_s[-1] if flow_s else None,
        "flow_run_id": flow_run_id,
    }


PHASES = (
    "scan",
    "match + cluster start",
    "fingerprint",
    "verify + discovery",
    "process pairs",
    "rest",
)


def flow_timeline(prefect_home: Path, flow_run_id: str | None) -> dict[str, Any] | None:
    """Where one mine flow run spent its time, from the bench's own throw-away Prefect database.

    Task runs give each task kind's window (first start to last end, seconds from the flow's
    start) and busy time (sum of task durations); the gaps between windows are work the flow
    does in its own process (title matching, fingerprint verification and discovery). ``None``
    when the database or the run is not there.
    """
    db_path = prefect_home / "prefect.db"
    if not flow_run_id or not db_path.is_file():
        return None
    try:
        with closing(sqlite3.connect(db_path)) as db:
            flow = db.execute(
                "SELECT start_time, end_time FROM flow_run WHERE id = ?", (flow_run_id,)
            ).fetchone()
            rows = db.execute(
                "SELECT task_key, start_time, end_time FROM task_run WHERE flow_run_id = ? "
                "AND start_time IS NOT NULL AND end_time IS NOT NULL",
                (flow_run_id,),
            ).fetchall()
    except sqlite3.Error:
        return None
    if not flow or not flow[0] or not flow[1]:
        return None
    origin = datetime.fromisoformat(flow[0])

    def seconds(stamp: str) -> float:
        return (datetime.fromisoformat(stamp) - origin).total_seconds()

    tasks: dict[str, dict[str, float]] = {}
    for key, start, end in rows:
        name = key.rsplit("-", 1)[0].removesuffix("_task")
        t = tasks.setdefault(name, {"count": 0, "busy_s": 0.0, "start_s": 1e30, "end_s": 0.0})
        t["count"] += 1
        t["busy_s"] += seconds(end) - seconds(start)
        t["start_s"] = min(t["start_s"], seconds(start))
        t["end_s"] = max(t["end_s"], seconds(end))
    total = seconds(flow[1])
    scan, fp, proc = tasks.get("scan"), tasks.get("fingerprint"), tasks.get("process_pairs")
    phases = None
    if scan and fp and proc:
        after_fp = min(t["start_s"] for n, t in tasks.items() if n in ("orient", "process_pairs"))
        phases = {
            "scan": scan["end_s"] - scan["start_s"],
            "match + cluster start": fp["start_s"] - scan["end_s"],
            "fingerprint": fp["end_s"] - fp["start_s"],
            "verify + discovery": after_fp - fp["end_s"],
            "process pairs": proc["end_s"] - after_fp,
        }
        phases["rest"] = total - sum(phases.values())
    return {"flow_s": total, "tasks": tasks, "phases": phases}
