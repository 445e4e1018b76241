"""The paper's baseline (Jansson et al. 2017 §4): the U-Net without skip connections.

A plain convolutional encoder-decoder, "similar to the Deconvnet"; one network per source like
the U-Net, so the only difference in the ablation is the skip connections.
"""

from __future__ import annotations

from vocalmine.core.stft import STFTPreset
from vocalmine.training.models.unet import UNetSeparator


class NoSkipSeparator(UNetSeparator):
    """Two encoder-decoders (vocals, accompaniment) without skip connections."""

    def __init__(self, preset: STFTPreset, *, width: int = 16, dropout: float = 0.5) -> None:
        super().__init__(preset, width=width, dropout=dropout, skip=False, kind="no-skip")
