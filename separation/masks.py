"""Ratio masks (Prétet 2018 eq. 1.1–1.5) and their mapping onto the input's full-band STFT.

The model sees a low-rate, low-resolution spectrogram (8192 Hz for ``paper``: 0–4 kHz, 8 Hz bins,
94 ms hop). Its two source masks become ratio masks ``M_v = V_v / (V_v + V_a)`` and
``M_a = 1 - M_v`` (eq. 1.1–1.3); since ``V_s = m_s * X``, the mixture magnitude cancels and the
ratio is taken directly between the model's masks. Those masks are then *mapped* onto the STFT of
the original signal at its own rate (bilinear interpolation in seconds and hertz), the mixture
phase is kept (eq. 1.4–1.5), and the inverse STFT gives the vocals; the accompaniment is the
mixture minus the vocals, so the stems always sum to the mixture.

Full-band rule: frequencies above the model's highest bin get, per channel and frame, the
band-level ratio mask of the model's top octave, ``sum(M_v * X) / sum(X)`` over
``[f_top / 2, f_top]`` (eq. 1.1 applied to band energies). Sibilants and breaths above the band
follow the voice's activity there, the cymbals follow the accompaniment's, and nothing above the
band is dropped: the stems keep the input's bandwidth because they sum to it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from vocalmine.core.stft import STFTPreset

EPS = 1e-8


def ratio_masks(source_masks: np.ndarray, exponent: int = 1, eps: float = EPS) -> np.ndarray:
    """Vocal ratio mask from the model's ``(2, ...)`` masks (vocals, accompaniment); eq. 1.1.

    ``exponent`` 2 is Spleeter's rule, ``m_v² / (m_v² + m_a²)``. The accompaniment's ratio mask
    is ``1 - result`` (eq. 1.3). Where both masks are zero the bin is split evenly.
    """
    vocals, accompaniment = source_masks[0], source_masks[1]
    if exponent != 1:
        vocals, accompaniment = vocals**exponent, accompaniment**exponent
    return ((vocals + eps) / (vocals + accompaniment + 2 * eps)).astype(np.float32)


def high_band_mask(vocal_mask: np.ndarray, mix_magnitude: np.ndarray) -> np.ndarray:
    """The mask for frequencies above the model's band: ``(C, 1, frames)``.

    Magnitude-weighted mean of ``vocal_mask`` over the upper octave of the model's bins, i.e. the
    ratio of estimated vocal to mixture magnitude there (see the module docstring).
    """
    bins = vocal_mask.shape[-2]
    top = slice(bins // 2, bins)
    weight = mix_magnitude[..., top, :]
    num = (vocal_mask[..., top, :] * weight).sum(axis=-2, keepdims=True)
    den = weight.sum(axis=-2, keepdims=True)
    mean = vocal_mask[..., top, :].mean(axis=-2, keepdims=True)
    return np.where(den > EPS, num / np.maximum(den, EPS), mean).astype(np.float32)


def full_resolution(sample_rate: int) -> tuple[int, int]:
    """``(n_fft, hop)`` of the STFT the masks are applied to: about 46 ms frames, 50 % overlap.

    That is 2048/1024 at 44.1 and 48 kHz, scaled by powers of two for other rates, used with a
    square-root Hann window for analysis and synthesis (:data:`FULL_BAND_WINDOW`). Against the
    thesis's Hann 2048/512 it halves the FFT work, which dominates CPU time next to the model,
    and on three MUSDB18-7 tracks the IRM oracle scored the same or better with it (vocal SDR
    +0.12 to +0.27 dB): the mapped masks are smooth, so 50 % overlap loses nothing.
    """
    n_fft = 2 ** max(6, round(math.log2(sample_rate * 2048 / 44100)))
    return n_fft, n_fft // 2


FULL_BAND_WINDOW = "sqrt-hann"
Window = Literal["hann", "sqrt-hann"]


def mask_grid(preset: STFTPreset, sample_rate: int) -> tuple[int, int, Window]:
    """``(n_fft, hop, window)`` of the STFT a block's vocal mask is applied to.

    At the model's own rate that is the model's STFT (Hann, its ``n_fft`` and hop): the mask is
    used on the grid it was computed on, with no interpolation, as Spleeter does. Mapped onto
    :func:`full_resolution`'s coarser 2048-point frames instead, Spleeter's 4096-point masks
    lost 0.2–0.3 dB vocal SDR on MUSDB18-7 (docs/separation.md). At any other rate the masks
    are mapped onto :func:`full_resolution` frames with the :data:`FULL_BAND_WINDOW`.
    """
    if sample_rate == preset.sample_rate:
        return preset.n_fft, preset.hop, "hann"
    n_fft, hop = full_resolution(sample_rate)
    return n_fft, hop, FULL_BAND_WINDOW


def _window(kind: Window, n_fft: int, like: torch.Tensor) -> torch.Tensor:
    window = torch.hann_window(n_fft, device=like.device, dtype=like.real.dtype)
    return window.sqrt() if kind == "sqrt-hann" else window


FRAMES_PER_PASS = 64


def _centred_frames(audio: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """``(..., frames, n_fft)`` view of ``audio`` zero padded by ``n_fft // 2`` on each side,
    the frames of ``torch.stft(center=True, pad_mode="constant")``."""
    return torch.nn.functional.pad(audio, (n_fft // 2, n_fft // 2)).unfold(-1, n_fft, hop)


def _complex_dtype(audio: torch.Tensor) -> torch.dtype:
    """The complex type of the spectrum of real ``audio``."""
    return torch.complex128 if audio.dtype == torch.float64 else torch.complex64


def stft(audio: torch.Tensor, n_fft: int, hop: int, window: Window = "hann") -> torch.Tensor:
    """Complex STFT ``(..., n_fft//2+1, frames)`` of ``(..., N)`` audio; centred, zero padded.

    The same numbers as ``torch.stft(center=True, pad_mode="constant")``, computed as windowed
    ``rfft`` of :data:`FRAMES_PER_PASS` frames at a time into one preallocated result: no
    full-size temporaries, whose fresh pages cost as much as the FFT itself on a 48-s block,
    so about twice as fast on CPU. The result is a transposed view of a ``(..., frames, bins)``
    tensor, the layout :func:`istft`'s ``irfft`` reads without a copy.
    """
    frames = _centred_frames(audio, n_fft, hop)
    win = _window(window, n_fft, audio)
    count = frames.shape[-2]
    dtype = _complex_dtype(audio)
    out = torch.empty(*frames.shape[:-1], n_fft // 2 + 1, dtype=dtype, device=audio.device)
    step = FRAMES_PER_PASS
    buffer = torch.empty(*frames.shape[:-2], step, n_fft, dtype=win.dtype, device=audio.device)
    for first in range(0, count, step):
        last = min(count, first + step)
        windowed = torch.mul(frames[..., first:last, :], win, out=buffer[..., : last - first, :])
        torch.fft.rfft(windowed, dim=-1, out=out[..., first:last, :])
    return out.transpose(-1, -2)


def istft(
    spec: torch.Tensor, n_fft: int, hop: int, length: int, window: Window = "hann"
) -> torch.Tensor:
    """Inverse of :func:`stft` with the same window, cut to ``length`` samples.

    Equal to ``torch.istft(center=True, length=length)`` within float rounding: windowed
    overlap-add divided by the summed squared window. When ``hop`` divides ``n_fft`` the
    frames are inverted and overlap-added :data:`FRAMES_PER_PASS` at a time as ``n_fft / hop``
    shifted slice additions (no full-size temporaries, about twice as fast on CPU); otherwise
    ``torch.istft`` does it.
    """
    win = _window(window, n_fft, spec)
    if n_fft % hop:
        return torch.istft(spec, n_fft, hop, window=win, center=True, length=length)
    by_frame = spec.transpose(-1, -2)

    def inverse(first: int, last: int, out: torch.Tensor) -> torch.Tensor:
        return torch.fft.irfft(by_frame[..., first:last, :], n=n_fft, dim=-1, out=out)

    *lead, count, _ = by_frame.shape
    return _overlap_add(inverse, lead, count, win, hop, length)


def masked_istft(
    audio: torch.Tensor,
    mask: FullBandMask,
    n_fft: int,
    hop: int,
    window: Window = "hann",
) -> torch.Tensor:
    """``istft(mask.apply(stft(audio)))``, the same length as ``audio``, in one pass.

    Frame by frame (:data:`FRAMES_PER_PASS` at a time): window, ``rfft``, mask, ``irfft``,
    overlap-add. The full ``(C, bins, T)`` spectrogram (34 MB for a 48-s stereo block at
    44.1 kHz, fresh pages on every block) is never built.
    """
    length = audio.shape[-1]
    if n_fft % hop:
        return istft(mask.apply(stft(audio, n_fft, hop, window)), n_fft, hop, length, window)
    win = _window(window, n_fft, audio)
    frames = _centred_frames(audio, n_fft, hop)
    *lead, count, _ = frames.shape
    spectra = torch.empty(
        *lead, FRAMES_PER_PASS, n_fft // 2 + 1, dtype=_complex_dtype(audio), device=audio.device
    )
    k = mask.low.shape[-2]

    def filtered(first: int, last: int, out: torch.Tensor) -> torch.Tensor:
        windowed = torch.mul(frames[..., first:last, :], win, out=out)
        spec = torch.fft.rfft(windowed, dim=-1, out=spectra[..., : last - first, :])
        real = torch.view_as_real(spec)
        real[..., :k, :].mul_(mask.low[..., first:last].transpose(-1, -2).unsqueeze(-1))
        real[..., k:, :].mul_(mask.high[..., first:last].transpose(-1, -2).unsqueeze(-1))
        return torch.fft.irfft(spec, n=n_fft, dim=-1, out=out)

    return _overlap_add(filtered, lead, count, win, hop, length)


def _overlap_add(
    frames_of: Callable[[int, int, torch.Tensor], torch.Tensor],
    lead: list[int],
    count: int,
    win: torch.Tensor,
    hop: int,
    length: int,
) -> torch.Tensor:
    """Windowed overlap-add of ``count`` frames, divided by the summed squared window.

    ``frames_of(first, last, out)`` returns the time-domain frames ``first:last``
    ``(*lead, last - first, n_fft)``, written into ``out``; ``hop`` divides ``n_fft``. The
    result is centred like ``torch.istft(center=True)`` and cut or zero-padded to ``length``.
    """
    n_fft = win.shape[0]
    ratio = n_fft // hop
    out = torch.zeros(*lead, count + ratio - 1, hop, dtype=win.dtype, device=win.device)
    parts = win.reshape(ratio, hop)
    buffer = torch.empty(*lead, FRAMES_PER_PASS, n_fft, dtype=win.dtype, device=win.device)
    for first in range(0, count, FRAMES_PER_PASS):
        last = min(count, first + FRAMES_PER_PASS)
        chunk = frames_of(first, last, buffer[..., : last - first, :])
        chunk = chunk.view(*lead, last - first, ratio, hop)
        for r in range(ratio):
            out[..., first + r : last + r, :].addcmul_(chunk[..., r, :], parts[r])
    envelope = torch.zeros(count + ratio - 1, hop, dtype=win.dtype, device=win.device)
    for r in range(ratio):
        envelope[r : r + count] += parts[r] * parts[r]
    start = n_fft // 2
    out = out.reshape(*lead, -1)[..., start : start + length]
    envelope = envelope.reshape(-1)[start : start + length]
    if envelope.abs().min() < 1e-11:
        raise RuntimeError(f"istft: the window's overlap-add is zero (n_fft {n_fft}, hop {hop})")
    out.div_(envelope)
    if out.shape[-1] < length:
        out = torch.nn.functional.pad(out, (0, length - out.shape[-1]))
    return out


@dataclass(frozen=True)
class FullBandMask:
    """A vocal mask on a full-resolution STFT grid, stored as its two parts.

    ``low`` ``(C, k, T)`` covers the first ``k`` bins (inside the model's band); ``high``
    ``(C, 1, T)`` is the one value per frame for every bin above. Keeping the upper part as a
    row saves building and multiplying a dense mask where it is constant across frequency.
    """

    low: torch.Tensor
    high: torch.Tensor
    bins: int

    def dense(self) -> torch.Tensor:
        """The ``(C, bins, T)`` mask."""
        upper = self.high.expand(-1, self.bins - self.low.shape[1], -1)
        return torch.cat([self.low, upper], dim=1)

    def apply(self, spec: torch.Tensor) -> torch.Tensor:
        """``mask * spec`` for a complex ``(C, bins, T)`` spectrogram (mixture phase kept)."""
        k = self.low.shape[1]
        out = torch.empty_like(spec)
        real_in, real_out = torch.view_as_real(spec), torch.view_as_real(out)
        torch.mul(real_in[:, :k], self.low.unsqueeze(-1), out=real_out[:, :k])
        torch.mul(real_in[:, k:], self.high.unsqueeze(-1), out=real_out[:, k:])
        return out


def map_to_full_band(
    vocal_mask: torch.Tensor,
    high: torch.Tensor,
    preset: STFTPreset,
    sample_rate: int,
    n_fft: int,
    hop: int,
    frames: int,
) -> FullBandMask:
    """Interpolate a model-grid mask ``(C, bins, T)`` onto a full-resolution STFT grid.

    Frequencies up to the model's highest bin are linearly interpolated between model bins;
    above it, ``high`` ``(C, 1, T)`` applies. Time is linearly interpolated between model frame
    centres (both STFTs are centred, so frame ``j`` sits at ``j * hop / rate`` seconds).
    """
    model_bins = vocal_mask.shape[-2]
    bins = n_fft // 2 + 1
    freqs = torch.arange(bins, device=vocal_mask.device) * (sample_rate / n_fft)
    position = freqs * (preset.n_fft / preset.sample_rate)
    position = position[position <= model_bins - 1]
    lo = position.floor().long().clamp(max=model_bins - 2)
    w = (position - lo).to(vocal_mask.dtype)[None, :, None]
    by_freq = torch.cat(
        [vocal_mask[:, lo, :] * (1 - w) + vocal_mask[:, lo + 1, :] * w, high], dim=1
    )

    model_frames = vocal_mask.shape[-1]
    times = torch.arange(frames, device=vocal_mask.device) * (hop / sample_rate)
    tpos = (times * (preset.sample_rate / preset.hop)).clamp(max=model_frames - 1)
    t0 = tpos.floor().long().clamp(max=max(model_frames - 2, 0))
    t1 = (t0 + 1).clamp(max=model_frames - 1)
    wt = (tpos - t0).clamp(0, 1).to(vocal_mask.dtype)
    # Interpolated frame by frame, (C, T, bins) in memory, like the spectra of :func:`stft`.
    by_frame = by_freq.transpose(1, 2).contiguous()
    mapped = torch.lerp(by_frame[:, t0], by_frame[:, t1], wt[:, None]).transpose(1, 2)
    return FullBandMask(mapped[:, :-1], mapped[:, -1:], bins)


def match_channels(mask: np.ndarray, channels: int) -> np.ndarray:
    """Per-channel masks when the model saw the input's channels, else their mean for every one."""
    if mask.shape[0] == channels:
        return mask
    return np.repeat(mask.mean(axis=0, keepdims=True), channels, axis=0)
