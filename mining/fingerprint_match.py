"""Matching two landmark fingerprints, and verifying an (original, instrumental) candidate.

Hashes common to a query and a reference vote for the offset ``t_ref - t_query``; the tallest
bin of that histogram (± ``tolerance_frames``) is the alignment, and the share of the query's
hashes that vote for it is the match ratio (:func:`match`).

For (original mix, instrumental) verification the instrumental is the query: its peaks survive in
the mix wherever the vocals do not mask them, so a true pair gives a *partial* ratio at one offset,
while two copies of the same recording give a *near-total* ratio (``same_audio``). The thresholds
of :class:`VerifyThresholds` were calibrated on MIR-1K (see ``bench/fingerprint_calibration.py``
and the README section "Matching: titles, fingerprints, discovery").

Offsets: ``offset_s`` is the position of the query's start inside the reference, i.e. query time
``t`` sounds at reference time ``t + offset_s`` (positive: the query starts later in the
reference, e.g. the reference has an intro the query lacks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from vocalmine.core.reasons import Reason
from vocalmine.mining.landmarks import DT_MASK, Fingerprint

__all__ = [
    "DEFAULT_THRESHOLDS",
    "MatchResult",
    "Suspect",
    "Verdict",
    "VerifyThresholds",
    "check_compatible",
    "count_between",
    "expand_hashes",
    "expand_variants",
    "hash_postings",
    "match",
    "verify_pair",
]


@dataclass(frozen=True)
class MatchResult:
    """How a query fingerprint lands in a reference fingerprint.

    ``n_matches``: query hashes voting for the best offset (± tolerance); ``ratio``: that count
    over the query hashes whose anchors fall inside the reference at that offset (the overlap);
    ``offset_s``: query time ``t`` ↔ reference time ``t + offset_s``; ``sharpness``: the best
    offset's votes over the best votes elsewhere (+1): ≫ 1 for one consistent alignment, ≈ 1 for
    chance votes (but also ≈ 1 for a true match in loop-based music, so it is reported, not
    used); ``coverage``: share of the overlap's seconds holding at least two votes for the best
    offset — ≈ 1 when the alignment holds throughout, small when a time-stretched copy agrees
    only where its drift is under a frame.
    """

    n_matches: int
    ratio: float
    offset_s: float
    offset_frames: float
    sharpness: float
    coverage: float
    n_query: int
    n_overlap: int


def check_compatible(a: Fingerprint, b: Fingerprint) -> None:
    """Raise ``ValueError`` when ``a`` and ``b`` were made with different parameters."""
    if a.params != b.params:
        raise ValueError("fingerprints made with different parameters cannot be compared")


def expand_variants(query_hashes: np.ndarray, dt_tolerance: int) -> tuple[np.ndarray, np.ndarray]:
    """Each query hash with its Δt field moved by up to ± ``dt_tolerance`` frames, and the index
    of the hash it came from. A shift of a fraction of a frame rounds the two peaks of a landmark
    to different frames about half the time; looking up the neighbours absorbs that jitter."""
    index = np.arange(query_hashes.size)
    if dt_tolerance <= 0:
        return query_hashes, index
    dt = (query_hashes & DT_MASK).astype(np.int64)
    hashes, owners = [query_hashes], [index]
    for d in range(1, dt_tolerance + 1):
        for step in (-d, d):
            ok = (dt + step >= 1) & (dt + step <= DT_MASK)
            hashes.append((query_hashes[ok].astype(np.int64) + step).astype(np.uint32))
            owners.append(index[ok])
    return np.concatenate(hashes), np.concatenate(owners)


def expand_hashes(
    sorted_hashes: np.ndarray, query_hashes: np.ndarray, max_postings: int, dt_tolerance: int
) -> tuple[np.ndarray, np.ndarray]:
    """All (query index, reference index) pairs with equal hashes (Δt within ``dt_tolerance``);
    hashes posted more than ``max_postings`` times in the reference are skipped (stop words:
    silence, drones)."""
    variants, owners = expand_variants(query_hashes, dt_tolerance)
    lo = np.searchsorted(sorted_hashes, variants, side="left")
    hi = np.searchsorted(sorted_hashes, variants, side="right")
    count = hi - lo
    count[count > max_postings] = 0
    return hash_postings(owners, lo, count)


def hash_postings(
    owners: np.ndarray, starts: np.ndarray, count: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(query index, reference index) for each looked-up hash: ``owners[j]`` paired with the
    ``count[j]`` reference postings from ``starts[j]`` on."""
    total = int(count.sum())
    if total == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    qi = np.repeat(owners, count)
    first = np.repeat(starts - (np.cumsum(count) - count), count)
    return qi, first + np.arange(total)


def count_between(sorted_times: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """How many of ``sorted_times`` lie in ``[start, stop)``, elementwise."""
    return np.searchsorted(sorted_times, stop) - np.searchsorted(sorted_times, start)


def match(
    query: Fingerprint,
    ref: Fingerprint,
    *,
    tolerance_frames: int = 1,
    dt_tolerance: int = 1,
    max_postings: int = 64,
    coverage_bin_s: float = 1.0,
) -> MatchResult:
    """Align ``query`` inside ``ref`` by the histogram of hash-time offsets (vectorised).

    ``tolerance_frames``: offsets within this many frames of the best one count as agreeing
    (absorbs peaks rounded to neighbouring frames); ``dt_tolerance``: landmark Δt jitter looked
    up (see :func:`expand_variants`); ``max_postings``: reference hashes more frequent than this are
    ignored; ``coverage_bin_s``: the time unit of :attr:`MatchResult.coverage`.
    """
    check_compatible(query, ref)
    qi, ri = (
        expand_hashes(ref.hashes, query.hashes, max_postings, dt_tolerance)
        if len(query) and len(ref)
        else (np.empty(0, np.int64), np.empty(0, np.int64))
    )
    if qi.size == 0:
        return MatchResult(0, 0.0, 0.0, 0.0, 0.0, 0.0, len(query), 0)
    offsets = ref.times[ri].astype(np.int64) - query.times[qi]
    base = int(offsets.min())
    hist = np.bincount(offsets - base)
    width = 2 * tolerance_frames + 1
    windowed = np.convolve(hist, np.ones(width, dtype=np.int64), mode="same")
    centre = int(np.argmax(windowed))
    near = np.abs(offsets - base - centre) <= tolerance_frames
    voters = np.unique(qi[near])
    n_matches = int(voters.size)
    offset_frames = float(offsets[near].mean())
    elsewhere = windowed.copy()
    elsewhere[max(0, centre - 2 * width) : centre + 2 * width + 1] = 0
    sharpness = n_matches / (float(elsewhere.max(initial=0)) + 1.0)
    anchor_in_ref = query.times.astype(np.int64) + int(round(offset_frames))
    inside = (anchor_in_ref >= 0) & (anchor_in_ref < ref.n_frames)
    n_overlap = int(np.count_nonzero(inside))
    frames_per_bin = max(1, int(round(coverage_bin_s / query.frame_s)))
    bins_total = np.bincount(query.times[inside] // frames_per_bin)
    bins_voted = np.bincount(query.times[voters] // frames_per_bin, minlength=bins_total.size)
    bins_voted = bins_voted[: bins_total.size]
    populated = bins_total >= 2
    coverage = np.count_nonzero(bins_voted[populated] >= 2) / max(1, int(populated.sum()))
    return MatchResult(
        n_matches=n_matches,
        ratio=min(1.0, n_matches / max(n_overlap, 1)),
        offset_s=offset_frames * query.frame_s,
        offset_frames=offset_frames,
        sharpness=sharpness,
        coverage=float(coverage),
        n_query=len(query),
        n_overlap=n_overlap,
    )


@dataclass(frozen=True)
class VerifyThresholds:
    """Decision thresholds for :func:`verify_pair` (calibrated on MIR-1K and the synthetic and
    MUSDB benchmark libraries; see the README section on matching)."""

    #: Fewest instrumental hashes that must agree on one offset.
    min_matches: int = 20
    #: Smallest share of the instrumental's (overlapping) hashes that must agree.
    min_ratio: float = 0.05
    #: Smallest share of the overlap's seconds that must hold votes for that offset (rejects
    #: time-stretched copies, which agree only briefly).
    min_coverage: float = 0.7
    #: At or above this share the two *may* be the same recording: the pair is accepted as a
    #: ``same_audio`` suspect and the derivation decides (true pairs with quiet or sparse vocals
    #: reach 0.67 on the synthetic library; copies of the mix go down to 0.67 on MIR-1K).
    same_audio_ratio: float = 0.62
    #: At or above this share the two are the same recording: ``same_audio`` outright.
    copy_ratio: float = 0.9
    #: A pair that fails ``min_ratio`` or ``min_coverage`` but still has this ratio *and* this
    #: coverage (and ``min_matches``) is a near miss: a title candidate is then handed to the
    #: alignment as a ``fingerprint_mismatch`` suspect (short clips with loud vocals land here).
    near_min_ratio: float = 0.03
    near_min_coverage: float = 0.5


DEFAULT_THRESHOLDS = VerifyThresholds()


#: What fingerprints alone may leave open on an accepted pair; the derivation settles it.
Suspect = Literal[Reason.FINGERPRINT_MISMATCH, Reason.SAME_AUDIO]


@dataclass(frozen=True)
class Verdict:
    """Outcome of verifying one (original, instrumental) candidate by fingerprints.

    ``offset_s``: where the instrumental starts inside the original (instrumental time ``t``
    sounds at original time ``t + offset_s``); the other fields are those of the
    :class:`MatchResult` of the instrumental (query) in the original (reference).
    ``suspect``: set on an accepted pair the fingerprints cannot settle alone; the pair goes on
    to alignment and derivation, which confirm it or reject it with this reason (see
    :func:`verify_pair`).
    """

    accepted: bool
    reason: Suspect | None
    offset_s: float
    n_matches: int
    ratio: float
    coverage: float
    sharpness: float
    suspect: Suspect | None = None


def verify_pair(
    original_fp: Fingerprint,
    instrumental_fp: Fingerprint,
    thresholds: VerifyThresholds = DEFAULT_THRESHOLDS,
) -> Verdict:
    """Accept when enough instrumental hashes land in the original at one consistent offset.

    Rejected ``fingerprint_mismatch`` when too few hashes agree, or agree only briefly
    (different song, remix, time-stretched or pitch-shifted audio), and ``same_audio`` when the
    agreement is near total (``copy_ratio``: the "instrumental" is the mix, a re-encode or a
    duplicate). Two bands in between are accepted as *suspects*, because fingerprints alone
    cannot tell them apart from real pairs: ``same_audio`` (ratio ≥ ``same_audio_ratio``: a real
    pair whose vocals mask few accompaniment peaks, or a copy) and ``fingerprint_mismatch`` (a
    near miss of ``min_ratio``/``min_coverage``: a real pair with loud vocals on a short clip,
    or a remix). The derivation settles both: a copy leaves no vocals, a remix does not align.
    """
    result = match(instrumental_fp, original_fp)
    t = thresholds
    reason: Suspect | None = None
    suspect: Suspect | None = None
    if result.n_matches < t.min_matches:
        reason = Reason.FINGERPRINT_MISMATCH
    elif result.ratio < t.min_ratio or result.coverage < t.min_coverage:
        near = result.ratio >= t.near_min_ratio and result.coverage >= t.near_min_coverage
        mismatch = Reason.FINGERPRINT_MISMATCH
        reason, suspect = (None, mismatch) if near else (mismatch, None)
    elif result.ratio >= t.copy_ratio:
        reason = Reason.SAME_AUDIO
    elif result.ratio >= t.same_audio_ratio:
        suspect = Reason.SAME_AUDIO
    return Verdict(
        accepted=reason is None,
        reason=reason,
        offset_s=result.offset_s,
        n_matches=result.n_matches,
        ratio=result.ratio,
        coverage=result.coverage,
        sharpness=result.sharpness,
        suspect=suspect,
    )
