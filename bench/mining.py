"""Mining benchmark (issue 3): the mine flow end to end on built libraries, scored against truth.

For each source (``synthetic``, ``mir1k``, ``musdb``) the benchmark

1. builds a test library with :func:`vocalmine.testlib.builder.build_library` (cached in the
   work directory, so a re-run with the same ``--workdir`` reuses it; ``--profile`` picks the
   builder's profile) and reads the answer key ``<library>.truth/manifest.json``, converted to
   the truth format (:func:`bench.truth.truth_from_manifest`, written beside it as
   ``truth.json``);
2. runs ``vocalmine mine LIBRARY --config CFG`` in a fresh catalog (a subprocess, Prefect on a
   throw-away ``PREFECT_HOME``, a Dask LocalCluster of ``--workers`` processes) and times it;
3. scores what the catalog says against the truth:

   * **pairs and decoys** — :func:`bench.truth.score` (``docs/truth-format.md``): precision =
     mined pairs that are true pairs / mined pairs; recall = truth pairs (manifest
     ``expected == "pair"``) that were mined / all of them. A pair mined from a copy of its
     original (or instrumental) counts as the true pair once; a second mining of the same truth
     pair is a false positive. Every decoy and single passes or fails by what was mined, with
     the catalog's reasons about it next to the reasons expected.
   * **alignment** — ``Pair.offset_samples`` (decoded files, original's rate) minus the truth
     from the manifest with the codec delays taken into account:
     ``d = delay_orig − offset_s · sr_orig − delay_instr · sr_orig / sr_instr`` (lameenc MP3s
     decode ``codec_delay_samples`` = 1105 samples late, lossless files 0), rounded to the
     nearest sample. As a cross-check the offset is also *measured*: cross-correlation of the
     decoded instrumental against the true accompaniment stem (whitened, over the whole overlap).
   * **gain** — ``Pair.gain_db`` minus the oracle gain: the least-squares gain of the decoded
     instrumental, placed at the true offset, onto the true accompaniment as it sits in the
     decoded original (stem shifted by the original's codec delay and scaled by its codec gain).
   * **derived vocals** — SDR (plain ``10 log10(‖s‖² / ‖s − ŝ‖²)`` over the whole song, at the
     STFT preset's rate and channels) of the half-wave vocals with the mixture's phase
     (:func:`mining.vocals.derive` + :func:`mining.vocals.reconstruct_vocals`) against the true
     vocal stem, from the catalog's offset, polarity and gain, next to the same derivation from
     the same decoded instrumental at the true offset with the oracle gain, and from the clean
     accompaniment stem.
   * **throughput** — wall time of the ``mine`` command × cores used / mined pairs (cores =
     Dask worker processes, one thread each, at most the machine's cores), and the CPU seconds
     the command and all its children used per mined pair (less sensitive to a shared machine).
     By default the command starts its own LocalCluster and temporary Prefect server, as
     ``vocalmine mine`` does out of the box; ``--dask-address`` and ``--prefect-api-url`` run it
     on a standing cluster and server instead (the CPU figure is then left out: those
     processes are not the command's).
     Fingerprint speed: real-time factor of :func:`mining.fingerprint.fingerprint` on decoded
     originals of the library, and of decode + fingerprint as the flow's task does it.
   * **where the time goes** — the flow's phases (scan, title matching and cluster start,
     fingerprint tasks, verification and discovery in the flow's process, pair tasks) from the
     task runs in the bench's own Prefect database, and the seconds per stage of
     :func:`mining.pair_pipeline.process_pair` on a few pairs run one at a time.

Each mine run's time is kept beside its catalog (``runs/<library>/run.json``), so
``--rescore`` scores the last run again without mining (for changes to the scoring only).

``--library DIR --truth FILE`` scores any existing library instead (nothing is built): the mine
flow runs on ``DIR`` and the catalog is scored against the answer key ``FILE`` (the truth format,
``docs/truth-format.md``). Alignment and gain errors come from the truth's optional ``offset_s``
and ``gain_db`` (the catalog's conventions); SDR needs the true stems, so it is measured only
when ``FILE`` is a library builder ``manifest.json`` (then everything above is measured).

Prints rich tables and writes ``bench/results/mining.json`` (``--results`` to change). Never
part of ``make test``: a full run (60 synthetic songs of 3–4 min, all MIR-1K songs, all 50
MUSDB18-7 previews) takes well over half an hour on two shared cores.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import sqlite3  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from contextlib import closing  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.markup import escape  # noqa: E402
from rich.table import Table  # noqa: E402
from scipy.signal import correlate  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vocalmine.mining.alignment import Alignment, apply_alignment, downmix  # noqa: E402
from vocalmine.mining.fingerprint import DEFAULT_PARAMS, DEFAULT_THRESHOLDS, fingerprint  # noqa: E402
from vocalmine.mining.vocals import derive, reconstruct_vocals, sdr_db, to_preset  # noqa: E402

from bench.truth import (  # noqa: E402
    is_manifest,
    load_truth,
    pair_aliases,
    score,
    truth_from_manifest,
)
from vocalmine.core.audio import load_audio  # noqa: E402
from vocalmine.core.stft import STFTPreset, get_preset  # noqa: E402
from vocalmine.testlib.builder import build_library, default_truth_dir, total_minutes  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results" / "vocalmine.mining.json"
SOURCES = ("synthetic", "mir1k", "musdb")
# Per source: default song count (None = every song the source has) and the segment skip.
DEFAULTS: dict[str, dict[str, Any]] = {
    "synthetic": {"count": 60, "segment_skip_s": 20.0},
    "mir1k": {"count": None, "segment_skip_s": 0.0},
    "musdb": {"count": None, "segment_skip_s": 0.0},
}
TARGETS = {
    "precision": 0.99,
    "recall": 0.95,
    "align_median": 0,
    "align_p95": 2,
    "gain_median_db": 0.1,
    "sdr_loss_db": 1.0,
    "seconds_per_pair_core": 2.0,
}
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
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(text, "utf-8")
    tmp.replace(path)


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
    tmp = run_dir / "run.json.tmp"
    tmp.write_text(json.dumps(run, indent=2))
    tmp.replace(run_dir / "run.json")
    return run


# --- catalog ------------------------------------------------------------------------------------


def read_catalog(config: Path, library: Path) -> dict[str, Any]:
    """Tracks (by library-relative path) with their reasons, every pair, and the run's times."""
    from sqlalchemy import select
    from vocalmine.storage.catalog import MiningRun, Pair, Rejection, Track, open_catalog

    from vocalmine.core.settings import get_settings

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


# --- decisions ----------------------------------------------------------------------------------


def _fp_ratios(truth: dict[str, Any], pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """Fingerprint ratio of each truth pair (the highest over the catalog pairs standing for it,
    whatever their status): how close true pairs come to the ``same_audio`` threshold."""
    aliases = pair_aliases(truth)
    best: dict[int, float] = {}
    for p in pairs:
        i = aliases.get((p["original"], p["instrumental"]))
        if i is not None and p.get("fp_ratio"):
            best[i] = max(best.get(i, 0.0), p["fp_ratio"])
    ratios = list(best.values())
    return {
        "pairs": len(ratios),
        "min": float(np.min(ratios)) if ratios else None,
        "median": float(np.median(ratios)) if ratios else None,
        "p95": float(np.percentile(ratios, 95)) if ratios else None,
        "max": float(np.max(ratios)) if ratios else None,
        "same_audio_ratio": DEFAULT_THRESHOLDS.same_audio_ratio,
        "at_or_above_same_audio_ratio": int(
            sum(r >= DEFAULT_THRESHOLDS.same_audio_ratio for r in ratios)
        ),
    }


def _truth_key(truth: dict[str, Any], index: int) -> str:
    """A truth pair's name: its ``id`` (the builder's song id), else its index."""
    return truth["pairs"][index].get("id") or str(index)


def score_decisions(truth: dict[str, Any], cat: dict[str, Any]) -> dict[str, Any]:
    """:func:`bench.truth.score` of the catalog, with the names the tables and the JSON use."""
    result = score(truth, cat["pairs"], cat["track_reasons"])
    return {
        "expected_pairs": result["n_pairs"],
        "mined_pairs": result["n_mined"],
        "true_positives": result["n_true"],
        "precision": result["precision"],
        "recall": result["recall"],
        "recall_by_discovery": result["recall_by_discovery"],
        "found": {_truth_key(truth, f["index"]): f["pair_id"] for f in result["found"]},
        "found_rows": result["found"],
        "misses": result["misses"],
        "false_positives": result["false_positives"],
        "decoys": result["decoys"],
        "decoys_passed": result["decoys_passed"],
        "true_pair_fp_ratio": _fp_ratios(truth, cat["pairs"]),
        "pair_status": dict(Counter(p["status"] for p in cat["pairs"])),
        "rejections": dict(Counter(p["reason"] for p in cat["pairs"] if p["reason"])),
    }


# --- per-pair signal measurements ---------------------------------------------------------------


def _whiten(x: np.ndarray) -> np.ndarray:
    return np.diff(x, prepend=x[:1]).astype(np.float32)


def _shift(x: np.ndarray, d: int, length: int) -> np.ndarray:
    """``out[:, n] = x[:, n − d]`` over ``length`` samples, zeros outside ``x``."""
    return apply_alignment(x, Alignment(d, 1, 1.0, d, d, 1), length)


def measured_offset(
    reference: np.ndarray, signal: np.ndarray, sr: int, guess: int, radius: int = 4000
) -> int:
    """Lag ``L`` with ``reference[n] ≈ g · signal[n − L]``: whitened cross-correlation of a
    30 s excerpt within ``guess ± radius``, refined over the whole overlap at ±2 samples."""
    ref, sig = _whiten(downmix(reference)), _whiten(downmix(signal))
    lo = max(0, -guess + radius)
    hi = min(len(sig), len(ref) - guess - radius)
    width = min(len(sig), max(hi - lo, 0), 30 * sr)
    start = lo + max(hi - lo - width, 0) // 2
    seg = sig[start : start + width]
    a, b = start + guess - radius, start + guess + radius + width
    window = np.zeros(b - a, np.float32)
    wa, wb = max(a, 0), min(b, len(ref))
    window[wa - a : wb - a] = ref[wa:wb]
    c = correlate(window, seg, mode="valid", method="fft")
    coarse = guess - radius + int(np.argmax(np.abs(c)))

    def whole(lag: int) -> float:
        m0, m1 = max(0, -lag), min(len(sig), len(ref) - lag)
        return abs(float(np.dot(ref[m0 + lag : m1 + lag], sig[m0:m1])))

    return max(range(coarse - 2, coarse + 3), key=whole)


def vocals_sdr(
    mix: np.ndarray, instr: np.ndarray, vocals: np.ndarray, sr: int, preset: STFTPreset
) -> float:
    """SDR of the half-wave vocals from ``instr`` (mixture phase) against ``vocals``."""
    derived = derive(mix, instr, sr, preset)
    estimate = reconstruct_vocals(to_preset(mix, sr, preset), derived.vocals_mag, preset)
    return sdr_db(to_preset(vocals, sr, preset), estimate)


def _ls_gain(placed: np.ndarray, target: np.ndarray) -> float:
    """Least-squares ``g`` of ``target ≈ g · placed`` (downmixed when the channels differ)."""
    if placed.shape != target.shape:
        placed, target = downmix(placed)[None], downmix(target)[None]
    p = placed.astype(np.float64).ravel()
    return float(np.dot(target.astype(np.float64).ravel(), p) / max(np.dot(p, p), 1e-20))


def measure_pair(job: dict[str, Any]) -> dict[str, Any]:
    """Alignment error, gain error and vocal SDRs of one mined true pair (see the module doc)."""
    song, pair = job["song"], job["pair"]
    library, truth = Path(job["library"]), Path(job["truth"])
    orig_f, inst_f = song["original"], song["instrumental"]
    mix, sr = load_audio(library / pair["original"])
    instr, _ = load_audio(library / inst_f["path"], sr=sr)
    n = mix.shape[1]
    a_o = int(orig_f["codec_delay_samples"])
    c_o = np.float32(10 ** (orig_f["codec_gain_db"] / 20))
    stems = {}
    for name in ("vocals", "accompaniment"):
        stem, stem_sr = load_audio(truth / song["stems"][name])
        if stem_sr != sr:
            raise ValueError(f"{truth / song['stems'][name]}: {stem_sr} Hz, original {sr} Hz")
        stems[name] = _shift(stem, a_o, n) * c_o  # on the decoded original's timeline and level
    vocals, acc = stems["vocals"], stems["accompaniment"]
    sr_i = inst_f["sample_rate"]
    d_float = a_o - inst_f["offset_s"] * sr - inst_f["codec_delay_samples"] * sr / sr_i
    d_true = int(round(d_float))
    d_measured = measured_offset(acc, instr, sr, d_true)
    oracle_placed = _shift(instr, d_true, n)
    g_true = _ls_gain(oracle_placed, acc)
    polarity = 1 if g_true >= 0 else -1
    oracle = oracle_placed * np.float32(g_true)
    mined_align = Alignment(
        pair["offset_samples"], pair["polarity"] or 1, 1.0, 0, 0, pair["sample_rate"] or sr
    )
    mined = apply_alignment(instr, mined_align, n) * np.float32(10 ** (pair["gain_db"] / 20))
    del instr, oracle_placed
    preset = get_preset(job["preset"])
    row = {
        "song": song["id"],
        "original": pair["original"],
        "instrumental": inst_f["path"],
        "codecs": f"{orig_f['codec']}@{orig_f['sample_rate']} / {inst_f['codec']}@{sr_i}",
        "catalog_rate": pair["sample_rate"],
        "offset_true_float": d_float,
        "offset_true": d_true,
        "offset_measured": d_measured,
        "offset_mined": pair["offset_samples"],
        "align_error": pair["offset_samples"] - d_true,
        "polarity_ok": (pair["polarity"] or 1) == polarity,
        "gain_true_db": float(20 * np.log10(abs(g_true))),
        "gain_nominal_db": -inst_f["gain_db"] - inst_f["codec_gain_db"] + orig_f["codec_gain_db"],
        "gain_mined_db": pair["gain_db"],
        "gain_error_db": pair["gain_db"] - float(20 * np.log10(abs(g_true))),
        "quality": pair["quality"],
        "segments": pair["segments"],
        "sdr_mined": vocals_sdr(mix, mined, vocals, sr, preset),
        "sdr_oracle": vocals_sdr(mix, oracle, vocals, sr, preset),
        "sdr_clean": vocals_sdr(mix, acc, vocals, sr, preset),
    }
    row["sdr_loss"] = row["sdr_oracle"] - row["sdr_mined"]
    return row


def measure_pairs(
    manifest: dict[str, Any],
    cat: dict[str, Any],
    decisions: dict[str, Any],
    lib: dict[str, Any],
    preset: str,
    workers: int,
) -> list[dict[str, Any]]:
    """:func:`measure_pair` for every mined true pair, on ``workers`` processes.

    A pair mined through a copy is measured only when the copy is a byte-identical
    ``duplicate`` of the original (the manifest's codec facts are the original's)."""
    by_id = {p["id"]: p for p in cat["pairs"]}
    songs = {s["id"]: s for s in manifest["songs"]}
    duplicates = {
        d["paths"][0] for d in manifest["decoys"] if d["kind"] == "duplicate" and d["paths"]
    }
    jobs = []
    for f in sorted(decisions["found_rows"], key=lambda f: f["id"] or ""):
        song = songs.get(f["id"])
        if song is None:
            continue
        if f["via_copy"] and (
            f["instrumental"] != song["instrumental"]["path"] or f["original"] not in duplicates
        ):
            continue
        jobs.append(
            {
                "song": song,
                "pair": by_id[f["pair_id"]],
                "library": str(lib["library"]),
                "truth": str(lib["truth"]),
                "preset": preset,
            }
        )
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=ctx) as pool:
        return list(pool.map(measure_pair, jobs))


def stage_timing(
    cat: dict[str, Any],
    decisions: dict[str, Any],
    library: Path,
    preset: str,
    skip: float,
    pairs: int,
) -> dict[str, Any]:
    """Seconds per stage of :func:`mining.pair_pipeline.process_pair` (the flow's per-pair task)
    on a few mined true pairs, one at a time in this process with the workers' allocator settings
    (:func:`flows.runtime.keep_freed_memory`): where a pair's time goes."""
    from vocalmine.flows.runtime import keep_freed_memory
    from vocalmine.mining.pair_pipeline import process_pair

    keep_freed_memory()

    by_id = {p["id"]: p for p in cat["pairs"]}
    rows = []
    for _, pid in sorted(decisions["found"].items())[:pairs]:
        pair = by_id[pid]
        start = time.perf_counter()
        result = process_pair(
            library / pair["original"],
            library / pair["instrumental"],
            preset,
            pair["offset_s"],
            segment_skip_s=skip,
        )
        row = {k: v for k, v in result.metrics.items() if k.startswith("seconds_")}
        row["seconds_total"] = time.perf_counter() - start
        row["duration_s"] = result.metrics.get("duration_s", 0.0)
        rows.append(row)
    if not rows:
        return {"pairs": 0}
    return {
        "pairs": len(rows),
        "median": {k: float(np.median([r.get(k, 0.0) for r in rows])) for k in rows[0]},
    }


def plain_pair_rows(
    truth: dict[str, Any], cat: dict[str, Any], decisions: dict[str, Any]
) -> list[dict[str, Any]]:
    """Alignment and gain errors of the mined true pairs against a truth's own ``offset_s`` and
    ``gain_db`` (no stems: no oracle gain, no cross-check, no SDR).

    ``align_error`` = ``Pair.offset_samples − round(offset_s · Pair.sample_rate)``;
    ``gain_error_db`` = ``Pair.gain_db − gain_db``. A pair mined through a copy counts only when
    the copy is a byte-identical ``duplicate`` of the original (the truth's numbers are the true
    files')."""
    by_id = {p["id"]: p for p in cat["pairs"]}
    duplicates = {d["path"] for d in truth["decoys"] if d["kind"] == "duplicate"}
    rows = []
    for f in decisions["found_rows"]:
        t, p = truth["pairs"][f["index"]], by_id[f["pair_id"]]
        exact_enough = not f["via_copy"] or (
            f["instrumental"] == t["instrumental"] and f["original"] in duplicates
        )
        if not exact_enough or (t.get("offset_s") is None and t.get("gain_db") is None):
            continue
        row: dict[str, Any] = {
            "song": _truth_key(truth, f["index"]),
            "original": p["original"],
            "instrumental": p["instrumental"],
            "codecs": " / ".join(
                Path(x).suffix.lstrip(".").lower() for x in (p["original"], p["instrumental"])
            ),
            "catalog_rate": p["sample_rate"],
            "quality": p["quality"],
            "segments": p["segments"],
        }
        if t.get("offset_s") is not None and p["offset_samples"] is not None and p["sample_rate"]:
            true = int(round(t["offset_s"] * p["sample_rate"]))
            row.update(
                offset_true_float=t["offset_s"] * p["sample_rate"],
                offset_true=true,
                offset_mined=p["offset_samples"],
                align_error=p["offset_samples"] - true,
            )
        if t.get("gain_db") is not None and p["gain_db"] is not None:
            row.update(
                gain_true_db=t["gain_db"],
                gain_mined_db=p["gain_db"],
                gain_error_db=p["gain_db"] - t["gain_db"],
            )
        rows.append(row)
    return rows


def summarise_pairs(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians, 95th percentiles and maxima of the per-pair measurements (each over the rows
    that have it: a plain truth file gives alignment and gain only, where it states them)."""
    out: dict[str, Any] = {"pairs": len(rows)}
    aligned = [r for r in rows if "align_error" in r]
    if aligned:
        err = np.abs([r["align_error"] for r in aligned])
        out.update(
            align_pairs=len(aligned),
            align_error_median=float(np.median(err)),
            align_error_p95=float(np.percentile(err, 95)),
            align_error_max=float(err.max()),
            align_exact_fraction=float(np.mean(err == 0)),
        )
    measured = [r for r in rows if "offset_measured" in r]
    if measured:
        out["truth_measured_agree_fraction"] = float(
            np.mean([abs(r["offset_true"] - r["offset_measured"]) <= 1 for r in measured])
        )
    if any("polarity_ok" in r for r in rows):
        out["polarity_ok_fraction"] = float(
            np.mean([r["polarity_ok"] for r in rows if "polarity_ok" in r])
        )
    gained = [r for r in rows if "gain_error_db" in r]
    if gained:
        gain = np.abs([r["gain_error_db"] for r in gained])
        out.update(
            gain_pairs=len(gained),
            gain_error_db_median=float(np.median(gain)),
            gain_error_db_p95=float(np.percentile(gain, 95)),
            gain_error_db_max=float(gain.max()),
        )
    sdr_rows = [r for r in rows if "sdr_mined" in r]
    if sdr_rows:
        mined = np.array([r["sdr_mined"] for r in sdr_rows])
        oracle = np.array([r["sdr_oracle"] for r in sdr_rows])
        clean = np.array([r["sdr_clean"] for r in sdr_rows])
        ok = np.isfinite(mined) & np.isfinite(oracle)
        loss = oracle[ok] - mined[ok]
        nan = float("nan")
        out.update(
            sdr_clips=int(ok.sum()),
            sdr_mined_median=float(np.median(mined[ok])) if ok.any() else nan,
            sdr_oracle_median=float(np.median(oracle[ok])) if ok.any() else nan,
            sdr_clean_median=float(np.median(clean[ok])) if ok.any() else nan,
            sdr_loss_median=float(np.median(loss)) if ok.any() else nan,
            sdr_loss_p95=float(np.percentile(loss, 95)) if ok.any() else nan,
            sdr_loss_max=float(loss.max()) if ok.any() else nan,
        )
    return out


# --- fingerprint speed --------------------------------------------------------------------------


def fingerprint_speed(originals: list[str], library: Path, files: int) -> dict[str, Any]:
    """Real-time factor of fingerprinting, alone and with decoding, on the library's originals
    (the first ``files`` of ``originals`` that exist)."""
    paths = [rel for rel in originals if (library / rel).is_file()][:files]
    audio_s = decode_s = fp_s = 0.0
    for rel in paths:
        start = time.perf_counter()
        audio, sr = load_audio(library / rel, sr=DEFAULT_PARAMS.sample_rate, mono=True)
        decode_s += time.perf_counter() - start
        start = time.perf_counter()
        fingerprint(audio, sr)
        fp_s += time.perf_counter() - start
        audio_s += audio.shape[1] / sr
    out = {
        "files": len(paths),
        "audio_s": audio_s,
        "fingerprint_s": fp_s,
        "decode_s": decode_s,
        "x_realtime": audio_s / fp_s if fp_s else float("nan"),
        "x_realtime_with_decode": audio_s / (fp_s + decode_s) if fp_s else float("nan"),
    }
    reference = ROOT / "bench" / "results" / "fingerprint.json"
    if reference.is_file():
        rows = json.loads(reference.read_text())["rows"]
        out["bench_fingerprint_json"] = {r["case"]: r["x_realtime"] for r in rows}
    return out


# --- one source ---------------------------------------------------------------------------------


def mine_and_score(
    library: Path,
    truth: dict[str, Any],
    built: dict[str, Any] | None,
    run_dir: Path,
    skip: float,
    args: argparse.Namespace,
    workdir: Path,
) -> dict[str, Any]:
    """Mine ``library`` (or take the last run with ``--rescore``), score it against ``truth``, and
    measure the mined true pairs: against the stems when ``built`` (a builder library: its
    ``manifest`` and ``truth`` directory) is given, else against the truth's own offsets and
    gains. The timing measurements follow."""
    if args.rescore and (run_dir / "run.json").is_file():
        console.log(f"re-scoring the last mine run in {run_dir} (not mining again)")
        mine = json.loads((run_dir / "run.json").read_text())
    else:
        console.log(f"mining {library} ({len(truth['pairs'])} truth pairs), {args.workers} workers")
        mine = run_mine(
            library,
            run_dir,
            skip,
            args.workers,
            args.preset,
            args.dask_address,
            args.prefect_api_url,
        )
    cat = read_catalog(Path(mine["config"]), library)
    timeline = flow_timeline(workdir / "prefect", cat["flow_run_id"])
    decisions = score_decisions(truth, cat)
    if built is not None:
        console.log(f"scoring {len(decisions['found'])} mined true pairs against the stems")
        rows = measure_pairs(built["manifest"], cat, decisions, built, args.preset, args.workers)
        originals = [s["original"]["path"] for s in built["manifest"]["songs"] if s["original"]]
    else:
        rows = plain_pair_rows(truth, cat, decisions)
        originals = [p["original"] for p in truth["pairs"]]
    cores = min(args.workers, os.cpu_count() or args.workers)
    mined = decisions["mined_pairs"]
    throughput = {
        "wall_s": mine["wall_s"],
        "flow_body_s": cat["flow_body_s"],
        "flow_timeline": timeline,
        "cpu_s": mine["cpu_s"],
        "standing_deployment": mine.get("standing_deployment"),
        "cores": cores,
        "mined_pairs": mined,
        "seconds_per_pair_core": mine["wall_s"] * cores / mined if mined else float("nan"),
        "cpu_seconds_per_pair": mine["cpu_s"] / mined
        if mined and mine["cpu_s"] is not None
        else float("nan"),
        "load_average": os.getloadavg(),
    }
    fp_speed = fingerprint_speed(originals, library, args.fingerprint_files)
    stages = stage_timing(cat, decisions, library, args.preset, skip, args.stage_pairs)
    files = sum(1 for p in library.rglob("*") if p.is_file())
    return {
        "library": str(library),
        "config": mine["config"],
        "files": files,
        "segment_skip_s": skip,
        "preset": args.preset,
        "decisions": decisions,
        "pairs": summarise_pairs(rows),
        "pair_rows": rows,
        "throughput": throughput,
        "fingerprint_speed": fp_speed,
        "pair_stages": stages,
    }


def _builder_facts(manifest: dict[str, Any]) -> dict[str, Any]:
    return {
        "songs": manifest["count"],
        "library_minutes": total_minutes(manifest),
        "song_minutes_median": float(
            np.median([s["content_duration_s"] for s in manifest["songs"]]) / 60
        ),
    }


def run_source(source: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Build (or reuse), mine, score: everything the tables and the JSON need for one source."""
    count = args.count if args.count is not None else DEFAULTS[source]["count"]
    skip = (
        DEFAULTS[source]["segment_skip_s"] if args.segment_skip_s is None else args.segment_skip_s
    )
    lib = ensure_library(source, count, args.seed, args.duration, workdir, args.profile)
    key = library_key(source, count, args.seed, args.duration, args.profile)
    result = mine_and_score(
        lib["library"], lib["truth_data"], lib, workdir / "runs" / key, skip, args, workdir
    )
    return {
        "source": source,
        "profile": args.profile,
        "truth_file": str(lib["truth"] / "truth.json"),
        **result,
        **_builder_facts(lib["manifest"]),
        "library_cached": lib["cached"],
        "library_build_s": lib["build_s"],
    }


def read_truth_arg(path: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``--truth``: a truth file, or a library builder ``manifest.json`` (converted; then also
    returned, so the pairs can be measured against its stems)."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        data = None  # load_truth says what is wrong
    try:
        if is_manifest(data):
            return truth_from_manifest(data), data
        return load_truth(path), None
    except ValueError as err:
        sys.exit(f"--truth: {err}")


def run_library(args: argparse.Namespace, workdir: Path) -> tuple[str, dict[str, Any]]:
    """``--library DIR --truth FILE``: mine an existing library and score it (nothing built)."""
    library = args.library.resolve()
    if not library.is_dir():
        sys.exit(f"--library {args.library}: not a directory")
    truth_path = args.truth.resolve()
    truth, manifest = read_truth_arg(truth_path)
    named = {p[k] for p in truth["pairs"] for k in ("original", "instrumental")}
    named |= {d["path"] for d in truth["decoys"]} | set(truth["singles"])
    missing = sorted(rel for rel in named if not (library / rel).is_file())
    if missing:
        console.log(
            f"[yellow]{len(missing)} file(s) of the truth are not in {library}, e.g. "
            f"{missing[0]!r}[/yellow]"
        )
    digest = hashlib.sha1(str(library).encode()).hexdigest()[:8]
    run_dir = workdir / "runs" / f"library-{library.name}-{digest}"
    skip = args.segment_skip_s
    if skip is None:
        from vocalmine.core.settings import Settings

        skip = float(Settings.model_fields["segment_skip_s"].default)
    built = {"library": library, "truth": truth_path.parent, "manifest": manifest}
    result = mine_and_score(
        library, truth, built if manifest else None, run_dir, skip, args, workdir
    )
    facts = (
        _builder_facts(manifest)
        if manifest
        else {"songs": None, "library_minutes": None, "song_minutes_median": None}
    )
    name = library.name
    return name, {
        "source": "library",
        "truth_file": str(truth_path),
        **result,
        **facts,
        "library_cached": True,
        "library_build_s": 0.0,
    }


# --- tables -------------------------------------------------------------------------------------


def _f(value: Any, fmt: str = ".2f") -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    return format(value, fmt)


def _mark(ok: bool) -> str:
    return "[green]✓[/green]" if ok else "[red]✗[/red]"


def _spread(stats: dict[str, Any], prefix: str, fmt: str) -> str:
    """``median / p95 / max`` of one measure, or ``-`` when it was not measured."""
    if f"{prefix}_median" not in stats:
        return "-"
    return " / ".join(_f(stats[f"{prefix}_{k}"], fmt) for k in ("median", "p95", "max"))


def _stages(stages: dict[str, Any]) -> str:
    if not stages.get("pairs"):
        return "-"
    med = stages["median"]
    names = ("load", "align", "gain", "derive", "segment", "total")
    return " / ".join(f"{med.get('seconds_' + k, 0.0):.1f}" for k in names)


def _ratios(stats: dict[str, Any]) -> str:
    if not stats["pairs"]:
        return "-"
    spread = " / ".join(f"{stats[k]:.2f}" for k in ("min", "median", "max"))
    return f"{spread} ({stats['at_or_above_same_audio_ratio']})"


def _phases(timeline: dict[str, Any] | None) -> str:
    if not timeline or not timeline.get("phases"):
        return "-"
    return " / ".join(f"{timeline['phases'][k]:.0f}" for k in PHASES)


def _ok_mark(stats: dict[str, Any], key: str, ok: bool) -> str:
    """A target mark, or nothing when the measure is missing."""
    return _mark(ok) if key in stats else ""


def _percent(stats: dict[str, Any], key: str) -> str:
    return f"{100 * stats[key]:.0f} %" if key in stats else "-"


def _summary_rows(r: dict[str, Any]) -> list[str]:
    """One source's column of the summary table (order as in :data:`SUMMARY_ROWS`)."""
    d, p, t, fp = r["decisions"], r["pairs"], r["throughput"], r["fingerprint_speed"]
    inf = float("inf")
    decoys_ok, n_decoys = d["decoys_passed"], len(d["decoys"])
    with_reasons = [x for x in d["decoys"] if x["reason_ok"] is not None]
    reasons_ok = sum(x["reason_ok"] for x in with_reasons)
    align_ok = (
        p.get("align_error_median", inf) == 0
        and p.get("align_error_p95", inf) <= TARGETS["align_p95"]
    )
    gain_ok = p.get("gain_error_db_median", inf) <= TARGETS["gain_median_db"]
    sdr_ok = p.get("sdr_loss_median", inf) <= TARGETS["sdr_loss_db"]
    speed = t["seconds_per_pair_core"]
    minutes = _f(r.get("library_minutes"), ".0f")
    return [
        f"{r['songs'] if r.get('songs') is not None else '-'} / {r['files']} / {minutes}",
        _f(r.get("song_minutes_median")),
        str(d["expected_pairs"]),
        f"{d['mined_pairs']} ({d['true_positives']})",
        f"{_f(d['precision'], '.3f')} {_mark(d['precision'] >= TARGETS['precision'])}",
        f"{_f(d['recall'], '.3f')} {_mark(d['recall'] >= TARGETS['recall'])}",
        f"{decoys_ok}/{n_decoys} {_mark(decoys_ok == n_decoys)}",
        f"{reasons_ok}/{len(with_reasons)}" if with_reasons else "-",
        _ratios(d["true_pair_fp_ratio"]),
        f"{_spread(p, 'align_error', '.0f')} {_ok_mark(p, 'align_error_median', align_ok)}",
        _percent(p, "align_exact_fraction"),
        _percent(p, "truth_measured_agree_fraction"),
        f"{_spread(p, 'gain_error_db', '.3f')} {_ok_mark(p, 'gain_error_db_median', gain_ok)}",
        " / ".join(_f(p.get(f"sdr_{k}_median")) for k in ("mined", "oracle", "clean")),
        f"{_spread(p, 'sdr_loss', '.2f')} {_ok_mark(p, 'sdr_loss_median', sdr_ok)}",
        f"{t['wall_s']:.0f} ({_f(t['flow_body_s'], '.0f')})",
        f"{_f(speed)} ({t['cores']} cores) {_mark(speed <= TARGETS['seconds_per_pair_core'])}",
        _f(t["cpu_seconds_per_pair"]),
        f"{_f(fp['x_realtime'], '.0f')} ({_f(fp['x_realtime_with_decode'], '.0f')})",
        _stages(r["pair_stages"]),
        _phases(t["flow_timeline"]),
    ]


SUMMARY_ROWS = (
    ("songs / files / minutes of audio", ""),
    ("median song length, min", ""),
    ("true pairs passing the filters", ""),
    ("mined pairs (of them true)", ""),
    ("pair precision", f"≥ {TARGETS['precision']}"),
    ("pair recall", f"≥ {TARGETS['recall']}"),
    ("decoys and singles with the expected outcome", "all"),
    ("… of them with an expected catalog reason", ""),
    (
        "true pairs' fingerprint ratio: min / median / max (≥ same_audio_ratio)",
        f"< {DEFAULT_THRESHOLDS.same_audio_ratio}",
    ),
    ("alignment error, samples: median / p95 / max", f"0 / ≤ {TARGETS['align_p95']}"),
    ("alignment exact to the sample", ""),
    ("truth: manifest and cross-correlation agree (±1)", ""),
    ("gain error, dB: median / p95 / max", f"≤ {TARGETS['gain_median_db']}"),
    ("vocal SDR: mined / true offset+gain / clean stem, dB", ""),
    ("SDR loss vs true offset+gain, dB: median / p95 / max", f"≤ {TARGETS['sdr_loss_db']}"),
    ("mine wall time, s (flow body)", ""),
    ("s per pair per core (wall × cores / pairs)", f"≤ {TARGETS['seconds_per_pair_core']}"),
    ("CPU s per mined pair (command + children)", ""),
    ("fingerprint × real time (with decoding)", ""),
    ("process_pair s: load / align / gain / derive / segment / total", ""),
    ("flow s: " + " / ".join(PHASES), ""),
)


def _catalog_said(miss: dict[str, Any]) -> str:
    """What the catalog recorded about a missed true pair, one line per pair or track."""
    lines = []
    for q in miss["pairs"]:
        line = f"{q['status']} {q['reason'] or ''} [{q['source']}] {q['detail'] or ''}"
        if q["instrumental"] != miss["instrumental"]:
            line += f" — with {q['instrumental']}"
        elif q["original"] != miss["original"]:
            line += f" — with {q['original']}"
        lines.append(" ".join(line.split()))
    lines += [
        f"track {Path(k).name}: {', '.join(v)}" for k, v in miss["track_reasons"].items() if v
    ]
    return escape("\n".join(lines)) or "no pair, no reason"


def _decoy_reasons(x: dict[str, Any]) -> str:
    """The catalog's reasons about a decoy, and whether an expected one is among them."""
    said = escape("\n".join(x["catalog_reasons"])) or "no reason"
    if x["reason_ok"] is not None:
        said += f"\n{_mark(x['reason_ok'])} expected {' or '.join(x['expected_reasons'])}"
    return said


def print_source_tables(name: str, r: dict[str, Any]) -> None:
    """Decoys, missed true pairs, false positives and the worst mined pairs of one source."""
    decoys = Table(title=f"{name}: decoys and singles — kind → expected → outcome")
    for col in ("kind", "id", "expect", "outcome", "catalog says", "ok", "file"):
        decoys.add_column(col)
    for x in r["decisions"]["decoys"]:
        decoys.add_row(
            x["kind"],
            x["id"] or "-",
            x["expect"],
            x["outcome"],
            _decoy_reasons(x),
            _mark(x["pass"]),
            escape(x["path"] + (f"\nof {x['of']}" if x["of"] else "")),
        )
    console.print(decoys)
    misses = r["decisions"]["misses"]
    if misses:
        table = Table(title=f"{name}: true pairs not mined ({len(misses)})")
        for col in ("song", "discovery", "files", "what the catalog says"):
            table.add_column(col)
        for m in misses:
            files = escape(f"{m['original']}\n{m['instrumental']}")
            table.add_row(m["song"], m["discovery"], files, _catalog_said(m))
        console.print(table)
    false_pos = r["decisions"]["false_positives"]
    if false_pos:
        table = Table(title=f"{name}: mined pairs that are not true pairs ({len(false_pos)})")
        for col in ("original", "instrumental", "source", "why"):
            table.add_column(col)
        for x in false_pos:
            why = escape(f"{x['reason']}\n{x['original_is']} / {x['instrumental_is']}")
            table.add_row(escape(x["original"]), escape(x["instrumental"]), x["source"] or "-", why)
        console.print(table)
    worst = sorted(
        r["pair_rows"],
        key=lambda q: -abs(q.get("align_error", 0)) - abs(q.get("gain_error_db", 0.0)),
    )
    if worst:
        table = Table(title=f"{name}: the five worst mined pairs (alignment, then gain)")
        for col in ("song", "codecs", "align err", "gain err dB", "SDR loss dB", "instrumental"):
            table.add_column(col)
        for q in worst[:5]:
            table.add_row(
                q["song"],
                q.get("codecs", "-"),
                str(q.get("align_error", "-")),
                f"{q['gain_error_db']:+.3f}" if "gain_error_db" in q else "-",
                _f(q.get("sdr_loss")),
                escape(q["instrumental"]),
            )
        console.print(table)


def print_tables(results: dict[str, dict[str, Any]]) -> None:
    """The summary against the targets, then each source's detail tables."""
    table = Table(title="Mining benchmark: the mine flow against the libraries' answer keys")
    table.add_column("measure")
    table.add_column("target", justify="right")
    for name in results:
        table.add_column(name, justify="right")
    columns = [_summary_rows(r) for r in results.values()]
    for i, (label, target) in enumerate(SUMMARY_ROWS):
        table.add_row(label, target, *(c[i] for c in columns))
    console.print(table)
    for name, r in results.items():
        print_source_tables(name, r)


# --- main ---------------------------------------------------------------------------------------


def _durations(text: str) -> tuple[float, float]:
    lo, _, hi = text.partition("-")
    return float(lo), float(hi or lo)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source",
        choices=(*SOURCES, "all"),
        default=None,
        help="built libraries to mine (default all; not with --library)",
    )
    parser.add_argument(
        "--library",
        type=Path,
        default=None,
        help="mine and score this existing library instead of building any (needs --truth)",
    )
    parser.add_argument(
        "--truth",
        type=Path,
        default=None,
        help="the answer key of --library: a truth file (docs/truth-format.md) or a library "
        "builder manifest.json",
    )
    parser.add_argument(
        "--profile",
        default="default",
        choices=("default", "alt"),
        help="library builder profile of the built libraries (part of their cache key)",
    )
    parser.add_argument(
        "--count",
        type=int,
        default=None,
        help="songs per library (default: 60 synthetic, every MIR-1K song, all 50 MUSDB previews)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--duration",
        type=_durations,
        default=(180.0, 240.0),
        help="synthetic song lengths MIN-MAX seconds (default 180-240)",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="libraries and runs (reused)")
    parser.add_argument("--workers", type=int, default=2, help="Dask workers and scoring processes")
    parser.add_argument("--preset", choices=("paper", "hq"), default="paper")
    parser.add_argument(
        "--segment-skip-s",
        type=float,
        default=None,
        help="override the skip (default 20 s synthetic, 0 for the short mir1k/musdb songs)",
    )
    parser.add_argument("--fingerprint-files", type=int, default=6)
    parser.add_argument(
        "--stage-pairs", type=int, default=4, help="pairs timed stage by stage (process_pair)"
    )
    parser.add_argument(
        "--dask-address",
        default=None,
        help="mine on this running Dask scheduler (its --workers workers are the cores counted)",
    )
    parser.add_argument(
        "--prefect-api-url",
        default=None,
        help="report to this running Prefect server (start it with PREFECT_HOME=WORKDIR/prefect "
        "so the flow's phases can be read)",
    )
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument(
        "--rescore",
        action="store_true",
        help="score the last mine run kept in --workdir again instead of mining (its times too)",
    )
    args = parser.parse_args()
    if args.library is not None or args.truth is not None:
        if args.library is None or args.truth is None:
            parser.error("--library and --truth go together")
        if args.source is not None:
            parser.error("--source builds libraries; not with --library")
        if args.profile != "default":
            parser.error("--profile applies to built libraries; not with --library")
    sources = (
        [] if args.library else list(SOURCES) if args.source in (None, "all") else [args.source]
    )
    if any(s != "synthetic" for s in sources) and not DATA.is_dir():
        sys.exit(
            f"shared data not found at {DATA} (see ../shared/data/README.md); "
            "use --source synthetic"
        )
    temp = None
    if args.workdir is None:
        temp = tempfile.TemporaryDirectory(prefix="vocalmine-bench-mining-")
        args.workdir = Path(temp.name)
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        results = {s: run_source(s, args, workdir) for s in sources}
        if args.library is not None:
            name, result = run_library(args, workdir)
            results[name] = result
    finally:
        if temp is not None:
            temp.cleanup()
    print_tables(results)
    payload = {
        "benchmark": "mining",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/mining.py " + " ".join(sys.argv[1:]),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
        },
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "targets": TARGETS,
        "sources": results,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.results.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=float))
    tmp.replace(args.results)
    console.print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
