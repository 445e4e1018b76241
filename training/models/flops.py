"""Multiply-accumulate counts of the convolutions, from the layer shapes of one forward pass.

Used by the training benchmark to put measured throughput next to the arithmetic floor
(Jansson et al. 2017's U-Net: ≈ 0.27 GMAC encoder + 0.49 GMAC decoder on a 512×128 patch).
Batch norm,
activations and the skip concatenations are ignored: they are < 1 % of the work.
"""

from __future__ import annotations

import torch
from torch import nn


def conv_macs(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    """MACs per sample of every Conv2d / ConvTranspose2d, summed by the top-level child name.

    ``input_shape`` is ``(C, F, T)``; returns e.g. ``{"encoder": ..., "decoder": ..., "head": ...,
    "total": ...}`` for a :class:`training.models.UNet`.
    """
    counts: dict[str, int] = {}
    hooks = []

    def hook(name: str):
        def count(layer: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            kernel = layer.kernel_size[0] * layer.kernel_size[1]
            if isinstance(layer, nn.ConvTranspose2d):
                macs = inputs[0][0].numel() * layer.out_channels * kernel // layer.groups
            else:
                macs = output[0].numel() * layer.in_channels * kernel // layer.groups
            counts[name] = counts.get(name, 0) + macs

        return count

    for name, layer in model.named_modules():
        if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d):
            hooks.append(layer.register_forward_hook(hook(name.split(".")[0])))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        model.train(was_training)
        for handle in hooks:
            handle.remove()
    counts["total"] = sum(counts.values())
    return counts
