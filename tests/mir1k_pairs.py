"""Helpers shared by the alignment, loudness and vocals tests: MIR-1K clips as mining pairs.

A MIR-1K clip has the karaoke accompaniment on the left channel and the singing on the right,
so ``original = L + R``, ``instrumental = L`` and ``true vocals = R``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from vocalmine.core.audio import load_audio, save_audio

# LAME's encoder delay (576) plus the MP3 decoder delay (529): lameenc writes no gapless
# header, so a decoded MP3 starts this many samples late, whatever the rate or bitrate.
LAME_DELAY = 1105
# lameenc also lowers the level by about 0.45 dB at every rate and bitrate (measured).
LAME_LEVEL_DB = -0.45


def load_clip(mir1k_dir: Path, name: str) -> tuple[np.ndarray, np.ndarray, int]:
    """(accompaniment, vocals, sample rate) of one clip, 1-D float32 each."""
    audio, sr = load_audio(mir1k_dir / f"{name}.flac")
    return audio[0], audio[1], sr


def load_song(mir1k_dir: Path, song: str) -> tuple[np.ndarray, np.ndarray, int]:
    """All clips of one song (``amy_10``) joined end to end: a minute-long "song"."""
    parts = [load_clip(mir1k_dir, p.stem) for p in sorted(mir1k_dir.glob(f"{song}_*.flac"))]
    return (
        np.concatenate([a for a, _, _ in parts]),
        np.concatenate([v for _, v, _ in parts]),
        parts[0][2],
    )


def offset_pair(acc: np.ndarray, voc: np.ndarray, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """(mix, instrumental) as ``(1, N)`` with ``mix[n] = instrumental[n − offset]``."""
    mix = acc + voc
    if offset >= 0:
        return mix[None], acc[offset:][None].copy()
    return mix[-offset:][None].copy(), acc[None].copy()


def mp3_round_trip(audio: np.ndarray, sr: int, bitrate_kbps: int = 128) -> np.ndarray:
    """Encode with vocalmine.core.audio.save_audio (lameenc) and decode with load_audio."""
    with tempfile.TemporaryDirectory() as tmp:
        path = save_audio(Path(tmp) / "x.mp3", np.atleast_2d(audio), sr, bitrate_kbps=bitrate_kbps)
        decoded, _ = load_audio(path)
    return decoded
