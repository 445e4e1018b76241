"""Derivation benchmark: alignment, gain and vocal-label quality on real pairs, and speed.

What it measures (``python bench/derivation.py --help`` for the knobs):

1. **Mined pairs.** ``--count`` MIR-1K clips (seeded draw) turned into mining pairs: original =
   L + R (FLAC-exact), instrumental = L shifted by a random offset (±2 s), scaled by a random gain
   (±6 dB, kept below clipping) and MP3-encoded at 128 kbit/s (lameenc, via ``core.audio``). Each
   pair runs through ``align`` → ``apply_alignment`` → ``match_gain`` → ``derive``.
   * alignment error (samples) against the known offset minus LAME's 1105-sample codec delay;
   * gain error (dB) against the oracle gain: the least-squares fit of the decoded, placed
     instrumental onto the true accompaniment (the codec itself changes the level ≈ −0.45 dB);
   * SDR of the derived vocals (mixture phase, inverse STFT, at the preset's rate) against the
     true vocals, beside the same derivation from the same decoded instrumental placed at the
     true offset with the oracle gain, and from the clean true accompaniment;
   * seconds per pair for align + gain + derive (MP3 coding excluded).
2. **Sensitivity.** SDR loss of the half-wave derivation (true accompaniment, ``hq`` preset) when
   the instrumental is shifted by a few samples or mis-scaled by a fraction of a dB.
3. **A five-minute stereo 48 kHz song** (MIR-1K songs joined, resampled, panned), original FLAC
   and instrumental MP3 320 kbit/s, through ``process_pair`` in a fresh process: seconds and peak
   resident memory per preset.

Prints rich tables and writes ``bench/results/derivation.json``. The defaults take a few minutes
on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vocalmine.core.atomic import atomic_write_text  # noqa: E402
from vocalmine.core.audio import load_audio, resample, save_audio  # noqa: E402
from vocalmine.core.stft import PRESETS  # noqa: E402
from vocalmine.mining.alignment import Alignment, align, apply_alignment  # noqa: E402
from vocalmine.mining.loudness import match_gain  # noqa: E402
from vocalmine.mining.vocals import derive, reconstruct_vocals, sdr_db, to_preset  # noqa: E402

MIR1K = ROOT.parent / "shared" / "data" / "mir1k"
RESULTS = ROOT / "bench" / "results" / "derivation.json"
LAME_DELAY = 1105  # lameenc writes no gapless header: decoded MP3s start 576 + 529 samples late
console = Console(width=160)


def mp3_round_trip(audio: np.ndarray, sr: int, kbps: int) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        path = save_audio(Path(tmp) / "x.mp3", audio, sr, bitrate_kbps=kbps)
        return load_audio(path)[0]


def vocals_sdr(mix: np.ndarray, instr: np.ndarray, voc: np.ndarray, sr: int, preset) -> float:
    """SDR of half-wave vocals (mixture phase) from ``instr`` against ``voc``, at the preset."""
    at_preset = to_preset(mix, sr, preset)
    estimate = reconstruct_vocals(at_preset, derive(mix, instr, sr, preset).vocals_mag, preset)
    return sdr_db(to_preset(voc, sr, preset), estimate)


def mined_pairs(count: int, seed: int) -> dict[str, Any]:
    """Section 1: per-clip alignment/gain errors and SDRs for both presets."""
    rng = np.random.default_rng(seed)
    clips = sorted(MIR1K.glob("*.flac"))
    chosen = rng.choice(len(clips), size=min(count, len(clips)), replace=False)
    rows = []
    for n, index in enumerate(chosen):
        audio, sr = load_audio(clips[index])
        acc, voc = audio[0], audio[1]
        offset = int(rng.integers(-2 * sr, 2 * sr + 1))
        applied_db = float(rng.uniform(-6, 6))
        mix = (acc + voc)[None]
        if offset >= 0:
            instr = acc[offset:][None]
            voc_on_mix, acc_on_mix = voc[None], acc
        else:
            mix, instr = mix[:, -offset:], acc[None]
            voc_on_mix, acc_on_mix = voc[-offset:][None], acc[-offset:]
        applied_db -= 20 * np.log10(
            max(1.0, float(np.abs(instr).max()) * 10 ** (applied_db / 20) / 0.99)
        )
        scaled = instr * np.float32(10 ** (applied_db / 20))  # peak kept below 0.99: no clipping
        decoded = mp3_round_trip(scaled, sr, 128)

        start = time.perf_counter()
        alignment = align(mix, decoded, sr)
        placed = apply_alignment(decoded, alignment, mix.shape[1])
        gain = match_gain(mix, placed, sr)
        mined = placed * np.float32(gain.gain)
        derive(mix, mined, sr, PRESETS["paper"])
        seconds = time.perf_counter() - start

        true_offset = offset - LAME_DELAY
        truth = Alignment(true_offset, 1, 1.0, true_offset, true_offset, sr)
        oracle_placed = apply_alignment(decoded, truth, mix.shape[1])
        p = oracle_placed[0].astype(np.float64)
        oracle_db = float(20 * np.log10(np.dot(acc_on_mix, p) / np.dot(p, p)))
        oracle = oracle_placed * np.float32(10 ** (oracle_db / 20))
        row = {
            "clip": clips[index].stem,
            "offset": offset,
            "applied_db": applied_db,
            "reason": alignment.reason,
            "align_error": alignment.offset_samples - true_offset,
            "confidence": alignment.confidence,
            "gain_error_db": gain.gain_db - oracle_db,
            "loudness_only_error_db": gain.loudness_gain_db - oracle_db,
            "codec_level_db": -oracle_db - applied_db,
            "seconds": seconds,
        }
        for name, preset in PRESETS.items():
            row[f"sdr_{name}"] = vocals_sdr(mix, mined, voc_on_mix, sr, preset)
            row[f"sdr_oracle_{name}"] = vocals_sdr(mix, oracle, voc_on_mix, sr, preset)
            clean = np.zeros_like(mix)
            clean[0] = acc_on_mix
            row[f"sdr_clean_{name}"] = vocals_sdr(mix, clean, voc_on_mix, sr, preset)
        rows.append(row)
        if (n + 1) % 20 == 0:
            console.log(f"{n + 1}/{len(chosen)} pairs")
    return summarise_pairs(rows)


def summarise_pairs(rows: list[dict[str, Any]]) -> dict[str, Any]:
    align_err = np.abs([r["align_error"] for r in rows])
    gain_err = np.abs([r["gain_error_db"] for r in rows])
    summary: dict[str, Any] = {
        "pairs": len(rows),
        "rejected": sum(r["reason"] is not None for r in rows),
        "align_error_samples_median": float(np.median(align_err)),
        "align_error_samples_p95": float(np.percentile(align_err, 95)),
        "align_error_samples_max": float(align_err.max()),
        "align_exact_fraction": float(np.mean(align_err == 0)),
        "gain_error_db_median": float(np.median(gain_err)),
        "gain_error_db_p95": float(np.percentile(gain_err, 95)),
        "gain_error_db_max": float(gain_err.max()),
        "loudness_only_error_db_median": float(
            np.median(np.abs([r["loudness_only_error_db"] for r in rows]))
        ),
        "codec_level_db_median": float(np.median([r["codec_level_db"] for r in rows])),
        "seconds_per_pair_median": float(np.median([r["seconds"] for r in rows])),
        "seconds_per_pair_mean": float(np.mean([r["seconds"] for r in rows])),
    }
    for name in PRESETS:
        ours = np.array([r[f"sdr_{name}"] for r in rows])
        oracle = np.array([r[f"sdr_oracle_{name}"] for r in rows])
        clean = np.array([r[f"sdr_clean_{name}"] for r in rows])
        valid = np.isfinite(ours) & np.isfinite(oracle)
        summary[f"sdr_{name}"] = {
            "clips": int(valid.sum()),
            "mined_median": float(np.median(ours[valid])),
            "oracle_offset_gain_median": float(np.median(oracle[valid])),
            "clean_instrumental_median": float(np.median(clean[valid])),
            "loss_vs_oracle_median": float(np.median(oracle[valid] - ours[valid])),
            "loss_vs_oracle_p95": float(np.percentile(oracle[valid] - ours[valid], 95)),
        }
    return {"summary": summary, "rows": rows}


def sensitivity(count: int, seed: int) -> dict[str, Any]:
    """Section 2: SDR loss (hq preset) under a sample shift or a gain error of the true stem."""
    rng = np.random.default_rng(seed + 1)
    clips = sorted(MIR1K.glob("*.flac"))
    chosen = rng.choice(len(clips), size=min(count, len(clips)), replace=False)
    shifts = [1, 4, 16, 64, 256, 1024]
    gains = [0.1, 0.25, 0.5, 1.0, 2.0]
    losses: dict[str, list[float]] = {f"shift_{s}": [] for s in shifts}
    losses.update({f"gain_{g:+.2f}dB": [] for g in gains})
    losses.update({f"gain_{-g:+.2f}dB": [] for g in gains})
    preset = PRESETS["hq"]
    for index in chosen:
        audio, sr = load_audio(clips[index])
        acc, voc = audio[:1], audio[1:]
        mix = acc + voc
        base = vocals_sdr(mix, acc, voc, sr, preset)
        if not np.isfinite(base):
            continue
        for s in shifts:
            shifted = np.roll(acc, s, axis=1)
            losses[f"shift_{s}"].append(base - vocals_sdr(mix, shifted, voc, sr, preset))
        for g in gains:
            for signed in (g, -g):
                scaled = acc * np.float32(10 ** (signed / 20))
                loss = base - vocals_sdr(mix, scaled, voc, sr, preset)
                losses[f"gain_{signed:+.2f}dB"].append(loss)
    return {
        "clips": len(losses["shift_1"]),
        "preset": "hq",
        "shift_samples_at_16khz": {str(s): float(np.median(losses[f"shift_{s}"])) for s in shifts},
        "gain_error_db": {
            f"{sg:+.2f}": float(np.median(losses[f"gain_{sg:+.2f}dB"]))
            for g in gains
            for sg in (-g, g)
        },
    }


def _peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited at spawn)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _baseline_worker(queue: multiprocessing.Queue) -> None:
    import vocalmine.core.stft
    import vocalmine.mining.pair_pipeline  # noqa: F401  (the imports every worker pays once)

    vocalmine.core.stft.magnitude(np.zeros((1, 8192), np.float32), PRESETS["paper"])
    queue.put(_peak_rss_mb())


def _long_song_worker(folder: str, preset: str, queue: multiprocessing.Queue) -> None:
    from vocalmine.mining.pair_pipeline import process_pair

    start = time.perf_counter()
    result = process_pair(Path(folder) / "song.flac", Path(folder) / "song_inst.mp3", preset)
    seconds = time.perf_counter() - start
    peak_mb = _peak_rss_mb()
    queue.put(
        {
            "preset": preset,
            "reason": result.reason,
            "seconds": seconds,
            "stage_seconds": {k: v for k, v in result.metrics.items() if k.startswith("seconds")},
            "segments": len(result.segments),
            "peak_rss_mb": peak_mb,
            "offset_samples": result.alignment.offset_samples if result.alignment else None,
        }
    )


def long_song(seconds: float = 300.0) -> dict[str, Any]:
    """Section 3: a five-minute stereo 48 kHz pair through process_pair, one process per preset."""
    clips = sorted(MIR1K.glob("*.flac"))
    parts, total = [], 0
    for path in clips:
        audio, sr = load_audio(path)
        parts.append(audio)
        total += audio.shape[1]
        if total >= seconds * sr:
            break
    audio = np.concatenate(parts, axis=1)[:, : int(seconds * sr)]
    acc = resample(audio[0], sr, 48000)
    voc = resample(audio[1], sr, 48000)
    accompaniment = np.stack([acc, 0.8 * acc])  # panned a little, so the channels differ
    vocals = np.stack([0.9 * voc, voc])
    mix = accompaniment + vocals
    out: dict[str, Any] = {"duration_s": seconds, "sample_rate": 48000, "channels": 2}
    with tempfile.TemporaryDirectory() as tmp:
        save_audio(Path(tmp) / "song.flac", 0.7 * mix, 48000)
        instr = np.concatenate([np.zeros((2, 24000), np.float32), 0.6 * accompaniment], axis=1)
        save_audio(Path(tmp) / "song_inst.mp3", instr, 48000, bitrate_kbps=320)
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        proc = ctx.Process(target=_baseline_worker, args=(queue,))
        proc.start()
        out["baseline_rss_mb"] = queue.get()
        proc.join()
        runs = []
        for preset in PRESETS:
            queue = ctx.Queue()
            proc = ctx.Process(target=_long_song_worker, args=(tmp, preset, queue))
            proc.start()
            runs.append(queue.get())
            proc.join()
        out["runs"] = runs
        out["expected_offset_samples"] = -24000 - LAME_DELAY
    return out


def print_tables(results: dict[str, Any]) -> None:
    s = results["mined"]["summary"]
    table = Table(
        title=f"Mined pairs: {s['pairs']} MIR-1K clips, offset ±2 s, gain ±6 dB, MP3 128k"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("rejected (should be 0)", str(s["rejected"]))
    table.add_row(
        "alignment error, samples: median / p95 / max",
        " / ".join(
            f"{s[k]:.0f}"
            for k in (
                "align_error_samples_median",
                "align_error_samples_p95",
                "align_error_samples_max",
            )
        ),
    )
    table.add_row("alignment exact to the sample", f"{100 * s['align_exact_fraction']:.0f} %")
    table.add_row(
        "gain error vs oracle, dB: median / p95 / max",
        " / ".join(
            f"{s[k]:.4f}"
            for k in ("gain_error_db_median", "gain_error_db_p95", "gain_error_db_max")
        ),
    )
    table.add_row(
        "BS.1770 equalisation alone, dB error (median)", f"{s['loudness_only_error_db_median']:.2f}"
    )
    table.add_row("codec level change (lameenc), dB (median)", f"{s['codec_level_db_median']:+.2f}")
    table.add_row(
        "seconds per pair (align+gain+derive), median", f"{s['seconds_per_pair_median']:.3f}"
    )
    console.print(table)

    sdr = Table(title="Vocal SDR (dB, median over clips; mixture phase; at the preset's rate)")
    for col in (
        "preset",
        "clips",
        "mined",
        "true offset+gain",
        "clean instrumental",
        "loss median",
        "loss p95",
    ):
        sdr.add_column(col, justify="right")
    for name in PRESETS:
        v = s[f"sdr_{name}"]
        sdr.add_row(
            name,
            str(v["clips"]),
            f"{v['mined_median']:.2f}",
            f"{v['oracle_offset_gain_median']:.2f}",
            f"{v['clean_instrumental_median']:.2f}",
            f"{v['loss_vs_oracle_median']:.3f}",
            f"{v['loss_vs_oracle_p95']:.3f}",
        )
    console.print(sdr)

    sens = results["sensitivity"]
    st = Table(
        title=f"Sensitivity: median vocal SDR loss (dB), hq preset, {sens['clips']} clips at 16 kHz"
    )
    st.add_column("error")
    st.add_column("SDR loss", justify="right")
    for s_, loss in sens["shift_samples_at_16khz"].items():
        st.add_row(f"shift {s_} samples ({int(s_) / 16:.2f} ms)", f"{loss:.3f}")
    for g, loss in sens["gain_error_db"].items():
        st.add_row(f"gain {g} dB", f"{loss:.3f}")
    console.print(st)

    if "long_song" in results:
        base = results["long_song"]["baseline_rss_mb"]
        lt = Table(
            title="Five-minute stereo 48 kHz pair through process_pair (fresh process; "
            f"imports alone: {base:.0f} MB)"
        )
        for col in (
            "preset",
            "reason",
            "seconds",
            "load",
            "align",
            "gain",
            "derive",
            "segments",
            "peak RSS MB",
        ):
            lt.add_column(col, justify="right")
        for run in results["long_song"]["runs"]:
            st_ = run["stage_seconds"]
            lt.add_row(
                run["preset"],
                str(run["reason"]),
                f"{run['seconds']:.1f}",
                *(f"{st_.get('seconds_' + k, 0):.2f}" for k in ("load", "align", "gain", "derive")),
                str(run["segments"]),
                f"{run['peak_rss_mb']:.0f}",
            )
        console.print(lt)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100, help="MIR-1K clips for the pair test")
    parser.add_argument("--sensitivity-count", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-long-song", action="store_true", help="skip the 5-minute song")
    args = parser.parse_args()
    if not MIR1K.is_dir():
        sys.exit(f"MIR-1K clips not found at {MIR1K}: see ../shared/data/README.md")
    results: dict[str, Any] = {
        "benchmark": "derivation",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(),
        },
        "args": vars(args),
    }
    results["mined"] = mined_pairs(args.count, args.seed)
    results["sensitivity"] = sensitivity(args.sensitivity_count, args.seed)
    if not args.no_long_song:
        results["long_song"] = long_song()
    print_tables(results)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS, json.dumps(results, indent=2, default=float))
    console.print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
