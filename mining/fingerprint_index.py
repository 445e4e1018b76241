"""The library-wide inverted index of landmark hashes, and the all-pairs sweep over it.

:class:`FingerprintIndex` maps hash → (track, time) over many fingerprints (one sort);
:func:`candidate_pairs` sweeps it once for every pair of tracks sharing enough hashes at one
offset: the only pairs worth an exact :func:`mining.fingerprint_match.match`, which
:mod:`mining.discovery` then runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from vocalmine.mining.fingerprint_match import (
    DEFAULT_THRESHOLDS,
    check_compatible,
    count_between,
    expand_hashes,
    hash_postings,
)
from vocalmine.mining.landmarks import DEFAULT_PARAMS, Fingerprint

__all__ = ["FingerprintIndex", "IndexHits", "candidate_pairs", "unordered"]


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
        check_compatible(fp, next(iter(self.fingerprints.values()), fp))
        empty = IndexHits(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0), np.empty(0))
        qi, ri = expand_hashes(self.hashes, fp.hashes, self.max_postings, dt_tolerance)
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
            count_between(query_times, -best_offset, self.n_frames[best_track] - best_offset), 1
        )
        return IndexHits(
            track_ids=self.track_ids[best_track],
            n_matches=votes,
            offset_frames=best_offset.astype(np.float64),
            ratio=np.minimum(1.0, votes / overlap),
        )


def unordered(pairs: Iterable[tuple[int, int]]) -> set[tuple[int, int]]:
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
        qi, ri = hash_postings(np.arange(fp.hashes.size), later, count)
        if qi.size == 0:
            return set()
        offsets = index.times[ri].astype(np.int64) - fp.times[qi]
        local, offset, votes = _best_offsets(index.owner[ri].astype(np.int64) - (k + 1), offsets, 1)
        enough = votes >= min_matches
        others, offset, votes = local[enough] + k + 1, offset[enough], votes[enough]
        mine = count_between(times[k], -offset, index.n_frames[others] - offset)
        theirs = np.array(
            [
                count_between(times[o], d, d + index.n_frames[k])
                for o, d in zip(others.tolist(), offset.tolist(), strict=True)
            ],
            dtype=np.int64,
        )
        strong = np.minimum(1.0, votes / np.maximum(np.minimum(mine, theirs), 1)) >= min_ratio
        own = int(index.track_ids[k])
        return unordered((own, int(index.track_ids[o])) for o in others[strong])

    with ThreadPoolExecutor(max(1, threads)) as pool:
        return set().union(*pool.map(partners, range(n)))
