"""Cutting a song of any length into pieces and stitching the separated pieces back together.

Two levels, both with overlap and windowed overlap-add so no seam is audible or measurable:

* **Blocks** of input audio (default four model patches, about 48 s, with 2 s overlap) bound
  memory: each block is separated on its own and consecutive blocks are cross-faded with
  complementary raised-cosine weights (``sin²`` / ``cos²``, which sum to one). Since each
  block's stems sum to its mixture, the cross-faded stems still sum to the mixture. Nothing is
  ever truncated: the last block runs to the last sample.
* **Patches** of the model's spectrogram (``preset.patch_frames`` frames) are what the network
  was trained on. Patches may overlap; their masks are averaged with a Hann weight (plus a small
  floor so a frame covered by one patch keeps that patch's mask).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np


def overlapping_blocks(
    pieces: Iterable[np.ndarray], channels: int, size: int, overlap: int
) -> Iterator[tuple[np.ndarray, bool]]:
    """Re-cut a stream of ``(C, n)`` pieces into blocks of ``size`` with ``overlap`` shared.

    Yields ``(block, is_last)``. Each block starts ``size - overlap`` samples after the previous
    one; the last runs to the end of the stream and is longer than ``overlap``, so every block
    brings new samples. Holds at most one block and one piece in memory.
    """
    if not 0 <= overlap < size:
        raise ValueError("overlap must be in [0, size)")
    step = size - overlap
    buffer = np.zeros((channels, 0), dtype=np.float32)
    source = iter(pieces)
    exhausted = False
    while True:
        while not exhausted and buffer.shape[1] <= size:
            piece = next(source, None)
            if piece is None:
                exhausted = True
            else:
                buffer = np.concatenate([buffer, piece], axis=1)
        if buffer.shape[1] <= size:
            if buffer.shape[1]:
                yield buffer, True
            return
        yield buffer[:, :size], False
        buffer = buffer[:, step:]


def array_pieces(audio: np.ndarray, size: int) -> Iterator[np.ndarray]:
    """An in-memory ``(C, N)`` array as consecutive pieces of ``size`` samples."""
    for start in range(0, audio.shape[1], size):
        yield audio[:, start : start + size]


class CrossFader:
    """Stitches overlapping separated blocks into one continuous stream.

    :meth:`push` takes each block as :func:`overlapping_blocks` produced it (after separation)
    and returns the samples that are final: the block minus its trailing overlap, whose head is
    cross-faded with the previous block's tail. Output length equals the input's exactly.
    """

    def __init__(self, overlap: int) -> None:
        self.overlap = overlap
        self._tail: np.ndarray | None = None
        t = (np.arange(overlap) + 0.5) / max(overlap, 1)
        self._fade_in = (np.sin(0.5 * np.pi * t) ** 2).astype(np.float32)

    def push(self, block: np.ndarray, last: bool) -> np.ndarray:
        """Final samples contributed by ``block`` (``block.shape[1] - overlap`` unless last)."""
        keep = block.shape[1] if last else block.shape[1] - self.overlap
        out = np.array(block[:, :keep], dtype=np.float32, copy=True)
        if self._tail is not None and self.overlap:
            head = self._tail * (1.0 - self._fade_in) + block[:, : self.overlap] * self._fade_in
            out[:, : self.overlap] = head
        self._tail = None if last else np.array(block[:, keep:], dtype=np.float32, copy=True)
        return out


def patch_starts(frames: int, patch: int, overlap: float) -> list[int]:
    """Start frames of ``patch``-frame patches covering ``frames`` (the last flush with the end).

    ``overlap`` is the fraction of a patch shared with the next one (0 = back to back).
    """
    if frames <= patch:
        return [0]
    hop = max(1, round(patch * (1.0 - overlap)))
    starts = list(range(0, frames - patch, hop))
    starts.append(frames - patch)
    return starts


def split_patches(spec: np.ndarray, patch: int, starts: list[int]) -> np.ndarray:
    """``(C, F, T)`` → ``(P, C, F, patch)``; zero-padded when ``T < patch``."""
    if spec.shape[-1] < patch:
        spec = np.pad(spec, [(0, 0), (0, 0), (0, patch - spec.shape[-1])])
    return np.stack([spec[..., s : s + patch] for s in starts])


def merge_patches(patches: np.ndarray, starts: list[int], frames: int) -> np.ndarray:
    """Overlap-add ``(P, ..., patch)`` masks back to ``(..., frames)`` with Hann weights."""
    patch = patches.shape[-1]
    weight = (np.sin(np.pi * (np.arange(patch) + 0.5) / patch) ** 2 + 1e-3).astype(np.float32)
    total = max(frames, patch)
    acc = np.zeros(patches.shape[1:-1] + (total,), dtype=np.float32)
    norm = np.zeros(total, dtype=np.float32)
    for p, s in zip(patches, starts, strict=True):
        acc[..., s : s + patch] += p * weight
        norm[s : s + patch] += weight
    return (acc / norm)[..., :frames]
