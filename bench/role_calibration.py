"""Role-check calibration (issue 12): true pairs against a cappella versions built from true stems.

For every song of the real sources (MIR-1K songs: accompaniment = left channel, vocals = right;
MUSDB18-7 previews: accompaniment = drums + bass + other, vocals = the vocals stream) and a few
synthetic songs, three (original, instrumental) pairs go through the mining steps
(:func:`mining.alignment.align`, :func:`mining.loudness.match_gain`, :func:`mining.vocals.derive`
at the ``paper`` preset, :func:`mining.roles.role_features`):

* ``true``: the mix and its accompaniment at a random gain (−9…+6 dB), the pair we want;
* ``acappella_as_instrumental``: the mix and its vocal stem, as fingerprint discovery proposes
  an untagged a cappella (the orientation rule calls the mix the original);
* ``acappella_as_original``: the vocal stem as the original and the mix as the instrumental;
* ``mix_copy_128k`` / ``mix_copy_64k``: the mix and an MP3 copy of it (128 and 64 kbit/s), the
  "instrumental" that is really the mix; they calibrate the ``no_vocals`` check
  (``vocal_activity_db``) against the true pairs.

For each feature it prints the range of each case and the margin between the worst true pair
and the best-hidden a cappella at the default thresholds (:class:`mining.roles.RoleThresholds`),
and how many pairs of each case every check and the whole verdict reject. Writes
``bench/results/role_calibration.json``.

    .venv/bin/python bench/role_calibration.py [--synthetic 8] [--preset paper]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vocalmine.core.atomic import atomic_write_text  # noqa: E402
from vocalmine.core.audio import load_audio, save_audio  # noqa: E402
from vocalmine.core.stft import get_preset  # noqa: E402
from vocalmine.mining.alignment import align, apply_alignment  # noqa: E402
from vocalmine.mining.loudness import match_gain  # noqa: E402
from vocalmine.mining.roles import (  # noqa: E402
    DEFAULT_ROLE_THRESHOLDS,
    check_gain,
    check_role,
    role_features,
)
from vocalmine.mining.vocals import MIN_VOCAL_RATIO_DB, derive, vocal_activity_db  # noqa: E402
from vocalmine.testlib.sources import Mir1kSource, MusdbSource, SyntheticSource  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results" / "role_calibration.json"
CASES = (
    "true",
    "acappella_as_instrumental",
    "acappella_as_original",
    "mix_copy_128k",
    "mix_copy_64k",
)
COPY_BITRATES = {"mix_copy_128k": 128, "mix_copy_64k": 64}
console = Console(width=160)


def assess(mix: np.ndarray, instr: np.ndarray, sr: int, preset_name: str) -> dict[str, Any]:
    """The mining steps on one in-memory pair: gain, role features, each check's outcome."""
    preset = get_preset(preset_name)
    alignment = align(mix, instr, sr)
    placed = apply_alignment(instr, alignment, mix.shape[1])
    gain = match_gain(mix, placed, sr)
    placed *= np.float32(gain.gain)
    derived = derive(mix, placed, sr, preset)
    features = role_features(derived, preset.sample_rate, preset.n_fft)
    activity = vocal_activity_db(derived)
    checks = [check_gain(gain.gain_db), *check_role(features)]
    vouched = [check_gain(gain.gain_db), *check_role(features, vouched=True)]
    no_vocals = ["vocal_activity_db"] if activity < MIN_VOCAL_RATIO_DB else []
    return {
        "aligned": alignment.ok,
        "gain_db": gain.gain_db,
        "vocal_activity_db": activity,
        **features.as_dict(),
        "failed": [c.name for c in checks if not c.passed] + no_vocals,
        "failed_vouched": [c.name for c in vouched if not c.passed] + no_vocals,
    }


def mp3_copy(audio: np.ndarray, sr: int, kbps: int, workdir: Path) -> np.ndarray:
    """``audio`` through an MP3 encode and decode at ``kbps`` (LAME), as a copy in a library."""
    path = save_audio(workdir / "copy.mp3", audio, sr, bitrate_kbps=kbps)
    return load_audio(path, sr=sr)[0]


def songs(args: argparse.Namespace) -> list[tuple[str, Any, Any]]:
    """(source, source object, key) of every song to calibrate on."""
    out: list[tuple[str, Any, Any]] = []
    if (DATA / "mir1k").is_dir():
        src = Mir1kSource(DATA / "mir1k")
        out += [("mir1k", src, k) for k in list(src.keys())]
    else:
        console.log(f"{DATA / 'mir1k'} is absent: MIR-1K skipped")
    if (DATA / "musdb18-7" / "test").is_dir():
        src = MusdbSource(DATA / "musdb18-7" / "test")
        out += [("musdb", src, k) for k in list(src.keys())]
    else:
        console.log(f"{DATA / 'musdb18-7'} is absent: MUSDB18-7 skipped")
    if args.synthetic:
        src = SyntheticSource(args.seed, args.synthetic, (60.0, 90.0))
        out += [("synthetic", src, k) for k in list(src.keys())]
    return out


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    rng = np.random.default_rng(args.seed)
    rows = []
    workdir = Path(tempfile.mkdtemp(prefix="vocalmine-role-calibration-"))
    for source, src, key in songs(args):
        song = src.load(key, rng)
        sr = song.sample_rate
        gain = np.float32(10 ** (rng.uniform(-9.0, 6.0) / 20))
        pairs = {
            "true": (song.mix, song.accompaniment * gain),
            "acappella_as_instrumental": (song.mix, song.vocals * gain),
            "acappella_as_original": (song.vocals, song.mix * gain),
            **{
                case: (song.mix, mp3_copy(song.mix, sr, kbps, workdir))
                for case, kbps in COPY_BITRATES.items()
            },
        }
        for case, (orig, instr) in pairs.items():
            start = time.perf_counter()
            row = assess(orig.astype(np.float32), instr.astype(np.float32), sr, args.preset)
            row.update(source=source, song=song.key, case=case, s=time.perf_counter() - start)
            rows.append(row)
    shutil.rmtree(workdir, ignore_errors=True)
    return rows


FEATURES = (
    ("gain_db", "abs"),
    ("vocal_activity_db", None),
    ("low_share_ratio", "max"),
    ("instrumental_silence", "max"),
    ("unexplained", "max"),
    ("vocals_low_share", None),
    ("instrumental_low_share", None),
    ("vocals_silence", None),
    ("vocals_dynamics_db", None),
    ("instrumental_dynamics_db", None),
)


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per source, case and feature: min / median / max; per case: rejections by check."""
    out: dict[str, Any] = {"features": {}, "rejected": {}}
    for source in sorted({r["source"] for r in rows}) + ["all"]:
        for case in CASES:
            sel = [r for r in rows if r["case"] == case and source in ("all", r["source"])]
            if not sel:
                continue
            key = f"{source}/{case}"
            out["features"][key] = {
                name: {
                    "min": float(np.min([abs(r[name]) if kind == "abs" else r[name] for r in sel])),
                    "median": float(
                        np.median([abs(r[name]) if kind == "abs" else r[name] for r in sel])
                    ),
                    "max": float(np.max([abs(r[name]) if kind == "abs" else r[name] for r in sel])),
                }
                for name, kind in FEATURES
            }
            counts: dict[str, int] = {"pairs": len(sel), "rejected": 0}
            counts["rejected, title vouches"] = sum(bool(r["failed_vouched"]) for r in sel)
            for r in sel:
                counts["rejected"] += bool(r["failed"])
                for name in r["failed"]:
                    counts[name] = counts.get(name, 0) + 1
            out["rejected"][key] = counts
    return out


def print_tables(summary: dict[str, Any]) -> None:
    table = Table(title="Role features (min / median / max); |gain| in dB")
    table.add_column("source / case")
    for name, _ in FEATURES:
        table.add_column(name, justify="right")
    for key, feats in summary["features"].items():
        table.add_row(
            key,
            *(
                f"{feats[n]['min']:.3f} / {feats[n]['median']:.3f} / {feats[n]['max']:.3f}"
                for n, _ in FEATURES
            ),
        )
    console.print(table)
    t = DEFAULT_ROLE_THRESHOLDS
    console.print(
        f"thresholds: |gain| <= {t.max_gain_db} dB, low_share_ratio <= {t.max_low_share_ratio} "
        f"({t.vouched_max_low_share_ratio} when the title vouches), "
        f"instrumental_silence <= {t.max_instrumental_silence}, "
        f"unexplained <= {t.max_unexplained} (low band < {t.low_band_hz:g} Hz), "
        f"vocal_activity_db >= {MIN_VOCAL_RATIO_DB} dB (no_vocals)"
    )
    rej = Table(title="Rejected by the checks (a true pair rejected is lost recall)")
    rej.add_column("source / case")
    names = ["pairs", "rejected", "rejected, title vouches", "gain_db", "low_share_ratio"]
    names += ["instrumental_silence"]
    names += ["unexplained", "vocal_activity_db"]
    for n in names:
        rej.add_column(n, justify="right")
    for key, counts in summary["rejected"].items():
        rej.add_row(key, *(str(counts.get(n, 0)) for n in names))
    console.print(rej)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", type=int, default=8, help="synthetic songs (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", default="paper", choices=("paper", "hq"))
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    start = time.perf_counter()
    rows = run(args)
    summary = summarise(rows)
    print_tables(summary)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "command": "python bench/role_calibration.py " + " ".join(sys.argv[1:]),
        "preset": args.preset,
        "thresholds": DEFAULT_ROLE_THRESHOLDS.__dict__,
        "seconds": round(time.perf_counter() - start, 1),
        "summary": summary,
        "rows": rows,
    }
    atomic_write_text(args.results, json.dumps(record, indent=1))
    console.print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
