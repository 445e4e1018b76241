"""One accepted pair, from two files to training segments: the unit of work of a mining task.

``process_pair`` composes the pure steps of ``mining/`` for one (original, instrumental) pair:

    load (original at its own rate, instrumental resampled to it)
    → align (sample-exact offset, polarity; rejects ``misaligned`` / ``drift``)
    → place the instrumental on the mix's timeline → BS.1770 + robust least-squares gain
    → gain plausibility (rejects ``implausible_gain``)
    → derive vocals at the STFT preset (rejects ``no_vocals``)
    → role checks: is the instrumental the accompaniment, not an a cappella (rejects
      ``role_mismatch``; see :mod:`mining.roles`) → cut segments.

Every check's value, limit and outcome is kept in :attr:`PairResult.checks` for the catalog's
evidence trail, whether the pair passes or not.

Data problems come back as a :class:`PairResult` with a reason code and a one-line detail,
never as an exception, so a Prefect task can record them; an exception means a bug. Arguments
and results are plain picklable values (paths, numbers, dataclasses of numpy arrays) for Dask
workers. Memory: a five-minute stereo 48 kHz song is ~115 MB per float32 signal; at most the
mix and two instrumental buffers live at once, and both are dropped before segmenting.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

from vocalmine.core.audio import AudioError, load_audio, resample
from vocalmine.core.reasons import Reason
from vocalmine.core.stft import STFTPreset, get_preset
from vocalmine.mining.alignment import Alignment, AlignParams, align, apply_alignment
from vocalmine.mining.loudness import Gain, match_gain
from vocalmine.mining.roles import (
    DEFAULT_ROLE_THRESHOLDS,
    Check,
    RoleThresholds,
    check_gain,
    check_role,
    failed_detail,
    role_features,
)
from vocalmine.mining.segments import SegmentPatch, SegmentPolicy, cut_segments
from vocalmine.mining.vocals import MIN_VOCAL_RATIO_DB, derive, vocal_activity_db


@dataclass(frozen=True)
class PairParams:
    """Tuning beyond the configured skip and hop (the defaults are the calibrated ones)."""

    align: AlignParams = field(default_factory=AlignParams)
    min_vocal_ratio_db: float = MIN_VOCAL_RATIO_DB
    no_skip_if_short: bool = True
    min_last_fill: float = 0.2
    roles: RoleThresholds = DEFAULT_ROLE_THRESHOLDS


@dataclass
class PairResult:
    """What one pair produced: segments, or a rejection ``reason`` with a one-line ``detail``.

    ``sample_rate`` is the original's rate, the one ``alignment.offset_samples`` counts in.
    ``metrics`` holds plain floats (confidences, gain, vocal activity, role features, mean
    quality, seconds per stage) for the catalog and the dashboard; ``checks`` every check made,
    as :meth:`mining.roles.Check.as_dict` values (name, value, threshold, passed).
    """

    reason: str | None = None
    detail: str | None = None
    alignment: Alignment | None = None
    gain: Gain | None = None
    segments: list[SegmentPatch] = field(default_factory=list)
    sample_rate: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    checks: list[dict[str, object]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the pair yielded segments."""
        return self.reason is None

    @property
    def quality(self) -> float | None:
        """Mean segment quality (the pair's score in the catalog), or None without segments."""
        if not self.segments:
            return None
        return float(np.mean([s.quality for s in self.segments]))


def _align_at_instrumental_rate(
    mix: np.ndarray,
    sr: int,
    instrumental_path: str | os.PathLike[str],
    coarse_offset_s: float | None,
    params: AlignParams,
) -> Alignment | None:
    """A failed alignment tried again at the instrumental's own rate, when that is higher.

    Pairs are aligned at the original's rate. There an offset can fall between two samples (an
    instrumental placed at an odd sample of a rate twice as high): the whitened correlation
    splits its peak, and a clip built from a repeated loop can then match better a beat away,
    which reads as drift. Only failures are retried, so a pair that aligns is never changed, and
    a real drift (another edit, a tempo change) fails at any rate.
    """
    try:
        instr, rate = load_audio(instrumental_path)
    except AudioError:
        return None
    if rate <= sr:
        return None
    finer = align(resample(mix, sr, rate), instr, rate, coarse_offset_s, params)
    return finer.at_rate(sr) if finer.ok else None


def process_pair(
    original_path: str | os.PathLike[str],
    instrumental_path: str | os.PathLike[str],
    preset: STFTPreset | str,
    coarse_offset_s: float | None = None,
    *,
    segment_skip_s: float = 20.0,
    segment_hop_frames: int | None = None,
    params: PairParams | None = None,
    suspect: str | None = None,
    vouched: bool = False,
) -> PairResult:
    """Align, gain-match, derive and segment one pair (see the module doc).

    ``coarse_offset_s`` follows :mod:`mining.alignment`'s sign convention (where the
    instrumental's start lies in the mix, seconds). Reasons: ``decode_error``, ``misaligned``,
    ``drift``, ``no_vocals``, ``too_short`` (no patch fits, even without the skip).
    ``suspect`` (from :attr:`mining.fingerprint_match.Verdict.suspect`) names what the fingerprints
    could not rule out; the derivation confirms it with that reason: a ``fingerprint_mismatch``
    suspect that does not align, a ``same_audio`` suspect that leaves no vocals. Also
    ``implausible_gain`` and ``role_mismatch`` (see :mod:`mining.roles`); ``vouched`` when the
    instrumental's own title or tags say it is an instrumental.
    """
    p = params or PairParams()
    spec = get_preset(preset) if isinstance(preset, str) else preset
    metrics: dict[str, float] = {}
    checks: list[dict[str, object]] = []
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        metrics[f"seconds_{name}"] = now - clock
        clock = now

    try:
        mix, sr = load_audio(original_path)
        instr, _ = load_audio(instrumental_path, sr=sr)
    except AudioError as exc:
        return PairResult(reason=Reason.DECODE_ERROR, detail=str(exc), metrics=metrics)
    lap("load")
    metrics["duration_s"] = mix.shape[1] / sr

    alignment = align(mix, instr, sr, coarse_offset_s, p.align)
    if not alignment.ok:
        alignment = (
            _align_at_instrumental_rate(mix, sr, instrumental_path, coarse_offset_s, p.align)
            or alignment
        )
    lap("align")
    metrics.update(
        offset_s=alignment.offset_s,
        align_confidence=alignment.confidence,
        start_confidence=alignment.start_confidence,
        end_confidence=alignment.end_confidence,
    )
    if not alignment.ok:
        detail = (
            f"start offset {alignment.start_offset}, end offset {alignment.end_offset} samples "
            f"at {sr} Hz; peaks {alignment.start_confidence:.3f}, {alignment.end_confidence:.3f}"
        )
        reason = alignment.reason
        if suspect == Reason.FINGERPRINT_MISMATCH:
            reason = Reason.FINGERPRINT_MISMATCH
            detail = f"fingerprints nearly failed and the audio does not align ({detail})"
        return PairResult(reason, detail, alignment, sample_rate=sr, metrics=metrics)

    placed = apply_alignment(instr, alignment, mix.shape[1])
    del instr
    gain = match_gain(mix, placed, sr)
    placed *= np.float32(gain.gain)
    lap("gain")
    metrics["gain_db"] = gain.gain_db

    def rejected(reason: str, detail: str) -> PairResult:
        """The pair dropped for ``reason`` after gain matching, with what was measured."""
        return PairResult(
            reason, detail, alignment, gain, sample_rate=sr, metrics=metrics, checks=checks
        )

    gain_check = check_gain(gain.gain_db, p.roles)
    checks.append(gain_check.as_dict())
    if not gain_check.passed:
        detail = (
            f"the instrumental sits in the mix at {gain.gain_db:+.1f} dB, beyond "
            f"±{p.roles.max_gain_db:g} dB: one side is not the other's accompaniment"
        )
        return rejected(Reason.IMPLAUSIBLE_GAIN, detail)

    derived = derive(mix, placed, sr, spec)
    del mix, placed
    activity = vocal_activity_db(derived)
    metrics["vocal_activity_db"] = activity
    lap("derive")
    checks.append(
        Check(
            "vocal_activity_db",
            activity,
            p.min_vocal_ratio_db,
            activity >= p.min_vocal_ratio_db,
            "loud frames' vocal share (90th percentile, dB) >=",
        ).as_dict()
    )
    if activity < p.min_vocal_ratio_db:
        detail = f"loud frames' vocal share {activity:.1f} dB < {p.min_vocal_ratio_db:.1f} dB"
        reason = Reason.NO_VOCALS
        if suspect == Reason.SAME_AUDIO:
            reason = Reason.SAME_AUDIO
            detail = f"fingerprints agree near-totally and {detail}: the two are one recording"
        return rejected(reason, detail)
    features = role_features(derived, spec.sample_rate, spec.n_fft, p.roles)
    metrics.update(features.as_dict())
    role_checks = check_role(features, p.roles, vouched=vouched)
    checks += [c.as_dict() for c in role_checks]
    if not all(c.passed for c in role_checks):
        detail = f"the instrumental is not the accompaniment: {failed_detail(role_checks)}"
        return rejected(Reason.ROLE_MISMATCH, detail)

    policy = SegmentPolicy(
        skip_s=segment_skip_s,
        hop_frames=segment_hop_frames,
        no_skip_if_short=p.no_skip_if_short,
        min_last_fill=p.min_last_fill,
    )
    segments = cut_segments(derived, spec, policy)
    lap("segment")
    metrics["segments"] = float(len(segments))
    if not segments:
        detail = f"{derived.frames} frames leave no {spec.patch_frames}-frame patch"
        return rejected(Reason.TOO_SHORT, detail)
    result = PairResult(None, None, alignment, gain, segments, sr, metrics, checks)
    metrics["quality"] = result.quality or 0.0
    return result
