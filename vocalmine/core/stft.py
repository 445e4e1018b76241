"""STFT presets shared by mining, training and separation, and the transforms that use them.

``paper`` is Jansson et al. 2017 (§3.1.2): 8192 Hz mono, n_fft 1024, hop 768, patches
of 128 frames and 512 bins. ``hq`` is the thesis setting (Prétet 2018 §4.2): 22050 Hz stereo,
n_fft 2048, hop 512, 512 frames, 1024 bins. The highest (Nyquist) bin is dropped so both patch
sizes are powers of two. ``spleeter`` is Spleeter's 2-stems geometry (Hennequin et al. 2020):
44.1 kHz stereo, n_fft 4096, hop 1024, 512 frames and only the first 1024 bins (0–11 kHz), so
the pretrained Spleeter networks (``vocalmine models import spleeter-2stems``) and models
fine-tuned from them read shards mined with it. Transforms are librosa's (periodic Hann window,
centred, zero-padded frames), the same numbers as Spleeter's ``torch.stft``.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, fields, replace
from typing import Any

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
    kept_bins: int = 0

    @property
    def bins(self) -> int:
        """Frequency bins kept: ``kept_bins`` when set, else all but the Nyquist bin."""
        return self.kept_bins or self.n_fft // 2

    @property
    def patch_seconds(self) -> float:
        """Audio seconds covered by one patch."""
        return self.patch_frames * self.hop / self.sample_rate

    @property
    def max_frequency_hz(self) -> float:
        """Highest frequency the model sees (the top of its highest bin's band)."""
        return self.sample_rate * self.bins / self.n_fft


PRESETS: dict[str, STFTPreset] = {
    "paper": STFTPreset("paper", 8192, 1, 1024, 768, 128),
    "hq": STFTPreset("hq", 22050, 2, 2048, 512, 512),
    "spleeter": STFTPreset("spleeter", 44100, 2, 4096, 1024, 512, kept_bins=1024),
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


def same_geometry(a: STFTPreset, b: STFTPreset) -> bool:
    """True when two presets make the same patches: every field equal but the name."""
    return replace(a, name="") == replace(b, name="")


def preset_from_dict(data: dict[str, Any], name: str | None = None) -> STFTPreset:
    """Inverse of :func:`preset_to_dict`. Older model specs stored the fields without the name
    (``preset_params`` beside ``preset``): pass that name as ``name``; extra keys are ignored."""
    values = {f.name: data[f.name] for f in fields(STFTPreset) if f.name in data}
    values.setdefault("name", name)
    required = [f.name for f in fields(STFTPreset) if f.default is MISSING]
    missing = [k for k in required if values.get(k) is None]
    if missing:
        raise ValueError(f"STFT preset {data!r} lacks {', '.join(missing)}")
    return STFTPreset(**values)


def stft(audio: np.ndarray, preset: STFTPreset) -> np.ndarray:
    """Complex STFT of ``(channels, samples)`` audio: ``(channels, n_fft//2 + 1, frames)``."""
    import librosa  # lazy: training imports the presets without the audio stack

    return librosa.stft(
        np.atleast_2d(audio).astype(np.float32, copy=False),
        n_fft=preset.n_fft,
        hop_length=preset.hop,
        window="hann",
        center=True,
    ).astype(np.complex64, copy=False)


def istft(spec: np.ndarray, preset: STFTPreset, length: int) -> np.ndarray:
    """Inverse of :func:`stft`; bins a preset drops (the Nyquist bin, or all above
    ``kept_bins``) come back as zeros."""
    full = spec
    missing = preset.n_fft // 2 + 1 - spec.shape[-2]
    if missing > 0:
        pad = [(0, 0)] * spec.ndim
        pad[-2] = (0, missing)
        full = np.pad(spec, pad)
    import librosa  # lazy, as in stft

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
