"""The singing-voice U-Net of Jansson et al. 2017 (Jansson et al. 2017 §3): one network per source.

Six encoder blocks (16→32→64→128→256→512 channels at the paper's width), six decoder blocks
whose inputs are concatenated with the encoder output of the same resolution (the skip
connections), and a sigmoid mask. As in the paper, :class:`UNetSeparator` holds two independent
networks, one for the vocals and one for the accompaniment; each sees the mixture and predicts
its own mask.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vocalmine.core.stft import STFTPreset
from vocalmine.training.models.base import SOURCES, SeparationModel
from vocalmine.training.models.blocks import (
    DecoderBlock,
    EncoderBlock,
    MaskHead,
    init_he_uniform,
    pad_to_multiple,
)

DEPTH = 6
DROPOUT_LAYERS = 3


def channel_plan(width: int) -> list[int]:
    """Encoder output channels: ``width`` doubled at each of the six blocks (16 → 512)."""
    return [width * 2**i for i in range(DEPTH)]


class UNet(nn.Module):
    """One encoder-decoder mapping ``(B, in, F, T)`` to a ``(B, out, F, T)`` mask in [0, 1].

    ``skip=False`` drops the skip connections: the paper's "baseline" convolutional
    encoder-decoder (Jansson et al. 2017 §4), used for the ablation.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        width: int = 16,
        dropout: float = 0.5,
        skip: bool = True,
    ) -> None:
        super().__init__()
        self.skip = skip
        plan = channel_plan(width)
        encoder_in = [in_channels, *plan[:-1]]
        self.encoder = nn.ModuleList(
            EncoderBlock(cin, cout) for cin, cout in zip(encoder_in, plan, strict=True)
        )
        up = plan[-2::-1]  # 256, 128, 64, 32, 16 at width 16
        factor = 2 if skip else 1
        decoder_in = [plan[-1]] + [c * factor for c in up[:-1]]
        self.decoder = nn.ModuleList(
            DecoderBlock(cin, cout, dropout if i < DROPOUT_LAYERS else 0.0)
            for i, (cin, cout) in enumerate(zip(decoder_in, up, strict=True))
        )
        self.head = MaskHead(up[-1] * factor, out_channels)
        self.stride = 2**DEPTH
        init_he_uniform(self)

    def forward(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2:]
        h = pad_to_multiple(x, self.stride)
        skips = []
        for block in self.encoder:
            h = block(h)
            skips.append(h)
        skips.pop()  # the bottleneck feeds the decoder directly
        for block in self.decoder:
            h = block(h)
            if self.skip:
                h = torch.cat([h, skips.pop()], dim=1)
        return self.head(h)[..., :height, :width]


class UNetSeparator(SeparationModel):
    """Two U-Nets, one per source, as trained in the paper (Jansson et al. 2017 §3.1.1)."""

    def __init__(
        self,
        preset: STFTPreset,
        *,
        width: int = 16,
        dropout: float = 0.5,
        skip: bool = True,
        kind: str = "unet",
    ) -> None:
        super().__init__(kind=kind, preset=preset, width=width, dropout=dropout)
        channels = preset.channels
        self.nets = nn.ModuleDict(
            {s: UNet(channels, channels, width=width, dropout=dropout, skip=skip) for s in SOURCES}
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([self.nets[s](x) for s in self.sources], dim=1)
