"""Separation models: the paper U-Net, the Spectrogram-Channels U-Net, the no-skip baseline and
Spleeter's 2-stems U-Net (the graph its pretrained weights need)."""

from __future__ import annotations

from typing import Any, Literal

from vocalmine.core.stft import STFTPreset, get_preset, preset_from_dict
from vocalmine.training.config import MODEL_KINDS
from vocalmine.training.models.base import SOURCES, SeparationModel
from vocalmine.training.models.no_skip import NoSkipSeparator
from vocalmine.training.models.spectrogram_channels import SpectrogramChannelsSeparator
from vocalmine.training.models.spleeter import SpleeterSeparator
from vocalmine.training.models.unet import UNet, UNetSeparator

ModelKind = Literal["unet", "spectrogram-channels", "no-skip", "spleeter"]

_CLASSES: dict[str, type[SeparationModel]] = {
    "unet": UNetSeparator,
    "spectrogram-channels": SpectrogramChannelsSeparator,
    "no-skip": NoSkipSeparator,
    "spleeter": SpleeterSeparator,
}


def build_model(
    kind: ModelKind | str,
    preset: STFTPreset | str,
    *,
    width: int = 16,
    dropout: float = 0.5,
) -> SeparationModel:
    """A fresh model of ``kind`` for ``preset``; ``width`` is the first layer's channel count
    (16 in the paper; smaller values make tiny models for tests and demos)."""
    if isinstance(preset, str):
        preset = get_preset(preset)
    if kind not in _CLASSES:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {list(MODEL_KINDS)}")
    if width < 1 or not 0.0 <= dropout < 1.0:
        raise ValueError(f"invalid model: width {width} < 1 or dropout {dropout} not in [0, 1)")
    return _CLASSES[kind](preset, width=width, dropout=dropout)


def spec_preset(spec: dict[str, Any]) -> STFTPreset:
    """The preset of a :meth:`SeparationModel.spec`; specs written before ``preset_params``
    held the name, or before it existed, still load."""
    params = spec.get("preset_params")
    return preset_from_dict(params, spec["preset"]) if params else get_preset(spec["preset"])


def model_from_spec(spec: dict[str, Any]) -> SeparationModel:
    """Rebuild a model from :meth:`SeparationModel.spec` (weights not included)."""
    preset = spec_preset(spec)
    return build_model(spec["kind"], preset, width=spec["width"], dropout=spec["dropout"])


__all__ = [
    "MODEL_KINDS",
    "SOURCES",
    "ModelKind",
    "SeparationModel",
    "UNet",
    "UNetSeparator",
    "NoSkipSeparator",
    "SpectrogramChannelsSeparator",
    "SpleeterSeparator",
    "build_model",
    "model_from_spec",
    "spec_preset",
]
