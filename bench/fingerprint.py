"""Fingerprint speed: real-time factor of :func:`mining.landmarks.fingerprint` on one core.

Cases (audio already decoded; decoding is the catalog scan's cost, not the fingerprint's):

* ``--clips`` MIR-1K mixes (16 kHz mono, 3–12 s each), one after the other;
* a 4-minute synthetic song at 44.1 kHz stereo (chords, melody, bass, drums), best of 3 runs;
* the same 4 minutes as white noise — the worst case: every cell is a candidate peak.

Also timed: matching the 4-minute fingerprint against itself and against a shifted copy,
building a :class:`~mining.fingerprint_index.FingerprintIndex` over the clips, and querying it with
every clip. BLAS/OpenMP pools are pinned to one thread before numpy loads.

Prints a rich table and writes ``bench/results/fingerprint.json`` (with the load average, since
shared machines make timings noisy: each number is the best of the repeats).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vocalmine.core.atomic import atomic_write_text  # noqa: E402
from vocalmine.core.audio import load_audio  # noqa: E402
from vocalmine.mining.fingerprint_index import FingerprintIndex  # noqa: E402
from vocalmine.mining.fingerprint_match import match  # noqa: E402
from vocalmine.mining.landmarks import fingerprint  # noqa: E402

MIR1K = ROOT.parent / "shared" / "data" / "mir1k"
RESULTS = ROOT / "bench" / "results" / "fingerprint.json"
console = Console(width=160)


def synthetic_song(seconds: float, sr: int = 44100, seed: int = 0) -> np.ndarray:
    """Stereo music-like signal: chord pads, a melody, a bass line and drums, 120 bpm."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    beat = 0.5
    out = np.zeros((2, n), np.float32)
    root_notes = rng.integers(40, 52, size=int(seconds / (4 * beat)) + 1)
    for i, note in enumerate(root_notes):
        start, stop = int(i * 4 * beat * sr), min(n, int((i + 1) * 4 * beat * sr))
        seg = t[: stop - start]
        env = np.exp(-seg * 1.5)
        for interval, pan in ((0, 0.5), (4, 0.3), (7, 0.7), (12, 0.5)):
            f = 440.0 * 2 ** ((note + interval - 69) / 12)
            tone = (np.sin(2 * np.pi * f * seg) + 0.3 * np.sin(4 * np.pi * f * seg)) * env * 0.08
            out[0, start:stop] += tone * (1 - pan)
            out[1, start:stop] += tone * pan
        bass = 440.0 * 2 ** ((note - 12 - 69) / 12)
        out[:, start:stop] += 0.15 * np.sin(2 * np.pi * bass * seg) * np.exp(-seg * 3)
    for k in range(int(seconds / (beat / 2))):
        start = int(k * beat / 2 * sr)
        length = min(n - start, int(0.12 * sr))
        seg = t[:length]
        if k % 2 == 0:
            note = 72 + int(rng.integers(0, 12))
            f = 440.0 * 2 ** ((note - 69) / 12)
            out[:, start : start + length] += 0.1 * np.sin(2 * np.pi * f * seg) * np.exp(-seg * 8)
        hit = rng.standard_normal(length) * np.exp(-seg * (40 if k % 4 else 15)) * 0.2
        out[:, start : start + length] += hit
    return out / np.abs(out).max() * 0.9


def best_of(repeats: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    """Fastest wall time of ``repeats`` runs, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=100, help="MIR-1K clips to fingerprint")
    parser.add_argument("--repeats", type=int, default=3, help="runs per case (best is kept)")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []

    def add(case: str, audio_s: float, seconds: float, fp_hashes: int | None, note: str) -> None:
        rows.append(
            {
                "case": case,
                "audio_s": round(audio_s, 2),
                "seconds": round(seconds, 4),
                "x_realtime": round(audio_s / seconds, 1) if audio_s else None,
                "hashes_per_audio_s": round(fp_hashes / audio_s, 1) if fp_hashes else None,
                "note": note,
            }
        )

    clips: list[tuple[np.ndarray, int]] = []
    if MIR1K.is_dir():
        for path in sorted(MIR1K.glob("*.flac"))[: args.clips]:
            audio, sr = load_audio(path)
            clips.append((audio[0] + audio[1], sr))
        total = sum(a.size / sr for a, sr in clips)
        seconds, fps = best_of(args.repeats, lambda: [fingerprint(a, sr) for a, sr in clips])
        add(f"{len(clips)} MIR-1K mixes", total, seconds, sum(len(f) for f in fps), "16 kHz mono")
        size = sum(len(f.to_bytes()) for f in fps) / total
        console.print(f"stored size: {size / 1024:.1f} KiB per second of audio (npz)")
        index_s, index = best_of(args.repeats, lambda: FingerprintIndex(dict(enumerate(fps))))
        add(f"index {len(fps)} clips", 0.0, index_s, None, "FingerprintIndex build")
        query_s, _ = best_of(
            args.repeats, lambda: [index.query(f, exclude=i) for i, f in enumerate(fps)]
        )
        add(f"query index x{len(fps)}", 0.0, query_s, None, "every clip against all")
    else:
        console.print(f"[yellow]MIR-1K clips not found at {MIR1K}; synthetic cases only")

    song = synthetic_song(240.0)
    seconds, song_fp = best_of(args.repeats, lambda: fingerprint(song, 44100))
    add("4-min synthetic song", 240.0, seconds, len(song_fp), "44.1 kHz stereo")
    noise = np.random.default_rng(1).standard_normal((2, 240 * 44100)).astype(np.float32) * 0.1
    seconds, noise_fp = best_of(args.repeats, lambda: fingerprint(noise, 44100))
    add("4-min white noise", 240.0, seconds, len(noise_fp), "44.1 kHz stereo, worst case")
    shifted_fp = fingerprint(song[:, 44100 * 3 + 1234 :], 44100)
    seconds, result = best_of(args.repeats, lambda: match(shifted_fp, song_fp))
    add("match 4 min vs 4 min", 0.0, seconds, None, f"ratio {result.ratio:.2f}")

    table = Table(title="Landmark fingerprint speed (one core)")
    for column in ("case", "audio s", "compute s", "× real time", "hashes / audio s", "note"):
        table.add_column(column, justify="right" if column != "case" else "left")
    for row in rows:
        table.add_row(
            row["case"],
            f"{row['audio_s']:.0f}" if row["audio_s"] else "-",
            f"{row['seconds']:.3f}",
            f"{row['x_realtime']:.0f}" if row["x_realtime"] else "-",
            f"{row['hashes_per_audio_s']:.0f}" if row["hashes_per_audio_s"] else "-",
            row["note"],
        )
    console.print(table)
    load = os.getloadavg()
    console.print(f"load average during the run: {load[0]:.1f} on {os.cpu_count()} cores")
    payload = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/fingerprint.py " + " ".join(sys.argv[1:]),
        "machine": platform.platform(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "load_average": load,
        "rows": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS, json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
