"""Calibrate the fingerprint verification thresholds on real audio (MIR-1K).

For ``--count`` clips (seeded draw) the original is the mix ``L + R`` (16 kHz, FLAC-exact) and
every query below is degraded the way a real library degrades audio: a random gain (±6 dB, kept
below clipping), a random offset (0–2 s, cut from the start or padded with silence), resampling
to 44.1 or 48 kHz, and an MP3 round trip at 128 kbit/s (lameenc via vocalmine.core.audio).

Categories (query → reference = the clip's mix):

* ``true_pair``: the clip's own accompaniment (L) — must be accepted (a ``fingerprint_mismatch``
  suspect is accepted too: its alignment confirms it);
* ``same_audio``: the mix itself — must be ``same_audio``, outright or as a ``same_audio``
  suspect (whose derived vocals then reject it);
* ``other_song``: the accompaniment of a clip of another song — must be rejected;
* ``other_clip``: the accompaniment of another clip of the same song — must be rejected;
* ``stretched``: the accompaniment time-stretched by 3–5 % (librosa phase vocoder) — a "remix";
* ``pitched``: the accompaniment pitch-shifted by ±1 semitone (librosa) — a "remix".

A suspect is settled as the flow settles it: :func:`mining.pair_pipeline.process_pair` on the
clip's mix (FLAC) and the degraded query file, its verdict shown as ``suspect X → outcome``.

It also scores the orientation rules of discovery (which side is the mix): hash-ratio asymmetry
and :func:`mining.discovery.orient_pair` with both sides normalised to equal RMS.

Prints rich tables (quantiles of ratio, matches, sharpness, offset error) and writes
``bench/results/fingerprint_calibration.json``. ``--count 60`` takes a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import librosa
import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vocalmine.core.atomic import atomic_write_text  # noqa: E402
from vocalmine.core.audio import load_audio, resample, save_audio  # noqa: E402
from vocalmine.mining.discovery import orient_pair  # noqa: E402
from vocalmine.mining.fingerprint_match import DEFAULT_THRESHOLDS, match, verify_pair  # noqa: E402
from vocalmine.mining.landmarks import fingerprint  # noqa: E402
from vocalmine.mining.pair_pipeline import process_pair  # noqa: E402

MIR1K = ROOT.parent / "shared" / "data" / "mir1k"
RESULTS = ROOT / "bench" / "results" / "fingerprint_calibration.json"
LAME_DELAY = 1105  # lameenc writes no gapless header: decoded MP3s start 576 + 529 samples late
CATEGORIES = ("true_pair", "same_audio", "other_song", "other_clip", "stretched", "pitched")
console = Console(width=200)


def degrade(
    audio: np.ndarray, sr: int, rng: np.random.Generator, tmp: Path
) -> tuple[np.ndarray, int, float]:
    """Gain, offset, resample, MP3 128k → (audio, rate, true offset of it inside the input, s)."""
    gain = 10 ** (rng.uniform(-6, 6) / 20)
    audio = audio * min(gain, 0.99 / max(float(np.abs(audio).max()), 1e-9))
    shift = int(rng.uniform(0, 2) * sr)
    if rng.random() < 0.5:
        audio, offset = audio[shift:], shift / sr
    else:
        audio, offset = np.concatenate([np.zeros(shift, np.float32), audio]), -shift / sr
    rate = int(rng.choice([44100, 48000]))
    audio = resample(audio.astype(np.float32), sr, rate)
    path = save_audio(tmp / "q.mp3", audio[None], rate, bitrate_kbps=128)
    decoded, rate = load_audio(path)
    return decoded[0], rate, offset - LAME_DELAY / rate


def quantiles(values: list[float]) -> dict[str, float]:
    """min, 5 %, median, 95 %, max."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return {}
    q = np.quantile(arr, [0.0, 0.05, 0.5, 0.95, 1.0])
    return dict(zip(("min", "p5", "median", "p95", "max"), (float(v) for v in q), strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=60, help="clips to draw (seeded)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON results file")
    args = parser.parse_args()
    if not MIR1K.is_dir():
        console.print(f"[red]MIR-1K clips not found at {MIR1K}; nothing to calibrate")
        sys.exit(1)
    rng = np.random.default_rng(args.seed)
    files = sorted(MIR1K.glob("*.flac"))
    songs: dict[str, list[Path]] = {}
    for f in files:
        songs.setdefault(f.stem.rsplit("_", 1)[0], []).append(f)
    chosen = rng.choice(len(files), size=min(args.count, len(files)), replace=False)
    rows: dict[str, list[dict[str, float]]] = {c: [] for c in CATEGORIES}
    verdicts: dict[str, dict[str, int]] = {c: {} for c in CATEGORIES}
    orient_hash_ok = orient_audio_ok = orient_n = 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for k in chosen:
            file = files[k]
            song = file.stem.rsplit("_", 1)[0]
            stereo, sr = load_audio(file)
            acc, mix = stereo[0], stereo[0] + stereo[1]
            ref = fingerprint(mix, sr)
            mix_file = save_audio(tmp / "mix.flac", mix[None] / max(1.0, np.abs(mix).max()), sr)
            others = [s for s in songs if s != song]
            other_file = songs[others[rng.integers(len(others))]][0]
            siblings = [f for f in songs[song] if f != file]
            queries: dict[str, np.ndarray] = {"true_pair": acc, "same_audio": mix}
            queries["other_song"] = load_audio(other_file)[0][0]
            if siblings:
                queries["other_clip"] = load_audio(siblings[rng.integers(len(siblings))])[0][0]
            rate = rng.uniform(1.03, 1.05) * rng.choice([-1, 1])
            queries["stretched"] = librosa.effects.time_stretch(
                acc, rate=rate if rate > 0 else 1 / -rate
            )
            queries["pitched"] = librosa.effects.pitch_shift(
                acc, sr=sr, n_steps=float(rng.choice([-1, 1]))
            )
            for category, audio in queries.items():
                degraded, qsr, true_offset = degrade(audio, sr, rng, tmp)
                query = fingerprint(degraded, qsr)
                result = match(query, ref)
                verdict = verify_pair(ref, query)
                key = verdict.reason or "accepted"
                if verdict.suspect:
                    settled = process_pair(
                        mix_file,
                        tmp / "q.mp3",
                        "paper",
                        verdict.offset_s,
                        segment_skip_s=0.0,
                        suspect=verdict.suspect,
                    )
                    key = f"suspect {verdict.suspect} → {settled.reason or 'mined'}"
                verdicts[category][key] = verdicts[category].get(key, 0) + 1
                rows[category].append(
                    {
                        "clip": file.stem,
                        "ratio": round(result.ratio, 4),
                        "n_matches": result.n_matches,
                        "sharpness": round(result.sharpness, 2),
                        "coverage": round(result.coverage, 3),
                        "offset_error_frames": round(
                            (result.offset_s - true_offset) / query.frame_s, 3
                        ),
                    }
                )
                if category == "true_pair":
                    back = match(ref, query)
                    orient_n += 1
                    orient_hash_ok += int(back.ratio < result.ratio)
                    inst = resample(degraded, qsr, sr)
                    mix_eq = mix / np.sqrt(np.mean(mix**2))
                    inst_eq = inst / np.sqrt(np.mean(inst**2))
                    orient_audio_ok += int(orient_pair(mix_eq, inst_eq, sr, result.offset_s))
    elapsed = time.perf_counter() - started

    summary: dict[str, Any] = {}
    table = Table(title=f"Fingerprint calibration on {len(chosen)} MIR-1K clips (query → mix)")
    for column in (
        "category",
        "ratio min / p5 / median / p95 / max",
        "matches median",
        "coverage min / median / max",
        "sharpness median",
        "|offset err| max (frames)",
        "verdicts",
    ):
        table.add_column(column)
    for category in CATEGORIES:
        data = rows[category]
        ratio = quantiles([r["ratio"] for r in data])
        matches = quantiles([r["n_matches"] for r in data])
        sharp = quantiles([r["sharpness"] for r in data])
        cover = quantiles([r["coverage"] for r in data])
        offset_err = [abs(r["offset_error_frames"]) for r in data]
        decisive = [r["ratio"] for r in data if r["n_matches"] >= DEFAULT_THRESHOLDS.min_matches]
        summary[category] = {
            "n": len(data),
            "ratio": ratio,
            "ratio_with_enough_matches": quantiles(decisive),
            "n_matches": matches,
            "sharpness": sharp,
            "coverage": cover,
            "abs_offset_error_frames": quantiles(offset_err),
            "verdicts": verdicts[category],
        }
        table.add_row(
            category,
            " / ".join(f"{ratio[k]:.3f}" for k in ("min", "p5", "median", "p95", "max")),
            f"{matches['median']:.0f}",
            " / ".join(f"{cover[k]:.2f}" for k in ("min", "median", "max")),
            f"{sharp['median']:.1f}",
            f"{max(offset_err):.2f}" if category in ("true_pair", "same_audio") else "-",
            ", ".join(f"{k}: {v}" for k, v in sorted(verdicts[category].items())),
        )
    console.print(table)
    orientation = {
        "pairs": orient_n,
        "hash_asymmetry_correct": orient_hash_ok,
        "orient_pair_equal_rms_correct": orient_audio_ok,
    }
    console.print(
        f"orientation (which side is the mix) over {orient_n} true pairs: hash asymmetry "
        f"{orient_hash_ok}/{orient_n}, orient_pair at equal RMS {orient_audio_ok}/{orient_n}"
    )
    console.print(f"thresholds: {DEFAULT_THRESHOLDS}; {elapsed:.0f} s")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.platform(),
        "command": "python bench/fingerprint_calibration.py " + " ".join(sys.argv[1:]),
        "clips": len(chosen),
        "seed": args.seed,
        "thresholds": DEFAULT_THRESHOLDS.__dict__,
        "categories": summary,
        "orientation": orientation,
        "seconds": elapsed,
        "samples": rows,
    }
    atomic_write_text(args.output, json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
