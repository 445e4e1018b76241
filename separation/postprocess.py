"""The thesis's three post-processing options (Prétet 2018 §4.4.3), and what each one trades.

BSSEval splits the error of an estimate into interference (the other source leaking in; SIR) and
artifacts (distortion the separation itself made; SAR). Each option moves along that trade-off:

* **Mask binarisation** (eq. 4.8): ``f_a(M) = 1 / (1 + exp(-(M - 0.5) * a))`` pushes every mask
  value towards 0 or 1. Less of the other source survives (SIR up), more "musical noise" holes
  appear (SAR down). ``f_a(1 - M) = 1 - f_a(M)``, so the two masks still sum to one. The thesis's
  best compromise is ``a = 10``.
* **Vocal energy gate**: the vocal stem's energy (moving average over 0.23 s) is compared with its
  maximum; stretches quieter than ``b`` times the maximum and longer than ``a`` seconds are
  silenced with short fades, the removed signal goes to the accompaniment. Instrument leaks
  between phrases disappear (vocal SIR up), breaths and quiet phrases can go too (SAR down).
  The thesis's best compromise is ``a = 1 s``, ``b = 0.2``.
* **Multichannel Wiener filter** (norbert, EM with full-rank spatial covariances, eq. 4.9–4.10):
  re-estimates each source's complex STFT from its power spectrum and spatial image. It mostly
  raises SIR on stereo mixtures at some SAR cost; on mono input it reduces to a power-ratio mask.
  The thesis found it neutral or slightly negative; one EM iteration is the usual setting.
"""

from __future__ import annotations

import norbert
import numpy as np

from vocalmine.separation.settings import GateSettings, HighBand, PostProcessing


def binarize(mask: np.ndarray, alpha: float) -> np.ndarray:
    """Sigmoid of slope ``alpha`` centred at 0.5 (thesis eq. 4.8); keeps ``f(1-M) = 1 - f(M)``."""
    return (1.0 / (1.0 + np.exp(-(mask - 0.5) * alpha))).astype(np.float32)


def wiener(mixture_stft: np.ndarray, vocal_mask: np.ndarray, iterations: int = 1) -> np.ndarray:
    """Vocal STFT ``(C, F, T)`` after norbert's multichannel Wiener filter.

    ``mixture_stft`` is the complex ``(C, F, T)`` mixture and ``vocal_mask`` the ratio mask on the
    same grid; the initial source magnitudes are ``M * |X|`` and ``(1 - M) * |X|``. Spatial
    covariances are estimated over the frames given (one processing block).
    """
    x = np.ascontiguousarray(mixture_stft.transpose(2, 1, 0)).astype(np.complex128)
    mag = np.abs(x)
    m = np.ascontiguousarray(vocal_mask.transpose(2, 1, 0))
    v = np.stack([m * mag, (1.0 - m) * mag], axis=-1)
    y = norbert.wiener(v, x.copy(), iterations=iterations, use_softmask=False)
    return np.ascontiguousarray(y[..., 0].transpose(2, 1, 0)).astype(np.complex64)


def hop_energies(audio: np.ndarray, hop: int) -> np.ndarray:
    """Mean power per hop of ``hop`` samples (averaged over channels); a partial last hop counts."""
    power = np.square(audio, dtype=np.float64).mean(axis=0)
    n = power.shape[0]
    full = n // hop
    out = power[: full * hop].reshape(full, hop).mean(axis=1)
    if n % hop:
        out = np.append(out, power[full * hop :].mean())
    return out


def gate_gain(energies: np.ndarray, settings: GateSettings, sample_rate: int) -> np.ndarray:
    """Gain per hop (0..1) of the vocal energy gate, from :func:`hop_energies` of the whole stem.

    The envelope is the moving average of the energies over ``window_s``; hops under
    ``threshold * max(envelope)`` in runs longer than ``min_silence_s`` are silenced, with
    raised-cosine fades of ``fade_s`` placed inside the silent run so voiced hops are untouched.
    """
    hop_s = gate_hop(settings, sample_rate) / sample_rate
    width = max(1, round(settings.window_s / hop_s))
    envelope = np.convolve(energies, np.ones(width) / width, mode="same")
    gain = np.ones_like(envelope)
    if envelope.size == 0 or envelope.max() <= 0:
        return gain
    quiet = envelope < settings.threshold * envelope.max()
    edges = np.flatnonzero(np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]])))
    min_hops = settings.min_silence_s / hop_s
    fade = max(1, round(settings.fade_s / hop_s))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        if stop - start <= min_hops:
            continue
        gain[start:stop] = 0.0
        n = min(fade, (stop - start) // 2)
        rise = 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / max(n, 1))
        if start > 0:
            gain[start : start + n] = rise[::-1]
        if stop < gain.size:
            gain[stop - n : stop] = rise
    return gain


def gain_at_samples(gain: np.ndarray, start: int, length: int, hop: int) -> np.ndarray:
    """The per-hop gain interpolated to samples ``start .. start+length`` (hop centres)."""
    samples = np.arange(start, start + length, dtype=np.float64)
    centres = (np.arange(gain.size) + 0.5) * hop
    return np.interp(samples, centres, gain).astype(np.float32)


def gate_hop(settings: GateSettings, sample_rate: int) -> int:
    """Samples per energy hop of the gate at ``sample_rate``."""
    return max(1, round(settings.hop_s * sample_rate))


def apply_gate(vocals: np.ndarray, settings: GateSettings, sample_rate: int) -> np.ndarray:
    """Gated copy of an in-memory vocal stem ``(C, N)``."""
    hop = gate_hop(settings, sample_rate)
    gain = gate_gain(hop_energies(vocals, hop), settings, sample_rate)
    return vocals * gain_at_samples(gain, 0, vocals.shape[-1], hop)


class HopEnergyMeter:
    """Streaming :func:`hop_energies`: feed consecutive chunks, read all hop energies at the end.

    The gate compares with the maximum over the whole stem, so a streamed separation measures
    energies on the way and applies the gain in a second pass.
    """

    def __init__(self, hop: int) -> None:
        self.hop = hop
        self._parts: list[np.ndarray] = []
        self._rest: np.ndarray | None = None

    def push(self, audio: np.ndarray) -> None:
        """Account for the next ``(C, n)`` samples."""
        if self._rest is not None:
            audio = np.concatenate([self._rest, audio], axis=1)
        full = audio.shape[1] // self.hop * self.hop
        if full:
            self._parts.append(hop_energies(audio[:, :full], self.hop))
        self._rest = audio[:, full:].copy()

    def energies(self) -> np.ndarray:
        """All hop energies so far, the partial last hop included."""
        parts = list(self._parts)
        if self._rest is not None and self._rest.shape[1]:
            parts.append(hop_energies(self._rest, self.hop))
        return np.concatenate(parts) if parts else np.zeros(0)


def parse_variant(text: str) -> PostProcessing:
    """``"none"``, ``"binarize"``, ``"binarize=5"``, ``"gate"``, ``"gate=0.5"``, ``"wiener"``,
    ``"wiener=2"``, ``"zero-above"`` (Spleeter's rule: nothing above the model's band) or a
    ``+``-joined combination → settings (thesis defaults when no value)."""
    alpha: float | None = None
    iterations = 0
    gate: GateSettings | None = None
    high_band: HighBand = "full"
    for part in filter(None, (p.strip() for p in text.lower().split("+"))):
        name, _, value = part.partition("=")
        try:
            if name == "none":
                continue
            if name == "binarize":
                alpha = float(value) if value else 10.0
            elif name == "wiener":
                iterations = int(value) if value else 1
            elif name == "gate":
                gate = GateSettings(threshold=float(value)) if value else GateSettings()
            elif name == "zero-above" and not value:
                high_band = "zero"
            else:
                raise ValueError
        except ValueError:
            raise ValueError(
                f"post-processing {part!r}: use none, binarize[=ALPHA], wiener[=N], gate[=B], "
                "zero-above"
            ) from None
    return PostProcessing(
        binarize_alpha=alpha, wiener_iterations=iterations, gate=gate, high_band=high_band
    )
