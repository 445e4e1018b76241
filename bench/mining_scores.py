"""Mining benchmark, part 2: score a mine run against the truth: decisions, per-pair alignment,
gain and derived-vocals SDR, per-stage timings and fingerprint speed.

Used by ``bench/mining.py`` (the entry point; its docstring describes each measurement).
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import correlate

from bench.truth import (
    pair_aliases,
    score,
)
from vocalmine.core.audio import load_audio
from vocalmine.core.stft import STFTPreset, get_preset
from vocalmine.mining.alignment import Alignment, apply_alignment, downmix
from vocalmine.mining.fingerprint_match import DEFAULT_THRESHOLDS
from vocalmine.mining.landmarks import DEFAULT_PARAMS, fingerprint
from vocalmine.mining.vocals import derive, reconstruct_vocals, sdr_db, to_preset

ROOT = Path(__file__).resolve().parents[1]


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
