"""Vocal labels from an (original mix, instrumental) pair: the half-wave spectral difference.

With the instrumental aligned and gain-matched, ``vocals = max(|X_mix| − |X_instr|, 0)`` per STFT
bin at the configured preset (DESIGN.md, "Vocal derivation"). Two checks ride on the same
spectrograms:

* **no_vocals** — a pair whose derived vocals carry almost no energy is not a vocal/instrumental
  pair (typically an "instrumental" file that is really the mix). The test is on the loud frames:
  the 90th percentile over frames of the per-frame vocal-to-mix energy ratio
  ``Σ_f V² / Σ_f M²`` must reach ``min_vocal_ratio_db``. A percentile, not the song average, so a
  song that sings in only a fifth of its frames still passes.
* **Label quality** — the derivation's own error is visible in the *negative* part of the
  difference, ``N = max(|X_instr| − |X_mix|, 0)``. Where vocals are weak against the
  instrumental, or where alignment or gain are off, ``|X_mix| − |X_instr|`` is a zero-mean
  fluctuation whose positive half leaks into ``V`` and whose negative half lands in ``N``; where
  clear vocals dominate, the difference is positive. So ``E_N = Σ N²`` estimates the error energy
  inside ``E_V = Σ V²``, and the score is
  ``quality = max(E_V − E_N, 0) / (E_V + E_N)`` ∈ [0, 1]: ≈ 1 for clear vocals over an exact
  instrumental, ≈ 0 for a segment without vocals or with a broken alignment (the vocal label is
  then mostly derivation error). ``vocal_ratio_db = 10 log10(E_V / E_M)`` and
  ``residual_ratio_db = 10 log10(E_N / E_M)`` (estimated label error relative to the mix) are
  reported beside it. The energies are kept per frame, so any run of frames (a segment) is
  scored without keeping ``N``.

  Singing has almost no energy below ``LOW_BAND_HZ`` (120 Hz); the bass and the kick drum have
  most of theirs there. Label energy in that band, ``E_L``, counts as error, with weight
  ``LOW_BAND_WEIGHT``: ``quality = max(E_V − E_N − 2 E_L, 0) / (E_V + E_N)``. True vocals lose
  almost nothing (their low-band share is ~0.002 in the median on MIR-1K and MUSDB18), while a
  label that is really the accompaniment — an a cappella mined as the "instrumental", whose
  derived "vocals" carry the bass — falls from 0.96+ to near 0 where the band has bass (a 12 %
  low-band share costs 0.24; a voice recorded with rumble, 26 %, costs 0.5; see
  ``bench/role_calibration.py`` and ``tests/test_vocals.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vocalmine.core.audio import resample
from vocalmine.core.stft import STFTPreset, istft, magnitude, stft, to_preset_channels

MIN_VOCAL_RATIO_DB = -15.0
#: Upper edge of the band where singing has little energy and bass and kick most of theirs.
LOW_BAND_HZ = 120.0
#: How much each unit of low-band label energy lowers the quality score (see the module doc).
LOW_BAND_WEIGHT = 2.0
_EPS = 1e-20


@dataclass(frozen=True)
class LabelQuality:
    """Label-quality figures of a run of frames (see the module doc for the formulas)."""

    quality: float
    vocal_ratio_db: float
    residual_ratio_db: float


@dataclass
class Derived:
    """Magnitude spectrograms at one preset, float32 ``(C, bins, frames)`` each.

    ``frame_energy`` is float64 ``(5, frames)``: per frame ``Σ M²``, ``Σ V²``, ``Σ N²`` (the
    negative part of the difference), ``Σ V²`` below ``LOW_BAND_HZ`` and ``Σ I²``: all the
    quality and role figures need, so the residual spectrogram itself is never kept.
    """

    mix_mag: np.ndarray
    instr_mag: np.ndarray
    vocals_mag: np.ndarray
    frame_energy: np.ndarray

    @property
    def frames(self) -> int:
        """Number of STFT frames."""
        return int(self.mix_mag.shape[-1])

    def instrumental_sounds(self) -> np.ndarray:
        """Per frame: does the aligned instrumental sound there (within 60 dB of its loudest
        frame)? False outside its extent, where the "vocals" are the whole mix."""
        return _within_60_db(self.frame_energy[4])

    def quality(self, start: int = 0, stop: int | None = None) -> LabelQuality:
        """:func:`label_quality` of frames ``[start, stop)``."""
        e_m, e_v, e_n, e_l = self.frame_energy[:4, start:stop].sum(axis=1)
        return label_quality(float(e_m), float(e_v), float(e_n), float(e_l))


def label_quality(
    e_mix: float, e_vocals: float, e_residual: float, e_low: float = 0.0
) -> LabelQuality:
    """Quality score and ratios from the energies ``E_M``, ``E_V``, ``E_N`` and the vocals'
    low-band part ``E_L`` of a region (see the module doc)."""
    total = e_vocals + e_residual
    return LabelQuality(
        quality=max(e_vocals - e_residual - LOW_BAND_WEIGHT * e_low, 0.0) / total
        if total > 0
        else 0.0,
        vocal_ratio_db=float(10 * np.log10((e_vocals + _EPS) / (e_mix + _EPS))),
        residual_ratio_db=float(10 * np.log10((e_residual + _EPS) / (e_mix + _EPS))),
    )


def to_preset(audio: np.ndarray, sr: int, preset: STFTPreset) -> np.ndarray:
    """``(C, N)`` audio at ``sr`` → float32 audio at the preset's rate and channel count.

    Channels are mixed before resampling (the two commute), so a mono preset resamples once.
    """
    x = to_preset_channels(np.asarray(audio, dtype=np.float32), preset)
    return np.ascontiguousarray(resample(x, sr, preset.sample_rate))


def _within_60_db(energy: np.ndarray) -> np.ndarray:
    """Frames whose energy is within 60 dB of the loudest (the rest count as silence)."""
    return energy > 1e-6 * max(float(energy.max(initial=0.0)), _EPS)


def frame_energy(mag: np.ndarray) -> np.ndarray:
    """``Σ mag²`` over channels and bins per frame, accumulated in float64."""
    return np.einsum("cbf,cbf->f", mag, mag, dtype=np.float64)


def covered(audio: np.ndarray, preset: STFTPreset) -> np.ndarray:
    """``audio`` with ``preset.hop`` zeros appended, so centred frames reach past its last sample.

    Centred frames sit at multiples of the hop, ``1 + N // hop`` of them; when the hop is more
    than half the window (``paper``: 768 of 1024) the last few hundred samples lie beyond the
    last window's reach, and an inverse STFT of *modified* magnitudes divides them by a window
    sum near zero (values near 87 in the last 30 ms of a clip were seen). One more frame covers
    them; the spectrograms gain one mostly silent frame at the end.
    """
    pad = [(0, 0)] * (audio.ndim - 1) + [(0, preset.hop)]
    return np.pad(audio, pad)


def derive(mix: np.ndarray, instr: np.ndarray, sr: int, preset: STFTPreset) -> Derived:
    """Half-wave vocal magnitudes of ``mix`` minus the aligned, gain-matched ``instr``.

    Both are ``(C, N)`` float32 at ``sr`` on the same timeline (equal length); they are resampled
    to the preset's rate and downmixed (``paper``) or kept stereo (``hq``) first, and framed so
    that the last sample is covered (:func:`covered`).
    """
    mix_mag = magnitude(covered(to_preset(mix, sr, preset), preset), preset)
    instr_mag = magnitude(covered(to_preset(instr, sr, preset), preset), preset)
    vocals = mix_mag - instr_mag
    energy = np.empty((5, mix_mag.shape[-1]), dtype=np.float64)
    # Per-frame sums of squares without temporaries; the negative part's energy is the total
    # squared difference minus the positive part's (the two parts are disjoint).
    energy[0] = frame_energy(mix_mag)
    total = frame_energy(vocals)
    np.maximum(vocals, 0.0, out=vocals)
    energy[1] = frame_energy(vocals)
    energy[2] = np.maximum(total - energy[1], 0.0)
    low = max(1, int(round(LOW_BAND_HZ * preset.n_fft / preset.sample_rate)))
    energy[3] = frame_energy(vocals[:, :low])
    energy[4] = frame_energy(instr_mag)
    return Derived(mix_mag, instr_mag, vocals, energy)


def vocal_activity_db(derived: Derived, percentile: float = 90.0) -> float:
    """``percentile`` over frames of the per-frame vocal-to-mix energy ratio, in dB.

    Frames 60 dB below the loudest mix frame (silence) are ignored, and so are frames where the
    aligned instrumental is silent (60 dB below its loudest frame): outside the instrumental's
    extent the "vocals" are the whole mix, so a copy of the mix that starts a second later would
    otherwise pass for a pair with vocals.
    """
    e_m, e_v = derived.frame_energy[0], derived.frame_energy[1]
    loud = _within_60_db(e_m) & derived.instrumental_sounds()
    if not loud.any():
        return float("-inf")
    ratio = 10 * np.log10((e_v[loud] + _EPS) / e_m[loud])
    return float(np.percentile(ratio, percentile))


def reconstruct_vocals(mix: np.ndarray, vocals_mag: np.ndarray, preset: STFTPreset) -> np.ndarray:
    """Vocals audio from derived magnitudes with the mixture's phase (inverse STFT).

    ``mix`` is the mixture at the preset's rate and channels (see :func:`to_preset`); the result
    has its shape. For quality checks and benchmarks; training uses the magnitudes.
    ``vocals_mag`` is framed as :func:`derive` frames (the end covered).
    """
    spec = stft(covered(mix, preset), preset)[..., : preset.bins, :]
    phase = spec / np.maximum(np.abs(spec), 1e-12)
    return istft(vocals_mag * phase, preset, length=mix.shape[-1])


def sdr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Plain SDR ``10 log10(‖s‖² / ‖s − ŝ‖²)`` in dB; ``nan`` when the reference is silent.

    The quick label check of the benchmarks and tests (museval's BSSEval is the evaluation's).
    """
    ref = np.asarray(reference, dtype=np.float64).ravel()
    err = ref - np.asarray(estimate, dtype=np.float64).ravel()
    if np.sum(ref**2) < 1e-8 * ref.size:
        return float("nan")
    return float(10 * np.log10(np.sum(ref**2) / max(np.sum(err**2), 1e-20)))
