"""What every separation model shares: its sources, its preset and its hyper-parameters.

Separation and the registry only rely on this interface: ``forward`` maps a normalised
magnitude patch ``(B, C, bins, frames)`` to one mask per source, ``(B, S, C, bins, frames)``,
with values in [0, 1]; the estimate of source ``s`` is ``mask[:, s] * x``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from vocalmine.core.stft import STFTPreset, preset_to_dict

SOURCES: tuple[str, str] = ("vocals", "accompaniment")


class SeparationModel(nn.Module):
    """Base class: a mask estimator for :data:`SOURCES` on one STFT preset."""

    sources: tuple[str, ...] = SOURCES
    #: What the model reads: ``"peak"`` = each patch divided by its maximum (the paper), or
    #: ``"raw"`` magnitudes (Spleeter's networks).
    input_scaling: str = "peak"
    #: Exponent of the ratio mask built from the two sources' masks (1, or Spleeter's 2).
    mask_exponent: int = 1

    def __init__(self, *, kind: str, preset: STFTPreset, width: int, dropout: float) -> None:
        super().__init__()
        self.kind = kind
        self.preset = preset
        self.width = width
        self.dropout = dropout

    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        """Everything :func:`training.models.build_model` needs to rebuild this model."""
        return {
            "kind": self.kind,
            "preset": self.preset.name,
            "preset_params": preset_to_dict(self.preset),
            "width": self.width,
            "dropout": self.dropout,
        }

    def parameter_count(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
