"""Sample-exact alignment of an instrumental against its original mix.

Since ``mix ≈ g · instrumental + vocals``, the instrumental is a delayed copy of the
accompaniment inside the mix, so the cross-correlation of the two signals peaks at the delay.
The work is composed from scipy's FFT correlation (``scipy.signal.correlate(method="fft")``);
what is hand-written here is the search strategy, because correlating whole 48 kHz songs at
full rate is slow and one global peak cannot tell a clean pair from a different edit:

1. **Coarse offset.** The fingerprint histogram's offset when the caller has one, otherwise a
   full cross-correlation of the mono downmixes resampled to 4 kHz (a five-minute song is
   1.2 M samples, a fraction of a second of FFT).
2. **Start and end.** Two excerpts of the instrumental (up to ``excerpt_s`` long, one early and
   one late, skipping near-silent windows) are each correlated at full rate against the mix
   within ``±search_s`` of the coarse offset. Each gives an offset and a normalised peak.
3. **Decision.** ``drift`` (a different edit, a cut, a tempo or speed change) when the
   excerpts disagree by more than ``drift_tolerance`` samples, or only one of them finds the
   instrumental, or the onset envelopes of the two excerpts (log-mel spectral flux at 100
   frames/s) line up at offsets more than ``env_drift_frames`` apart. Envelopes ignore phase:
   they still match after a tempo change has made the waveforms incoherent, and they show the
   timing error that a phase vocoder hides behind partly coherent waveforms. Both waveform
   peaks weak and no envelope drift → ``misaligned``.
4. **Final offset.** The normalised correlation over the whole overlap, evaluated directly at the
   few lags the excerpts allow, picks the offset (below ``min_overall_confidence`` →
   ``misaligned``) and its sign gives the polarity.

Correlations run on first-differenced signals (a cheap pre-whitening filter): music is dominated
by low frequencies, whose broad correlation peak lets vocals and codec noise move the maximum by
a sample; differencing sharpens the peak so the result is exact to the sample.

**Sign convention.** ``offset_samples = d`` means the instrumental's sample 0 sits at sample
``d`` of the mix, i.e. ``mix[n] ≈ polarity · g · instrumental[n − d]``. ``d > 0``: the mix starts
``d`` samples before the instrumental (a longer intro); ``d < 0``: the instrumental has ``−d``
extra samples at its start. ``coarse_offset_s`` uses the same convention, in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import librosa
import numpy as np
from scipy.signal import correlate

from vocalmine.core.audio import resample
from vocalmine.core.reasons import Reason


@dataclass(frozen=True)
class AlignParams:
    """Tuning of :func:`align`; the defaults are calibrated on MIR-1K (see docs)."""

    search_s: float = 1.0
    excerpt_s: float = 15.0
    min_confidence: float = 0.1
    min_overall_confidence: float = 0.2
    drift_tolerance: int = 2
    env_excerpt_s: float = 10.0
    env_search_s: float = 3.0
    env_min_confidence: float = 0.15
    env_drift_frames: int = 2


LOW_RATE = 4000  # the coarse correlation and the onset envelopes work at this rate
ENV_HOP = 40  # 100 envelope frames per second


@dataclass(frozen=True)
class Alignment:
    """Where the instrumental sits in the mix (see the module's sign convention).

    ``confidence`` is the absolute normalised cross-correlation (whitened signals) over the whole
    overlap at ``offset_samples``; ``start_offset``/``end_offset`` are the independent estimates
    from the early and late excerpts and ``start_confidence``/``end_confidence`` their peaks.
    ``reason`` is ``None`` for a usable alignment, else ``"misaligned"`` or ``"drift"``.
    """

    offset_samples: int
    polarity: int
    confidence: float
    start_offset: int
    end_offset: int
    sample_rate: int
    reason: str | None = None
    start_confidence: float = 0.0
    end_confidence: float = 0.0

    @property
    def offset_s(self) -> float:
        """The offset in seconds."""
        return self.offset_samples / self.sample_rate

    @property
    def ok(self) -> bool:
        """True when the pair is usable."""
        return self.reason is None

    def at_rate(self, sr: int) -> Alignment:
        """The same alignment counted in samples at ``sr`` (offsets rounded to a sample)."""
        scale = sr / self.sample_rate
        return replace(
            self,
            offset_samples=round(self.offset_samples * scale),
            start_offset=round(self.start_offset * scale),
            end_offset=round(self.end_offset * scale),
            sample_rate=sr,
        )


def downmix(audio: np.ndarray) -> np.ndarray:
    """Mono float32 1-D signal: the channel mean of ``(C, N)`` audio (1-D input is kept)."""
    audio = np.asarray(audio, dtype=np.float32)
    return audio if audio.ndim == 1 else audio.mean(axis=0, dtype=np.float32)


def _whiten(x: np.ndarray) -> np.ndarray:
    """First difference, same length: a pre-whitening filter that sharpens correlation peaks."""
    out = np.empty_like(x)
    out[0] = x[0]
    np.subtract(x[1:], x[:-1], out=out[1:])
    return out


def _padded(x: np.ndarray, start: int, stop: int) -> np.ndarray:
    """``x[start:stop]`` with zeros where the range leaves ``x``."""
    out = np.zeros(stop - start, dtype=x.dtype)
    lo, hi = max(start, 0), min(stop, len(x))
    if hi > lo:
        out[lo - start : hi - start] = x[lo:hi]
    return out


def _low_rate(audio: np.ndarray, sr: int) -> np.ndarray:
    """Mono downmix at :data:`LOW_RATE` (soxr's anti-alias filter keeps 0–2 kHz)."""
    mono = downmix(audio)
    return resample(mono, sr, LOW_RATE) if sr != LOW_RATE else mono


def _coarse_lag(mix_low: np.ndarray, instr_low: np.ndarray, sr: int) -> int:
    """Offset in samples at ``sr`` from a full whitened cross-correlation at :data:`LOW_RATE`."""
    i = _whiten(instr_low)
    c = correlate(_whiten(mix_low), i, mode="full", method="fft")
    lag = int(np.argmax(np.abs(c))) - (len(i) - 1)
    return int(round(lag * sr / LOW_RATE))


def _search(
    mix_w: np.ndarray, seg: np.ndarray, seg_start: int, lo: int, hi: int
) -> tuple[int, float]:
    """Best lag in ``[lo, hi]`` for instrumental excerpt ``seg`` starting at ``seg_start``.

    Returns the lag and the signed normalised correlation at it.
    """
    width = len(seg)
    window = _padded(mix_w, seg_start + lo, seg_start + hi + width)
    c = correlate(window, seg, mode="valid", method="fft")
    energy = np.concatenate(([0.0], np.cumsum(window.astype(np.float64) ** 2)))
    local = energy[width:] - energy[:-width]
    seg_energy = float(np.dot(seg.astype(np.float64), seg))
    # Windows that fall (almost) outside the mix have no defined correlation.
    valid = local > 1e-6 * max(float(local.max()), 1e-30)
    ncc = np.where(valid, c / np.sqrt(np.maximum(local * seg_energy, 1e-30)), 0.0)
    k = int(np.argmax(np.abs(ncc)))
    return lo + k, float(ncc[k])


def _ncc_at(mix_w: np.ndarray, instr_w: np.ndarray, lag: int, chunk: int = 1 << 16) -> float:
    """Signed normalised correlation of the whole overlap at one lag.

    float32 dot products over short chunks, summed in float64: exact enough to rank adjacent
    lags, without float64 copies of a whole song.
    """
    a, b = max(0, -lag), min(len(instr_w), len(mix_w) - lag)
    xy = xx = yy = 0.0
    for start in range(a, b, chunk):
        stop = min(b, start + chunk)
        x, y = mix_w[start + lag : stop + lag], instr_w[start:stop]
        xy += float(np.dot(x, y))
        xx += float(np.dot(x, x))
        yy += float(np.dot(y, y))
    denom = np.sqrt(xx * yy)
    return float(xy / denom) if denom > 0 else 0.0


def _excerpt_starts(instr_w: np.ndarray, a: int, b: int, width: int) -> tuple[int, int]:
    """Start of the earliest and of the latest window of ``width`` in ``[a, b)`` with signal.

    A window counts when its energy is at least a quarter of the average window's, so silent
    intros and outros do not become excerpts. Energies come from quarter-window blocks.
    """
    step = max(width // 4, 1)
    n_blocks = (b - a) // step
    blocks = instr_w[a : a + n_blocks * step].reshape(n_blocks, step)
    block_energy = np.einsum("ij,ij->i", blocks, blocks, dtype=np.float64)
    window_energy = np.convolve(block_energy, np.ones(max(width // step, 1)), mode="valid")
    loud = np.flatnonzero(window_energy >= 0.25 * window_energy.mean())
    if len(loud) == 0:
        return a, b - width
    early = a + step * int(loud[0])
    late = b - width if loud[-1] == len(window_energy) - 1 else a + step * int(loud[-1])
    return early, min(late, b - width)


def _envelope(y: np.ndarray) -> np.ndarray:
    """Onset envelope per band of a :data:`LOW_RATE` mono signal: half-wave log-mel flux, mean
    removed, ``(24, frames)`` at 100 frames per second."""
    mel = librosa.feature.melspectrogram(
        y=y, sr=LOW_RATE, n_fft=256, hop_length=ENV_HOP, n_mels=24, fmin=30.0, fmax=2000.0
    )
    log = np.log(mel + 1e-6 * float(mel.max()) + 1e-12)
    flux = np.maximum(np.diff(log, axis=1, prepend=log[:, :1]), 0.0)
    flux -= flux.mean(axis=1, keepdims=True)
    return flux.astype(np.float32)


def _envelope_search(
    env_mix: np.ndarray, seg: np.ndarray, seg_start: int, lo: int, hi: int
) -> tuple[int, float]:
    """Best frame lag in ``[lo, hi]`` for an envelope excerpt, and its normalised correlation."""
    width = seg.shape[1]
    start, stop = seg_start + lo, seg_start + hi + width
    window = np.zeros((env_mix.shape[0], stop - start), dtype=np.float32)
    a, b = max(start, 0), min(stop, env_mix.shape[1])
    if b > a:
        window[:, a - start : b - start] = env_mix[:, a:b]
    c = correlate(window, seg, mode="valid")[0]
    energy = np.concatenate(([0.0], np.cumsum((window.astype(np.float64) ** 2).sum(axis=0))))
    local = energy[width:] - energy[:-width]
    seg_energy = float((seg.astype(np.float64) ** 2).sum())
    valid = local > 0.25 * max(float(local.max()), 1e-30)
    ncc = np.where(valid, c / np.sqrt(np.maximum(local * seg_energy, 1e-30)), 0.0)
    k = int(np.argmax(ncc))
    return lo + k, float(ncc[k])


def envelope_offsets(
    mix_low: np.ndarray,
    instr_low: np.ndarray,
    centres_s: tuple[float, float],
    params: AlignParams | None = None,
) -> tuple[int, float, int, float]:
    """Onset-envelope offsets (10 ms frames) and peaks of two instrumental excerpts.

    ``mix_low`` and ``instr_low`` are mono signals at :data:`LOW_RATE`; the excerpts are centred
    at ``centres_s`` (instrumental seconds). Envelopes ignore phase, so they still line up when a
    small tempo change has made the waveforms incoherent, and keep their timing when a phase
    vocoder has kept the waveforms partly coherent; a start/end disagreement reveals the drift.
    """
    p = params or AlignParams()
    env_mix, env_instr = _envelope(mix_low), _envelope(instr_low)
    full = correlate(env_mix, env_instr, mode="full")[env_mix.shape[0] - 1]
    lag = int(np.argmax(full)) - (env_instr.shape[1] - 1)
    fps = LOW_RATE / ENV_HOP
    radius = int(p.env_search_s * fps)
    lo, hi = lag - radius, lag + radius
    found = []
    for centre in centres_s:
        width = min(int(p.env_excerpt_s * fps), env_instr.shape[1])
        first = int(np.clip(round(centre * fps) - width // 2, 0, env_instr.shape[1] - width))
        if width < 50:
            found.append((lag, 0.0))
            continue
        found.append(_envelope_search(env_mix, env_instr[:, first : first + width], first, lo, hi))
    return found[0][0], found[0][1], found[1][0], found[1][1]


def align(
    mix: np.ndarray,
    instr: np.ndarray,
    sr: int,
    coarse_offset_s: float | None = None,
    params: AlignParams | None = None,
) -> Alignment:
    """Find the sample-exact offset and polarity of ``instr`` inside ``mix`` (both at ``sr``).

    ``mix`` and ``instr`` are float32 ``(C, N)`` (or 1-D) at the same rate; channels are
    downmixed. ``coarse_offset_s`` (same sign convention) narrows the search; without it a
    low-rate full correlation finds it. Data problems are reported in ``reason``, never raised.
    """
    p = params or AlignParams()
    mix_mono, instr_mono = downmix(mix), downmix(instr)
    mix_low, instr_low = _low_rate(mix_mono, sr), _low_rate(instr_mono, sr)
    m, i = _whiten(mix_mono), _whiten(instr_mono)
    del mix_mono, instr_mono
    if coarse_offset_s is None:
        coarse = _coarse_lag(mix_low, instr_low, sr)
    else:
        coarse = int(round(coarse_offset_s * sr))
    radius = max(int(round(p.search_s * sr)), 1)
    # The instrumental range that can overlap the mix for any lag in the search window.
    a = max(0, -(coarse + radius))
    b = min(len(i), len(m) - (coarse - radius))
    if b - a < max(sr // 4, 16):
        return Alignment(coarse, 1, 0.0, coarse, coarse, sr, Reason.MISALIGNED)
    width = min(int(p.excerpt_s * sr), (b - a) // 2)
    early, late = _excerpt_starts(i, a, b, width)
    lo, hi = coarse - radius, coarse + radius
    start_lag, start_ncc = _search(m, i[early : early + width], early, lo, hi)
    end_lag, end_ncc = _search(m, i[late : late + width], late, lo, hi)
    centres = ((early + width / 2) / sr, (late + width / 2) / sr)
    env = envelope_offsets(mix_low, instr_low, centres, p)
    env_drift = (
        min(env[1], env[3]) >= p.env_min_confidence and abs(env[0] - env[2]) > p.env_drift_frames
    )

    def result(offset: int, ncc: float, reason: str | None) -> Alignment:
        return Alignment(
            offset_samples=offset,
            polarity=-1 if ncc < 0 else 1,
            confidence=abs(ncc),
            start_offset=start_lag,
            end_offset=end_lag,
            sample_rate=sr,
            reason=reason,
            start_confidence=abs(start_ncc),
            end_confidence=abs(end_ncc),
        )

    best_lag = start_lag if abs(start_ncc) >= abs(end_ncc) else end_lag
    strong = [abs(start_ncc) >= p.min_confidence, abs(end_ncc) >= p.min_confidence]
    if not any(strong):
        return result(
            best_lag, _ncc_at(m, i, best_lag), Reason.DRIFT if env_drift else Reason.MISALIGNED
        )
    if (
        env_drift
        or not all(strong)
        or abs(start_lag - end_lag) > p.drift_tolerance
        or np.sign(start_ncc) != np.sign(end_ncc)
    ):
        return result(best_lag, _ncc_at(m, i, best_lag), Reason.DRIFT)
    lags = range(min(start_lag, end_lag) - 1, max(start_lag, end_lag) + 2)
    nccs = [_ncc_at(m, i, lag) for lag in lags]
    k = int(np.argmax(np.abs(nccs)))
    reason = None if abs(nccs[k]) >= p.min_overall_confidence else Reason.MISALIGNED
    return result(lags[k], nccs[k], reason)


def apply_alignment(instr: np.ndarray, alignment: Alignment, length: int) -> np.ndarray:
    """The instrumental on the mix's timeline: ``out[:, n] = polarity · instr[:, n − offset]``.

    Samples outside the instrumental are zeros; the result has ``length`` samples (the mix's)
    and ``instr``'s channels, float32.
    """
    x = np.atleast_2d(np.asarray(instr, dtype=np.float32))
    d = alignment.offset_samples
    out = np.zeros((x.shape[0], length), dtype=np.float32)
    lo, hi = max(0, d), min(length, x.shape[1] + d)
    if hi > lo:
        out[:, lo:hi] = x[:, lo - d : hi - d]
    if alignment.polarity < 0:
        np.negative(out, out=out)
    return out
