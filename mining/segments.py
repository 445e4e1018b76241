"""Cut derived spectrograms into fixed-size training patches with a per-patch quality score.

Policy (DESIGN.md, "Vocal derivation and segments"), all of it in :class:`SegmentPolicy`:

* **Skip.** The first and last ``skip_s`` seconds (default 20 s, where lyrics are rare) are not
  cut. A song too short to keep one whole patch after skipping both ends (under
  ``2 · skip_s + patch_seconds``: 52 s for ``paper``) is cut from its start with no skip when
  ``no_skip_if_short`` is set (the default, so short songs and clips still yield data), or
  yields no segments otherwise.
* **Hop.** Patches start every ``hop_frames`` frames (default ``patch_frames``: non-overlapping).
* **Last patch.** A trailing partial patch is zero-padded to full length when it holds at least
  ``min_last_fill`` of a patch (default 0.2, so a 3 s clip still gives one ``paper`` patch), and
  dropped otherwise. Zero padding is silence in all three spectrograms, a consistent example.
* **Extent.** Patches are cut from the frames between the first and the last where the aligned
  instrumental sounds: before and after it (an intro or an outro the instrumental lacks) the
  "vocals" would be the whole mix. The skip counts from those ends.
* **Times.** Frames are centred (``center=True``), frame ``t`` at ``t · hop / sample_rate``
  seconds of the mix, so ``start_s`` is the time of the patch's first frame.
* **Quality.** :func:`mining.vocals.label_quality` over the patch's real (unpadded) frames.
* **Memory.** Whole patches are views into the derived spectrograms (no copy; a five-minute
  ``hq`` song is ~100 MB per spectrogram), only a padded last patch is a new array.

Patches are :class:`SegmentPatch` dataclasses whose field names match the shard contract's
``storage.shard_schema.Segment`` (``segment_index``, ``start_s``, ``quality``, ``mix``,
``instrumental``, ``vocals``); the flow adds ``pair_id``, ``artist`` and ``split``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vocalmine.core.stft import STFTPreset
from vocalmine.mining.vocals import Derived


@dataclass(frozen=True)
class SegmentPolicy:
    """Where patches are cut; see the module doc. ``hop_frames=None`` means non-overlapping."""

    skip_s: float = 20.0
    hop_frames: int | None = None
    no_skip_if_short: bool = True
    min_last_fill: float = 0.2


@dataclass
class SegmentPatch:
    """One patch: float32 ``(C, bins, patch_frames)`` magnitudes and its label quality.

    ``frames`` counts the real (unpadded) frames; ``vocal_ratio_db`` and ``residual_ratio_db``
    are the figures behind ``quality`` (not part of the shard row).
    """

    segment_index: int
    start_s: float
    quality: float
    mix: np.ndarray
    instrumental: np.ndarray
    vocals: np.ndarray
    frames: int
    vocal_ratio_db: float
    residual_ratio_db: float


def patch_starts(n_frames: int, preset: STFTPreset, policy: SegmentPolicy) -> list[int]:
    """First frame of every patch of a song of ``n_frames`` frames under ``policy``."""
    size = preset.patch_frames
    hop = size if policy.hop_frames is None else policy.hop_frames
    if hop < 1:
        raise ValueError(f"segment hop must be at least one frame, got {hop}")
    skip = math.ceil(policy.skip_s * preset.sample_rate / preset.hop) if policy.skip_s > 0 else 0
    if n_frames - 2 * skip < size:
        if not policy.no_skip_if_short:
            return []
        skip = 0
    first, end = skip, n_frames - skip
    starts = list(range(first, end - size + 1, hop))
    tail = starts[-1] + hop if starts else first
    if tail < end and tail + size > end and (end - tail) >= policy.min_last_fill * size:
        starts.append(tail)
    return starts


def _patch(array: np.ndarray, start: int, size: int) -> np.ndarray:
    """``array[..., start:start+size]`` (a view), zero-padded on the right past the end (a copy)."""
    part = array[..., start : start + size]
    if part.shape[-1] == size:
        return part
    out = np.zeros((*array.shape[:-1], size), dtype=np.float32)
    out[..., : part.shape[-1]] = part
    return out


def cut_segments(
    derived: Derived, preset: STFTPreset, policy: SegmentPolicy | None = None
) -> list[SegmentPatch]:
    """Patches of ``derived`` (at ``preset``) with indices, start times and quality scores."""
    policy = policy or SegmentPolicy()
    size = preset.patch_frames
    sounding = np.flatnonzero(derived.instrumental_sounds())
    if sounding.size == 0:
        return []
    first, end = int(sounding[0]), int(sounding[-1]) + 1
    mix, instr, vocals = (
        a[..., :end] for a in (derived.mix_mag, derived.instr_mag, derived.vocals_mag)
    )
    segments = []
    for index, offset in enumerate(patch_starts(end - first, preset, policy)):
        start = first + offset
        real = min(size, end - start)
        q = derived.quality(start, start + real)
        segments.append(
            SegmentPatch(
                segment_index=index,
                start_s=start * preset.hop / preset.sample_rate,
                quality=q.quality,
                mix=_patch(mix, start, size),
                instrumental=_patch(instr, start, size),
                vocals=_patch(vocals, start, size),
                frames=real,
                vocal_ratio_db=q.vocal_ratio_db,
                residual_ratio_db=q.residual_ratio_db,
            )
        )
    return segments
