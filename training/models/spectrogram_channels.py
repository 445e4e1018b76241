"""Spectrogram-Channels U-Net (Oh, Kim & Yun 2018, Oh et al. 2018): one network, one output channel
per source.

The encoder and decoder are the paper U-Net's; only the last layer differs, producing
``sources × channels`` masks at once, so the sources share every feature. The volume-balancing
loss that the paper pairs with it lives in :mod:`training.losses`.
"""

from __future__ import annotations

from torch import Tensor

from vocalmine.core.stft import STFTPreset
from vocalmine.training.models.base import SOURCES, SeparationModel
from vocalmine.training.models.unet import UNet


class SpectrogramChannelsSeparator(SeparationModel):
    """A single U-Net whose output channels are the sources' masks."""

    def __init__(self, preset: STFTPreset, *, width: int = 16, dropout: float = 0.5) -> None:
        super().__init__(kind="spectrogram-channels", preset=preset, width=width, dropout=dropout)
        channels = preset.channels
        self.net = UNet(channels, len(SOURCES) * channels, width=width, dropout=dropout)

    def forward(self, x: Tensor) -> Tensor:
        masks = self.net(x)
        batch, _, bins, frames = masks.shape
        return masks.view(batch, len(self.sources), self.preset.channels, bins, frames)
