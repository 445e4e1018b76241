"""Write the small shard sets that ``bench/gpu.sh`` reads on a lent GPU machine.

One dataset per STFT preset under ``bench/gpu-shards/<preset>/`` (ignored by git; carried to
the machine with ``carry: ["bench/gpu-shards"]``), written with the normal shard writer. The
patches are synthetic, spectrogram-like magnitudes (a falling spectral envelope times gamma
noise; vocals = mix − instrumental), their float16 mantissas cut to 4 bits so the whole folder
stays far below the carry limit: the benchmark measures speed and numerics, not separation
quality. ``paper`` rows are 0.4 MB before compression, ``spleeter`` rows 6.3 MB.

    python bench/gpu_prepare.py                      # paper: 32 rows, spleeter: 6 rows
    python bench/gpu_prepare.py --presets paper --rows 8 --out /tmp/shards
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vocalmine.core.stft import STFTPreset, get_preset  # noqa: E402
from vocalmine.storage.shard_schema import Segment  # noqa: E402
from vocalmine.storage.shard_writer import ShardWriter  # noqa: E402

OUT = ROOT / "bench" / "gpu-shards"
#: Rows per preset by default, and rows per row group (each group is one loader work unit).
ROWS = {"paper": 32, "spleeter": 6}
ROWS_PER_GROUP = {"paper": 4, "spleeter": 1}
SEGMENTS_PER_PAIR = 2
MANTISSA_MASK = np.uint16(0xFFC0)  # keep sign, exponent and the top 4 of 10 mantissa bits


def coarse(values: np.ndarray) -> np.ndarray:
    """``values`` as float16 with 4 mantissa bits (compresses well), back in float32."""
    half = values.astype(np.float16).view(np.uint16) & MANTISSA_MASK
    return half.view(np.float16).astype(np.float32)


def synthetic_segments(pair_id: int, preset: STFTPreset, count: int, split: str) -> list[Segment]:
    """``count`` spectrogram-like patches of one pair."""
    rng = np.random.default_rng(pair_id)
    shape = (preset.channels, preset.bins, preset.patch_frames)
    envelope = (1.0 / (1.0 + np.arange(preset.bins) / 8.0))[None, :, None]
    segments = []
    for index in range(count):
        instrumental = coarse(rng.gamma(1.0, 4.0, shape) * envelope)
        mix = coarse(instrumental + rng.gamma(0.5, 2.0, shape) * envelope)
        segments.append(
            Segment(
                pair_id=pair_id,
                segment_index=index,
                start_s=index * preset.patch_seconds,
                artist=f"artist {pair_id}",
                split=split,
                quality=1.0,
                mix=mix,
                instrumental=instrumental,
                vocals=coarse(np.maximum(mix - instrumental, 0.0)),
            )
        )
    return segments


def write_preset(out: Path, name: str, rows: int) -> Path:
    """Replace ``out/<name>`` with ``rows`` train rows and one valid pair."""
    preset = get_preset(name)
    shutil.rmtree(out / name, ignore_errors=True)
    group = ROWS_PER_GROUP.get(name, 1)
    with ShardWriter(str(out), name, preset, rows_per_shard=8, rows_per_group=group) as writer:
        pairs = -(-rows // SEGMENTS_PER_PAIR)
        for pair in range(pairs):
            count = min(SEGMENTS_PER_PAIR, rows - pair * SEGMENTS_PER_PAIR)
            writer.write_pair(pair, synthetic_segments(pair, preset, count, "train"))
        writer.write_pair(pairs, synthetic_segments(pairs, preset, 1, "valid"))
    return out / name


def folder_bytes(path: Path) -> int:
    """Bytes of every file under ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main(argv: list[str] | None = None) -> int:
    """Write the shard sets; prints each one's size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="folder of the shard sets")
    parser.add_argument("--presets", nargs="+", default=list(ROWS), help="STFT presets")
    parser.add_argument("--rows", type=int, help="train rows per preset (default: per preset)")
    args = parser.parse_args(argv)
    for name in args.presets:
        folder = write_preset(args.out, name, args.rows or ROWS.get(name, 8))
        print(f"{folder}: {folder_bytes(folder) / 2**20:.1f} MiB")
    print(f"total {folder_bytes(args.out) / 2**20:.1f} MiB in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
