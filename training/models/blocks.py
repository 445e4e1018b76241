"""The building blocks of the Jansson et al. (2017) encoder-decoder (Jansson et al. 2017 §3.1.2).

Written by hand because the network is small and the paper fixes every detail that matters:
5×5 kernels with stride 2, batch norm, leaky ReLU 0.2 in the encoder, plain ReLU and 50 %
dropout on the first three decoder layers, a sigmoid on the last one. ``padding=2`` (plus
``output_padding=1`` when upsampling) halves and doubles sizes exactly, so a 512×128 patch
goes down to 8×2 after six blocks and back up to 512×128.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

KERNEL = 5
STRIDE = 2
PADDING = 2
LEAKINESS = 0.2


class EncoderBlock(nn.Module):
    """Strided 5×5 convolution, batch norm, leaky ReLU: halves height and width."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, KERNEL, STRIDE, PADDING)
        self.norm = nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(self.norm(self.conv(x)), LEAKINESS)


class DecoderBlock(nn.Module):
    """Strided 5×5 transposed convolution, batch norm, ReLU, optional dropout: doubles sizes."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float) -> None:
        super().__init__()
        self.deconv = nn.ConvTranspose2d(
            in_channels, out_channels, KERNEL, STRIDE, PADDING, output_padding=1
        )
        self.norm = nn.BatchNorm2d(out_channels)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(F.relu(self.norm(self.deconv(x))))


class MaskHead(nn.Module):
    """The last decoder layer: transposed convolution to the output channels, then a sigmoid.

    Under ``torch.inference_mode`` (separation) and with few output channels, the transposed
    convolution is computed as :func:`transposed_conv_by_taps`: the same numbers within float
    rounding, about 5× faster on CPU, where oneDNN handles a 1- or 2-channel output poorly
    (this layer was a fifth of the paper U-Net's inference time for 3 % of its multiply-adds).
    Training, validation and hooks that count layer calls keep the library's layer.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.deconv = nn.ConvTranspose2d(
            in_channels, out_channels, KERNEL, STRIDE, PADDING, output_padding=1
        )

    def forward(self, x: Tensor) -> Tensor:
        if not torch.is_inference_mode_enabled() or self.deconv.out_channels > TAP_SUM_MAX_CHANNELS:
            return torch.sigmoid(self.deconv(x))
        return torch.sigmoid(transposed_conv_by_taps(x, self.deconv))


TAP_SUM_MAX_CHANNELS = 4


def transposed_conv_by_taps(x: Tensor, layer: nn.ConvTranspose2d) -> Tensor:
    """``layer(x)`` for a stride-2, padding-2, output-padding-1 5×5 transposed convolution.

    One 1×1 convolution (a matrix product, which oneDNN runs near peak) gives every kernel
    tap's contribution at every input pixel, ``z[o, ky, kx, i, j] = Σ_c w[c, o, ky, kx]
    x[c, i, j]``; the output is the sum of those planes scattered to
    ``(2i + ky - 2, 2j + kx - 2)``, which is the definition of the transposed convolution.
    """
    batch, _, height, width = x.shape
    out_channels = layer.out_channels
    kh, kw = layer.kernel_size
    taps = layer.weight.permute(1, 2, 3, 0).reshape(out_channels * kh * kw, -1, 1, 1)
    z = F.conv2d(x, taps).view(batch, out_channels, kh, kw, height, width)
    full = x.new_zeros(batch, out_channels, STRIDE * height + kh - 1, STRIDE * width + kw - 1)
    for ky in range(kh):
        for kx in range(kw):
            full[:, :, ky : ky + STRIDE * height : STRIDE, kx : kx + STRIDE * width : STRIDE] += z[
                :, :, ky, kx
            ]
    out = full[:, :, PADDING : PADDING + STRIDE * height, PADDING : PADDING + STRIDE * width]
    if layer.bias is not None:
        out = out + layer.bias.view(1, -1, 1, 1)
    return out


def init_he_uniform(module: nn.Module) -> None:
    """He-uniform weights and zero biases, as Prétet 2018 (§4.2) initialises its U-Net."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Zero-pad the last two axes up to a multiple of ``multiple`` (the net's total stride)."""
    height, width = x.shape[-2:]
    pad_h = -height % multiple
    pad_w = -width % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h))
