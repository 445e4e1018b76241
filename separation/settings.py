"""The options of separation, without numpy, norbert or torch: the separator, the evaluation and
the command line (whose defaults are these fields' defaults) all read them from here.

Post-processing is Prétet 2018 §4.4.3 (see :mod:`.postprocess` for what each option trades);
chunking is :mod:`.chunking`'s block and patch sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from vocalmine.core.stft import STFTPreset


@dataclass(frozen=True)
class GateSettings:
    """Vocal energy gate: ``threshold`` is *b*, ``min_silence_s`` is *a* (Prétet 2018 §4.4.3)."""

    threshold: float = 0.2
    min_silence_s: float = 1.0
    window_s: float = 0.23
    fade_s: float = 0.05
    hop_s: float = 0.01


#: What the vocal mask is above the model's highest bin: ``"full"`` is vocalmine's full-band
#: rule (the band-level ratio of the model's top octave, see :mod:`.masks`); ``"zero"`` is
#: Spleeter's (no vocals there, so the accompaniment keeps everything above the band).
HighBand = Literal["full", "zero"]


@dataclass(frozen=True)
class PostProcessing:
    """Which post-processing runs; the default is none (plain ratio masks, full-band rule)."""

    binarize_alpha: float | None = None
    wiener_iterations: int = 0
    gate: GateSettings | None = None
    high_band: HighBand = "full"

    @property
    def label(self) -> str:
        """Short name for reports, e.g. ``"binarize(a=10)+gate(b=0.2,a=1s)"``."""
        parts = []
        if self.binarize_alpha is not None:
            parts.append(f"binarize(a={self.binarize_alpha:g})")
        if self.wiener_iterations:
            parts.append(f"wiener(it={self.wiener_iterations})")
        if self.gate is not None:
            parts.append(f"gate(b={self.gate.threshold:g},a={self.gate.min_silence_s:g}s)")
        if self.high_band == "zero":
            parts.append("zero-above")
        return "+".join(parts) or "none"


@dataclass(frozen=True)
class ChunkSettings:
    """Block and patch sizes; larger blocks cost memory, overlaps cost time.

    A block holds ``block_patches`` model patches (48 s for ``paper``, 47.5 s for ``hq``), sized
    so its spectrogram never needs a partial extra patch; consecutive blocks share
    ``overlap_s`` seconds, which are cross-faded.
    """

    block_patches: int = 4
    overlap_s: float = 2.0
    patch_overlap: float = 0.0

    def block_samples(self, sample_rate: int, preset: STFTPreset) -> tuple[int, int]:
        """``(size, overlap)`` of a block in samples at ``sample_rate``."""
        model_samples = (self.block_patches * preset.patch_frames - 1) * preset.hop - 1
        size = int(model_samples * sample_rate // preset.sample_rate)
        overlap = max(0, round(self.overlap_s * sample_rate))
        if not 0 <= 2 * overlap < size:
            raise ValueError(
                f"overlap of {self.overlap_s} s is too long for blocks of {size} samples"
            )
        return size, overlap
