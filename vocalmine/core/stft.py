"""STFT presets shared by mining, training and separation, and the transforms that use them.

``paper`` is Jansson et al. 2017 (§3.1.2): 8192 Hz mono, n_fft 1024, hop 768, patches
of 128 frames and 512 bins. ``hq`` is the thesis setting (Prétet 2018 §4.2): 22050 Hz stereo,
n_fft 2048, hop 512, 512 frames, 1024 bins. The highest (Nyquist) bin is dropped so both patch
sizes are powers of two. Transforms are librosa's (Hann window, centred frames).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import librosa
import numpy as np


@dataclass(frozen=True)
class STFTPreset:
    """Sample rate, channel count, transform sizes and patch length of one model family."""

    name: str
    sample_rate: int
    channels: int
    n_fft: int
    hop: int
    patch_frames: int

    @property
    def bins(self) -> int:
        """Frequency bins kept: the Nyquist bin is dropped."""
        return self.n_fft // 2

    @property
    def patch_seconds(self) -> float:
        """Audio seconds covered by one patch."""
        return self.patch_frames * self.hop / self.sample_rate

    @property
    def max_frequency_hz(self) -> float:
        """Highest frequency the model sees."""
        return self.sample_rate / 2


PRESETS: dict[str, STFTPreset] = {
    "paper": STFTPreset("paper", 8192, 1, 1024, 768, 128),
    "hq": STFTPreset("hq", 22050, 2, 2048, 512, 512),
}


def get_preset(name: str) -> STFTPreset:
    """The preset called ``name``; a clear error lists the valid names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown STFT preset {name!r}; choose one of {sorted(PRESETS)}") from None


def preset_to_dict(preset: STFTPreset) -> dict[str, Any]:
    """The preset as plain JSON values (shard manifests, model specs): every field, name first."""
    return asdict(preset)


def preset_from_dict(data: dict[str, Any], name: str | None = None) -> STFTPreset:
    """Inverse of :func:`preset_to_dict`. Older model specs stored the fields without the name
    (``preset_params`` beside ``preset``): pass that name as ``name``; extra keys are ignored."""
    values = {f.name: data[f.name] for f in fields(STFTPreset) if f.name in data}
    values.setdefault("name", name)
    missing = [f.name for f in fields(STFTPreset) if values.get(f.name) is None]
    if missing:
        raise ValueError(f"STFT preset {data!r} lacks {', '.join(missing)}")
    return STFTPreset(**values)


def stft(audio: np.ndarray, preset: STFTPreset) -> np.ndarray:
    """Complex STFT of ``(channels, samples)`` audio: ``(channels, n_fft//2 + 1, frames)``."""
    return librosa.stft(
        np.atleast_2d(audio).astype(np.float32, copy=False),
        n_fft=preset.n_fft,
        hop_length=preset.hop,
        window="hann",
        center=True,
    ).astype(np.complex64, copy=False)


def istft(spec: np.ndarray, preset: STFTPreset, length: int) -> np.ndarray:
    """Inverse of :func:`stft`; a spectrogram without the Nyquist bin gets a zero one back."""
    full = spec
    if spec.shape[-2] == preset.bins:
        pad = [(0, 0)] * spec.ndim
        pad[-2] = (0, 1)
        full = np.pad(spec, pad)
    return librosa.istft(
        full, hop_length=preset.hop, n_fft=preset.n_fft, window="hann", center=True, length=length
    ).astype(np.float32, copy=False)


def magnitude(audio: np.ndarray, preset: STFTPreset) -> np.ndarray:
    """``|STFT|`` without the Nyquist bin, float32 ``(channels, bins, frames)``."""
    return np.abs(stft(audio, preset)[..., : preset.bins, :]).astype(np.float32, copy=False)


def to_preset_channels(audio: np.ndarray, preset: STFTPreset) -> np.ndarray:
    """Downmix to mono or duplicate mono to stereo, as the preset wants."""
    audio = np.atleast_2d(audio)
    if audio.shape[0] == preset.channels:
        return audio
    if preset.channels == 1:
        return audio.mean(axis=0, keepdims=True)
    return np.repeat(audio[:1], preset.channels, axis=0) if audio.shape[0] == 1 else audio[:2]
