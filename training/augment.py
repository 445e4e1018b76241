"""Spectrogram augmentations of the thesis (Prétet 2018 §4.4.4), applied identically to the mix and
to every target so the labels stay exact.

- channel swap: exchange left and right (stereo presets only);
- gain ("loudness scaling"): multiply every coefficient by β;
- time stretch: scale the patch horizontally by β around its centre and keep the central part
  (frames beyond the patch are mirrored back in when β < 1);
- pitch shift: scale the patch vertically by β and keep the bottom part (bins above the
  stretched range are silent when β < 1).

Stretch and shift resample with linear interpolation, the same approximation of real time
stretching and pitch shifting that the thesis makes. Each transform fires with probability
``p`` and draws β uniformly from ``[1 − r, 1 + r]``; ``r = 0`` switches a transform off.
Augmentation runs after the per-patch normalisation, so a gain other than 1 shows the network
patches whose maximum is β rather than 1.
"""

from __future__ import annotations

import numpy as np

from vocalmine.training.config import AugmentConfig


def _stretch_positions(length: int, factor: float, mirror: bool) -> np.ndarray:
    """Source positions for output indices when an axis is scaled by ``factor``."""
    out = np.arange(length, dtype=np.float64)
    if mirror:  # time: scale about the centre, mirror what falls outside
        centre = (length - 1) / 2
        pos = centre + (out - centre) / factor
        period = 2 * (length - 1)
        pos = np.mod(pos, period) if period else np.zeros_like(pos)
        return np.where(pos > length - 1, period - pos, pos)
    return out / factor  # frequency: scale about bin 0, keep the bottom part


def _resample_axis(x: np.ndarray, positions: np.ndarray, axis: int, fill_zero: bool) -> np.ndarray:
    length = x.shape[axis]
    low = np.clip(np.floor(positions).astype(np.int64), 0, length - 1)
    high = np.clip(low + 1, 0, length - 1)
    frac = (positions - low).astype(x.dtype)
    shape = [1] * x.ndim
    shape[axis] = -1
    frac = frac.reshape(shape)
    out = np.take(x, low, axis=axis) * (1 - frac) + np.take(x, high, axis=axis) * frac
    if fill_zero:
        outside = (positions > length - 1).reshape(shape)
        out = np.where(outside, 0, out).astype(x.dtype, copy=False)
    return out


def time_stretch(x: np.ndarray, factor: float) -> np.ndarray:
    """Scale the last (time) axis by ``factor`` around the centre."""
    return _resample_axis(x, _stretch_positions(x.shape[-1], factor, True), -1, False)


def pitch_shift(x: np.ndarray, factor: float) -> np.ndarray:
    """Scale the frequency axis (second to last) by ``factor`` upwards from bin 0."""
    return _resample_axis(x, _stretch_positions(x.shape[-2], factor, False), -2, True)


def augment(
    mix: np.ndarray, targets: np.ndarray, config: AugmentConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Apply the configured transforms to mix ``(C, F, T)`` and targets ``(S, C, F, T)``."""
    if not config.enabled:
        return mix, targets
    if config.channel_swap and mix.shape[0] == 2 and rng.random() < config.p:
        mix, targets = mix[::-1], targets[:, ::-1]
    if config.gain and rng.random() < config.p:
        beta = rng.uniform(1 - config.gain, 1 + config.gain)
        mix, targets = mix * np.float32(beta), targets * np.float32(beta)
    if config.time_stretch and rng.random() < config.p:
        beta = rng.uniform(1 - config.time_stretch, 1 + config.time_stretch)
        mix, targets = time_stretch(mix, beta), time_stretch(targets, beta)
    if config.pitch_shift and rng.random() < config.p:
        beta = rng.uniform(1 - config.pitch_shift, 1 + config.pitch_shift)
        mix, targets = pitch_shift(mix, beta), pitch_shift(targets, beta)
    return np.ascontiguousarray(mix), np.ascontiguousarray(targets)
