"""Landmark audio fingerprints (Wang 2003, as popularised by Dejavu), vectorised with numpy/scipy.

Why hand-written: the PyPI release of ``dejavu`` (PyDejavu 0.1.x) is Python-2 only and stores
fingerprints in MySQL; the scheme itself is short. Every step below is array code: the only Python
loops step through neighbour distances (a few dozen iterations at most), never over peaks, hashes
or frames.

Scheme
------
1. Mono downmix, resampled (soxr) to :attr:`FingerprintParams.sample_rate`.
2. Magnitude STFT (Hann window, ``n_fft``/``hop``).
3. Spectral peaks: cells that equal the maximum of their time × frequency neighbourhood
   (a separable running maximum, :func:`window_max`), louder than ``floor_db`` below the
   loudest cell (relative, so gain does not matter), and among the ``peaks_per_second``
   loudest within ±0.5 s (a sliding window, so where the file starts does not matter).
4. Landmarks: each anchor peak ``(t1, f1)`` is paired with the next ``fan_out`` peaks ``(t2, f2)``
   in its target zone ``1 <= t2 - t1 <= max_dt``, ``|f2 - f1| <= max_df``; the hash packs
   ``(f1, f2 - f1, t2 - t1)`` into 24 bits of a ``uint32`` and keeps the anchor time ``t1``.
5. Matching: hashes common to a query and a reference vote for the offset ``t_ref - t_query``;
   the tallest bin of that histogram (± ``tolerance_frames``) is the alignment, and the share of
   the query's hashes that vote for it is the match ratio.

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

import io
import json
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import scipy.fft

from vocalmine.core.audio import resample

__all__ = [
    "DEFAULT_PARAMS",
    "DiscoveredPair",
    "Duplicate",
    "Fingerprint",
    "FingerprintIndex",
    "FingerprintParams",
    "IndexHits",
    "MatchResult",
    "Verdict",
    "VerifyThresholds",
    "candidate_pairs",
    "discover_pairs",
    "find_duplicates",
    "fingerprint",
    "match",
    "orient_pair",
    "verify_pair",
]

_FORMAT_VERSION = 1
_DT_MASK = (1 << 6) - 1  # Δt occupies the low 6 bits of a hash


@dataclass(frozen=True)
class FingerprintParams:
    """Parameters of the landmark scheme; fingerprints made with different ones do not compare."""

    #: Analysis rate (Hz). 11025 Hz keeps 0–5.5 kHz, where the strongest, most codec-robust
    #: peaks of music live, and makes the STFT four times cheaper than at 44.1 kHz.
    sample_rate: int = 11025
    #: FFT size (samples): 1024 at 11025 Hz = 93 ms window, 10.8 Hz bins.
    n_fft: int = 1024
    #: Hop (samples): 128 at 11025 Hz = 11.6 ms frames, the time resolution of offsets and
    #: hashes. Hop 256 lost 15 % more hashes of a copy shifted by half a frame (calibration).
    hop: int = 128
    #: Lowest frequency bin considered (3 ≈ 32 Hz): skips DC and rumble.
    min_bin: int = 3
    #: Peak neighbourhood (frames, bins): a peak is the maximum of this window centred on it.
    #: Wider = fewer, sparser, more robust peaks.
    neighborhood: tuple[int, int] = (17, 19)
    #: Peaks quieter than this many dB below the loudest STFT cell are ignored (relative, so a
    #: gain change moves the floor with the signal; keeps codec noise and fades out).
    floor_db: float = -60.0
    #: At most this many peaks per second (the loudest), so dense passages do not flood the
    #: hash table and each second of audio weighs the same.
    peaks_per_second: int = 32
    #: Each anchor is paired with this many following peaks in its target zone (≈ 150 hashes
    #: per second of audio; 10 separated copies from pairs only slightly better at twice the size).
    fan_out: int = 5
    #: Target zone: 1..max_dt frames after the anchor (63 frames = 0.73 s; 6 bits) ...
    max_dt: int = 63
    #: ... and at most this many bins above or below it (127 bins = 1.37 kHz; 8 bits).
    max_df: int = 127

    def __post_init__(self) -> None:
        if not 1 <= self.max_dt <= _DT_MASK:
            raise ValueError(f"FingerprintParams: max_dt must be in 1..{_DT_MASK} (6 bits)")
        if not 0 <= self.max_df <= 127:
            raise ValueError("FingerprintParams: max_df must be in 0..127 (8 bits)")
        if self.n_fft // 2 + 1 > 1 << 10:
            raise ValueError("FingerprintParams: n_fft must be at most 2046 (10-bit bins)")

    @property
    def frame_s(self) -> float:
        """Seconds per STFT frame: the unit of fingerprint times and offsets."""
        return self.hop / self.sample_rate


DEFAULT_PARAMS = FingerprintParams()


@dataclass(frozen=True)
class Fingerprint:
    """Landmark hashes of one recording, sorted by hash (then time), with their anchor frames."""

    hashes: np.ndarray  # uint32, sorted ascending
    times: np.ndarray  # int32 anchor frame of each hash
    frame_s: float
    n_frames: int
    params: FingerprintParams = field(default=DEFAULT_PARAMS)

    @property
    def duration_s(self) -> float:
        """Length of the fingerprinted audio (frame resolution)."""
        return self.n_frames * self.frame_s

    def __len__(self) -> int:
        return int(self.hashes.size)

    def to_bytes(self) -> bytes:
        """Compressed ``.npz`` bytes for the catalog's ``Fingerprint.data`` column."""
        buffer = io.BytesIO()
        params = json.dumps(asdict(self.params), sort_keys=True).encode()
        np.savez_compressed(
            buffer,
            format_version=np.int32(_FORMAT_VERSION),
            hashes=self.hashes.astype(np.uint32, copy=False),
            times=self.times.astype(np.int32, copy=False),
            n_frames=np.int64(self.n_frames),
            params=np.frombuffer(params, dtype=np.uint8),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Fingerprint:
        """Inverse of :meth:`to_bytes`; raises ``ValueError`` on foreign or corrupt data."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                version = int(npz["format_version"])
                hashes = npz["hashes"].astype(np.uint32, copy=False)
                times = npz["times"].astype(np.int32, copy=False)
                n_frames = int(npz["n_frames"])
                raw = json.loads(npz["params"].tobytes().decode())
            raw["neighborhood"] = tuple(raw["neighborhood"])
            params = FingerprintParams(**raw)
        except Exception as exc:  # numpy/json/dataclass raise several types for broken data
            raise ValueError(f"fingerprint data: not a fingerprint archive ({exc})") from exc
        if version != _FORMAT_VERSION:
            raise ValueError(f"fingerprint data: format version {version} is not supported")
        return cls(hashes, times, params.frame_s, n_frames, params)


def _spectrogram(mono: np.ndarray, params: FingerprintParams) -> np.ndarray:
    """Magnitude STFT, shape (frames, bins), float32; frames start at 0 (no centring)."""
    n_fft, hop = params.n_fft, params.hop
    if mono.size < n_fft:
        mono = np.pad(mono, (0, n_fft - mono.size))
    frames = np.lib.stride_tricks.sliding_window_view(mono, n_fft)[::hop]
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)
    return np.abs(scipy.fft.rfft(frames * window, axis=1)).astype(np.float32, copy=False)


def window_max(x: np.ndarray, size: int, axis: int) -> np.ndarray:
    """Centred running maximum of odd width ``size`` along ``axis``, zeros beyond the edges.

    Equals ``scipy.ndimage.maximum_filter1d(x, size, axis, mode="constant", cval=0)`` and is
    hand-written because it is twice as fast on a song's spectrogram: scipy filters one line at
    a time, while this takes whole-array maxima of maxima over doubling spans (windows of 1, 2,
    4, 8, 16, then two overlapping ones cover ``size``), five or so vectorised passes.
    """

    def part(a: np.ndarray, start: int, n: int) -> np.ndarray:
        index = [slice(None)] * a.ndim
        index[axis] = slice(start, start + n)
        return a[tuple(index)]

    half = size // 2
    pad = [(0, 0)] * x.ndim
    pad[axis] = (half, half)
    spans = np.pad(x, pad)
    width = 1
    while 2 * width <= size:
        n = spans.shape[axis] - width
        spans = np.maximum(part(spans, 0, n), part(spans, width, n))
        width *= 2
    n = x.shape[axis]
    return np.maximum(part(spans, 0, n), part(spans, size - width, n))


def _peaks(spec: np.ndarray, params: FingerprintParams) -> tuple[np.ndarray, np.ndarray]:
    """Times and bins of the spectral peaks, sorted by (time, bin)."""
    spec = spec[:, params.min_bin :]
    loudest = float(spec.max(initial=0.0))
    if loudest <= 0.0:
        return np.empty(0, np.int32), np.empty(0, np.int32)
    local_max = window_max(window_max(spec, params.neighborhood[1], 1), params.neighborhood[0], 0)
    floor = loudest * 10.0 ** (params.floor_db / 20.0)
    t, f = np.nonzero((spec == local_max) & (spec > floor))
    if t.size == 0:
        return t.astype(np.int32), f.astype(np.int32)
    keep = _loudest_per_window(t, spec[t, f], params)
    return t[keep].astype(np.int32), (f[keep] + params.min_bin).astype(np.int32)


def _loudest_per_window(t: np.ndarray, level: np.ndarray, params: FingerprintParams) -> np.ndarray:
    """Mask of peaks with fewer than ``peaks_per_second`` louder peaks within ±0.5 s of them.

    A sliding window centred on each peak, rather than fixed one-second blocks, keeps the choice
    independent of where the file starts (a cut or padded copy keeps the same peaks). Peaks are
    sorted by time, so comparing each with its k-th successor for k = 1, 2, ... visits every pair
    within the window once; the loop ends when no k-th successor is that close.
    """
    n = t.size
    half = max(1, int(round(0.5 / params.frame_s)))
    louder = np.zeros(n, dtype=np.int32)
    for k in range(1, n):
        near = (t[k:] - t[: n - k]) <= half
        if not near.any():
            break
        louder[: n - k] += near & (level[k:] > level[: n - k])
        louder[k:] += near & (level[: n - k] > level[k:])
    return louder < params.peaks_per_second


def _landmarks(
    t: np.ndarray, f: np.ndarray, params: FingerprintParams
) -> tuple[np.ndarray, np.ndarray]:
    """Fan-out pairs of each anchor with its next peaks in the target zone → (hashes, times)."""
    n = t.size
    hashes: list[np.ndarray] = []
    times: list[np.ndarray] = []
    taken = np.zeros(n, dtype=np.int32)
    anchors = np.arange(n)
    for k in range(1, 3 * params.fan_out + 1):
        if k >= n:
            break
        a = anchors[: n - k]
        dt = t[a + k] - t[a]
        df = f[a + k] - f[a]
        ok = (dt >= 1) & (dt <= params.max_dt) & (np.abs(df) <= params.max_df)
        ok &= taken[a] < params.fan_out
        taken[a] += ok
        sel = a[ok]
        packed = (
            (f[sel].astype(np.uint32) << 14)
            | ((df[ok] + 128).astype(np.uint32) << 6)
            | dt[ok].astype(np.uint32)
        )
        hashes.append(packed)
        times.append(t[sel])
        if not np.any(dt <= params.max_dt):
            break
    if not hashes:
        return np.empty(0, np.uint32), np.empty(0, np.int32)
    h = np.concatenate(hashes)
    tt = np.concatenate(times).astype(np.int32)
    order = np.lexsort((tt, h))
    return h[order], tt[order]


def fingerprint(
    audio: np.ndarray, sr: int, params: FingerprintParams = DEFAULT_PARAMS
) -> Fingerprint:
    """Landmark fingerprint of ``audio`` (``(channels, samples)`` or ``(samples,)``, ``sr`` Hz)."""
    data = np.asarray(audio, dtype=np.float32)
    if data.ndim == 2:
        data = data.mean(axis=0)
    elif data.ndim != 1:
        raise ValueError(f"fingerprint: audio must be 1-D or (channels, samples), got {data.shape}")
    if sr <= 0:
        raise ValueError(f"fingerprint: sample rate must be positive, got {sr}")
    if not np.all(np.isfinite(data)):
        raise ValueError("fingerprint: audio holds NaN or infinite samples")
    mono = np.ascontiguousarray(resample(data, int(sr), params.sample_rate), dtype=np.float32)
    spec = _spectrogram(mono, params)
    t, f = _peaks(spec, params)
    hashes, times = _landmarks(t, f, params)
    return Fingerprint(hashes, times, params.frame_s, int(spec.shape[0]), params)


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


def _check_compatible(a: Fingerprint, b: Fingerprint) -> None:
    if a.params != b.params:
        raise ValueError("fingerprints made with different parameters cannot be compared")


def _variants(query_hashes: np.ndarray, dt_tolerance: int) -> tuple[np.ndarray, np.ndarray]:
    """Each query hash with its Δt field moved by up to ± ``dt_tolerance`` frames, and the index
    of the hash it came from. A shift of a fraction of a frame rounds the two peaks of a landmark
    to different frames about half the time; looking up the neighbours absorbs that jitter."""
    index = np.arange(query_hashes.size)
    if dt_tolerance <= 0:
        return query_hashes, index
    dt = (query_hashes & _DT_MASK).astype(np.int64)
    hashes, owners = [query_hashes], [index]
    for d in range(1, dt_tolerance + 1):
        for step in (-d, d):
            ok = (dt + step >= 1) & (dt + step <= _DT_MASK)
            hashes.append((query_hashes[ok].astype(np.int64) + step).astype(np.uint32))
            owners.append(index[ok])
    return np.concatenate(hashes), np.concatenate(owners)


def _expand(
    sorted_hashes: np.ndarray, query_hashes: np.ndarray, max_postings: int, dt_tolerance: int
) -> tuple[np.ndarray, np.ndarray]:
    """All (query index, reference index) pairs with equal hashes (Δt within ``dt_tolerance``);
    hashes posted more than ``max_postings`` times in the reference are skipped (stop words:
    silence, drones)."""
    variants, owners = _variants(query_hashes, dt_tolerance)
    lo = np.searchsorted(sorted_hashes, variants, side="left")
    hi = np.searchsorted(sorted_hashes, variants, side="right")
    count = hi - lo
    count[count > max_postings] = 0
    return _postings(owners, lo, count)


def _postings(
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


def _count_between(sorted_times: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
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
    up (see :func:`_variants`); ``max_postings``: reference hashes more frequent than this are
    ignored; ``coverage_bin_s``: the time unit of :attr:`MatchResult.coverage`.
    """
    _check_compatible(query, ref)
    qi, ri = (
        _expand(ref.hashes, query.hashes, max_postings, dt_tolerance)
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


Suspect = Literal["fingerprint_mismatch", "same_audio"]


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
        reason = "fingerprint_mismatch"
    elif result.ratio < t.min_ratio or result.coverage < t.min_coverage:
        near = result.ratio >= t.near_min_ratio and result.coverage >= t.near_min_coverage
        reason, suspect = (None, "fingerprint_mismatch") if near else ("fingerprint_mismatch", None)
    elif result.ratio >= t.copy_ratio:
        reason = "same_audio"
    elif result.ratio >= t.same_audio_ratio:
        suspect = "same_audio"
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


# --- library-wide discovery --------------------------------------------------------------------


@dataclass(frozen=True)
class IndexHits:
    """Result of :meth:`FingerprintIndex.query`, one entry per indexed track sharing hashes with
    the query: its id, the votes for its best offset, that offset (frames; query time ``t`` ↔
    track time ``t + offset``) and the votes over the query's hashes in the overlap."""

    track_ids: np.ndarray
    n_matches: np.ndarray
    offset_frames: np.ndarray
    ratio: np.ndarray


#: Largest (tracks × offsets) vote table counted densely with ``np.bincount`` (int64: 256 MB);
#: larger queries count the occupied cells only, by sorting.
_DENSE_VOTES = 1 << 25


def _best_offsets(
    owner: np.ndarray, offsets: np.ndarray, tolerance: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every owner that received votes: the offset with the most votes within ± ``tolerance``
    frames, and that many votes. Votes are counted per (owner, offset) cell, densely with one
    ``bincount`` when the table is small enough (the common case: a 4-minute query against a few
    hundred tracks), else over the occupied cells (``np.unique``), which costs a sort."""
    lo = int(offsets.min()) - tolerance
    span = int(offsets.max()) - lo + tolerance + 1
    n_owners = int(owner.max()) + 1
    if n_owners * span <= _DENSE_VOTES:
        table = np.bincount(owner * span + (offsets - lo), minlength=n_owners * span)
        table = table.reshape(n_owners, span)
        windowed = table.copy()
        for d in range(1, tolerance + 1):
            windowed[:, d:] += table[:, :-d]
            windowed[:, :-d] += table[:, d:]
        best = windowed.argmax(axis=1)
        votes = windowed[np.arange(n_owners), best]
        present = np.flatnonzero(votes)
        return present, best[present] + lo, votes[present]
    keys, counts = np.unique(owner * span + (offsets - lo), return_counts=True)
    windowed = counts.copy()
    for d in range(1, tolerance + 1):
        for sign in (-1, 1):
            pos = np.minimum(np.searchsorted(keys, keys + sign * d), keys.size - 1)
            windowed += np.where(keys[pos] == keys + sign * d, counts[pos], 0)
    track = keys // span
    order = np.lexsort((-windowed, track))
    first = order[np.r_[True, track[order][1:] != track[order][:-1]]]
    return track[first], keys[first] % span + lo, windowed[first]


class FingerprintIndex:
    """Inverted index hash → (track, time) over many fingerprints, built with one sort.

    Memory is about 12 bytes per hash (≈ 150 hashes per second of audio with the default
    parameters, so ≈ 0.45 MB per 4-minute track, 4.5 GB for 10,000 tracks: index a library in
    batches of artists or decades when it is larger than memory allows).
    """

    def __init__(
        self,
        fingerprints: Mapping[int, Fingerprint],
        *,
        max_postings: int = 256,
    ) -> None:
        """Index ``fingerprints`` by track id; hashes posted more than ``max_postings`` times in
        the whole index are ignored at query time (they carry no identity)."""
        self.track_ids = np.array(sorted(fingerprints), dtype=np.int64)
        self.fingerprints = {int(i): fingerprints[int(i)] for i in self.track_ids}
        params = {fp.params for fp in self.fingerprints.values()}
        if len(params) > 1:
            raise ValueError("fingerprints made with different parameters cannot be indexed")
        self.params = params.pop() if params else DEFAULT_PARAMS
        self.max_postings = max_postings
        fps = [self.fingerprints[int(i)] for i in self.track_ids]
        sizes = np.array([len(fp) for fp in fps], dtype=np.int64)
        self.n_frames = np.array([fp.n_frames for fp in fps], dtype=np.int64)
        hashes = np.concatenate([fp.hashes for fp in fps]) if fps else np.empty(0, np.uint32)
        times = np.concatenate([fp.times for fp in fps]) if fps else np.empty(0, np.int32)
        owner = np.repeat(np.arange(len(fps), dtype=np.int32), sizes)
        order = np.argsort(hashes, kind="stable")
        self.hashes = hashes[order]
        self.times = times[order]
        self.owner = owner[order]

    def __len__(self) -> int:
        return int(self.track_ids.size)

    def query(
        self,
        fp: Fingerprint,
        *,
        exclude: int | None = None,
        tolerance_frames: int = 1,
        dt_tolerance: int = 1,
    ) -> IndexHits:
        """Best offset and votes of ``fp`` in every indexed track that shares a hash with it."""
        _check_compatible(fp, next(iter(self.fingerprints.values()), fp))
        empty = IndexHits(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0), np.empty(0))
        qi, ri = _expand(self.hashes, fp.hashes, self.max_postings, dt_tolerance)
        if exclude is not None and qi.size and exclude in self.fingerprints:
            keep = self.owner[ri] != int(np.searchsorted(self.track_ids, exclude))
            qi, ri = qi[keep], ri[keep]
        if qi.size == 0:
            return empty
        owner = self.owner[ri].astype(np.int64)
        offsets = self.times[ri].astype(np.int64) - fp.times[qi]
        best_track, best_offset, votes = _best_offsets(owner, offsets, tolerance_frames)
        query_times = np.sort(fp.times.astype(np.int64))
        overlap = np.maximum(
            _count_between(query_times, -best_offset, self.n_frames[best_track] - best_offset), 1
        )
        return IndexHits(
            track_ids=self.track_ids[best_track],
            n_matches=votes,
            offset_frames=best_offset.astype(np.float64),
            ratio=np.minimum(1.0, votes / overlap),
        )


@dataclass(frozen=True)
class DiscoveredPair:
    """A pair found by fingerprints alone (``source='fingerprint'``).

    ``offset_s``: instrumental time ``t`` ↔ original time ``t + offset_s``; ``ratio``: share of
    the instrumental's hashes found in the original (``reverse_ratio`` the other way round);
    ``oriented_by``: which rule chose the original — ``"audio"`` (the ``orient`` callback, e.g.
    :func:`orient_pair`), ``"energy"`` (the ``energy`` mapping) or ``"unknown"`` (neither was
    given: ``original_id`` is then just the lower id, and the flow must orient the pair);
    ``suspect``: as :attr:`Verdict.suspect`.
    """

    original_id: int
    instrumental_id: int
    n_matches: int
    ratio: float
    reverse_ratio: float
    offset_s: float
    oriented_by: Literal["audio", "energy", "unknown"]
    source: str = "fingerprint"
    suspect: Suspect | None = None


def _unordered(pairs: Iterable[tuple[int, int]]) -> set[tuple[int, int]]:
    """Pairs of track ids as (lower id, higher id), the form :func:`candidate_pairs` returns."""
    return {(min(a, b), max(a, b)) for a, b in pairs}


def candidate_pairs(
    index: FingerprintIndex,
    *,
    min_matches: int = DEFAULT_THRESHOLDS.min_matches,
    min_ratio: float = DEFAULT_THRESHOLDS.near_min_ratio / 2,
    threads: int = 1,
) -> set[tuple[int, int]]:
    """(lower id, higher id) of every indexed pair where one track's hashes give at least
    ``min_matches`` votes for one offset in the other, and at least ``min_ratio`` of its hashes
    there: the only pairs worth an exact :func:`match`. Exact Δt, so the ratio runs below
    :func:`match`'s, hence the halved default; :func:`discover_pairs` and
    :func:`find_duplicates` share one sweep when the caller passes it to both.

    Each pair is looked at once, not once from each side: with exact Δt the votes of ``a`` in
    ``b`` at offset ``d`` are the votes of ``b`` in ``a`` at ``-d``, so each track's hashes are
    looked up among the postings of the tracks after it only (a hash's postings are in track
    order, so one more binary search finds where those start), and the share of hashes is taken
    on both sides at the offset found. That halves the sweep, which grows with the square of
    the library. The tracks run on ``threads`` threads (numpy's searching and counting release
    the GIL).
    """
    n = len(index)
    keys = (index.hashes.astype(np.uint64) << np.uint64(32)) | index.owner.astype(np.uint64)
    fps = [index.fingerprints[int(i)] for i in index.track_ids]
    times = [np.sort(fp.times.astype(np.int64)) for fp in fps]

    def partners(k: int) -> set[tuple[int, int]]:
        fp = fps[k]
        base = fp.hashes.astype(np.uint64) << np.uint64(32)
        first = np.searchsorted(keys, base, side="left")
        end = np.searchsorted(keys, base | np.uint64(0xFFFFFFFF), side="right")
        later = np.searchsorted(keys, base | np.uint64(k + 1), side="left")
        count = np.where(end - first > index.max_postings, 0, end - later)
        qi, ri = _postings(np.arange(fp.hashes.size), later, count)
        if qi.size == 0:
            return set()
        offsets = index.times[ri].astype(np.int64) - fp.times[qi]
        local, offset, votes = _best_offsets(index.owner[ri].astype(np.int64) - (k + 1), offsets, 1)
        enough = votes >= min_matches
        others, offset, votes = local[enough] + k + 1, offset[enough], votes[enough]
        mine = _count_between(times[k], -offset, index.n_frames[others] - offset)
        theirs = np.array(
            [
                _count_between(times[o], d, d + index.n_frames[k])
                for o, d in zip(others.tolist(), offset.tolist(), strict=True)
            ],
            dtype=np.int64,
        )
        strong = np.minimum(1.0, votes / np.maximum(np.minimum(mine, theirs), 1)) >= min_ratio
        own = int(index.track_ids[k])
        return _unordered((own, int(index.track_ids[o])) for o in others[strong])

    with ThreadPoolExecutor(max(1, threads)) as pool:
        return set().union(*pool.map(partners, range(n)))


def discover_pairs(
    index: FingerprintIndex,
    *,
    known: Iterable[tuple[int, int]] = (),
    thresholds: VerifyThresholds = DEFAULT_THRESHOLDS,
    energy: Mapping[int, float] | None = None,
    orient: Callable[[int, int, float], bool] | None = None,
    candidates: set[tuple[int, int]] | None = None,
) -> list[DiscoveredPair]:
    """Pairs that titles missed: one track's hashes land in another's at one consistent offset
    with a *partial* ratio (``min_ratio`` ≤ ratio < ``copy_ratio``, ≥ ``min_matches``); a ratio
    at or above ``same_audio_ratio`` marks the pair a ``same_audio`` suspect (see
    :func:`verify_pair`). ``candidates``: the :func:`candidate_pairs` sweep, when the caller
    already has it.

    Which side is the original (the mix = instrumental + vocals), in order of preference:

    1. ``orient(a, b, offset_s)`` → True when ``a`` is the original, where ``b``'s time ``t``
       sounds at ``a``'s time ``t + offset_s``: the flow loads both files and calls
       :func:`orient_pair` (spectral excess after alignment; right on 100/100 MIR-1K
       calibration pairs with both sides at equal RMS);
    2. ``energy[track_id]`` (RMS or integrated loudness, measured alike for all tracks): the
       louder one. Cheap, but wrong when both were mastered to the same loudness;
    3. otherwise ``oriented_by="unknown"`` and ``original_id`` is the lower id. Fingerprints
       alone cannot tell: with a per-second peak budget the share of hashes found is nearly
       symmetric (the rule "the mix is the side whose hashes are found less" was right on only
       31/100 calibration pairs).

    Pairs in ``known`` (either order) and near-total agreements (copies; see
    :func:`find_duplicates`) are left out.
    """
    if candidates is None:
        candidates = candidate_pairs(index, min_matches=thresholds.min_matches)
    found: list[DiscoveredPair] = []
    for lo, hi in sorted(candidates - _unordered(known)):
        fp_lo, fp_hi = index.fingerprints[lo], index.fingerprints[hi]
        lo_in_hi, hi_in_lo = match(fp_lo, fp_hi), match(fp_hi, fp_lo)
        best = max(lo_in_hi.ratio, hi_in_lo.ratio)
        if (
            max(lo_in_hi.n_matches, hi_in_lo.n_matches) < thresholds.min_matches
            or best < thresholds.min_ratio
            or best >= thresholds.copy_ratio
            or max(lo_in_hi.coverage, hi_in_lo.coverage) < thresholds.min_coverage
        ):
            continue
        rule: Literal["audio", "energy", "unknown"] = "unknown"
        hi_is_original = False
        if orient is not None:
            hi_is_original, rule = bool(orient(hi, lo, lo_in_hi.offset_s)), "audio"
        elif energy is not None and lo in energy and hi in energy and energy[lo] != energy[hi]:
            hi_is_original, rule = energy[hi] > energy[lo], "energy"
        inst_in_orig, orig_in_inst = (
            (lo_in_hi, hi_in_lo) if hi_is_original else (hi_in_lo, lo_in_hi)
        )
        original, instrumental = (hi, lo) if hi_is_original else (lo, hi)
        found.append(
            DiscoveredPair(
                original_id=original,
                instrumental_id=instrumental,
                n_matches=inst_in_orig.n_matches,
                ratio=inst_in_orig.ratio,
                reverse_ratio=orig_in_inst.ratio,
                offset_s=inst_in_orig.offset_s,
                oriented_by=rule,
                suspect="same_audio" if best >= thresholds.same_audio_ratio else None,
            )
        )
    return sorted(found, key=lambda p: (-p.ratio, p.original_id, p.instrumental_id))


@dataclass(frozen=True)
class Duplicate:
    """``track_id`` is a copy of ``duplicate_of`` (the lowest id of its group)."""

    track_id: int
    duplicate_of: int
    evidence: Literal["content_hash", "fingerprint"]
    ratio: float


def find_duplicates(
    index: FingerprintIndex,
    *,
    durations: Mapping[int, float] | None = None,
    content_hashes: Mapping[int, str] | None = None,
    same_audio_ratio: float = DEFAULT_THRESHOLDS.same_audio_ratio,
    max_offset_s: float = 0.5,
    max_duration_diff_s: float = 1.0,
    min_matches: int = DEFAULT_THRESHOLDS.min_matches,
    candidates: set[tuple[int, int]] | None = None,
    known: Iterable[tuple[int, int]] = (),
) -> list[Duplicate]:
    """Copies of one recording: equal content hashes, or near-total fingerprint agreement in both
    directions (ratio ≥ ``same_audio_ratio``) at an offset within ``max_offset_s`` of zero and
    durations within ``max_duration_diff_s`` (re-encodes, other rips of one master).

    Pairs in ``known`` (either order: the title candidates, where one title says
    "instrumental") are never called copies by fingerprint: a real pair whose vocals are quiet
    agrees as much as a copy does, and its derivation decides (see :func:`verify_pair`).
    ``candidates``: the :func:`candidate_pairs` sweep, when the caller already has it.

    ``durations`` default to the fingerprints' own lengths. Groups are closed transitively;
    every member but the lowest id of its group is reported once, with its first evidence.
    """
    parent: dict[int, int] = {}
    evidence: dict[int, tuple[Literal["content_hash", "fingerprint"], float]] = {}

    def root(x: int) -> int:
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    def join(a: int, b: int, kind: Literal["content_hash", "fingerprint"], ratio: float) -> None:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
            evidence[max(ra, rb)] = (kind, ratio)

    first_with: dict[str, int] = {}
    for track_id in sorted(content_hashes or {}):
        digest = content_hashes[track_id]  # type: ignore[index]
        if digest in first_with:
            join(first_with[digest], track_id, "content_hash", 1.0)
        else:
            first_with[digest] = track_id

    def duration(track_id: int) -> float | None:
        if durations is not None:
            return durations.get(track_id)
        return index.fingerprints[track_id].duration_s

    if candidates is None:
        candidates = candidate_pairs(index, min_matches=min_matches)
    for lo, hi in sorted(candidates - _unordered(known)):
        dur_lo, dur_hi = duration(lo), duration(hi)
        if dur_lo is None or dur_hi is None or abs(dur_lo - dur_hi) > max_duration_diff_s:
            continue
        forward = match(index.fingerprints[hi], index.fingerprints[lo])
        backward = match(index.fingerprints[lo], index.fingerprints[hi])
        agreement = min(forward.ratio, backward.ratio)
        if agreement >= same_audio_ratio and abs(forward.offset_s) <= max_offset_s:
            join(lo, hi, "fingerprint", agreement)
    out = []
    for track_id in sorted(set(parent) | set(parent.values())):
        keep = root(track_id)
        if keep != track_id:
            kind, ratio = evidence[track_id]
            out.append(Duplicate(track_id, keep, kind, ratio))
    return out


def orient_pair(
    audio_a: np.ndarray,
    audio_b: np.ndarray,
    sr: int,
    offset_s: float,
    params: FingerprintParams = DEFAULT_PARAMS,
) -> bool:
    """True when ``a`` is the original (the mix) and ``b`` the instrumental.

    ``offset_s``: ``b``'s time ``t`` sounds at ``a``'s time ``t + offset_s``. Rule: after
    aligning, both magnitude spectrograms are scaled by a robust gain (median ratio over cells
    where both are loud, i.e. mostly the shared accompaniment), then the energy each has *in
    excess* of the other is compared; the mix's excess is the vocals, the instrumental's is only
    masking noise, so the side with more excess is the original. This holds even when both were
    mastered to the same loudness (where plain RMS fails).
    """
    a = np.asarray(audio_a, dtype=np.float32)
    b = np.asarray(audio_b, dtype=np.float32)
    a = a.mean(axis=0) if a.ndim == 2 else a
    b = b.mean(axis=0) if b.ndim == 2 else b
    a = resample(a, sr, params.sample_rate)
    b = resample(b, sr, params.sample_rate)
    shift = int(round(offset_s * params.sample_rate))
    if shift >= 0:
        a = a[shift:]
    else:
        b = b[-shift:]
    n = min(a.size, b.size)
    if n < params.n_fft:
        raise ValueError("orient_pair: the aligned overlap is shorter than one analysis window")
    spec_a = _spectrogram(a[:n], params)[:, params.min_bin :]
    spec_b = _spectrogram(b[:n], params)[:, params.min_bin :]
    loud = (spec_a > np.percentile(spec_a, 75)) & (spec_b > np.percentile(spec_b, 75))
    if not np.any(loud):
        loud = np.ones_like(spec_a, dtype=bool)
    gain = float(np.median(spec_a[loud] / np.maximum(spec_b[loud], 1e-12)))
    excess_a = float(np.sum(np.maximum(spec_a - gain * spec_b, 0.0) ** 2))
    excess_b = float(np.sum(np.maximum(gain * spec_b - spec_a, 0.0) ** 2))
    return excess_a > excess_b
