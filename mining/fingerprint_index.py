"""The library-wide sweep: which tracks share enough landmark hashes at one offset to be worth
an exact :func:`mining.fingerprint_match.match`, with work and memory per track that do not
grow with the library.

The postings (hash → fingerprint id, time) come in :data:`~storage.fingerprint_store.N_BUCKETS`
buckets, from the on-disk :class:`~storage.fingerprint_store.FingerprintStore` or from the
in-memory :class:`FingerprintIndex`. :func:`sweep` queries a block of fingerprints against them:

1. **Rarest hashes first, within a budget.** Every query hash (with its Δt neighbours) is
   counted in the index; hashes found nowhere else are dropped, the rest are taken from the
   rarest up while their postings fit in a budget proportional to the query's length
   (``SweepParams.postings_per_hash``). In a small library that is nearly every hash; in a
   large one it is the hashes that still carry identity (the inverse document
   frequency idea of text retrieval, AcoustID's "subset of values"). This replaces an absolute
   stop-word cap, under which a hash posted more than 256 times in the whole library was
   ignored and recall fell to zero as libraries grew.
2. **Duration blocking.** Only tracks whose lengths differ by at most
   ``max_duration_diff_s`` vote (a discovered pair or a copy further apart is rejected anyway).
3. **Votes per (track, offset) cell**, counted over the hits of the block only: memory bounded
   by the budget, never by the library size.
4. **Exact re-scoring** of the ``max_candidates`` best-voted tracks per query with
   :func:`match` in both directions: the returned :class:`PairCheck` numbers are exact, so
   a check's outcome does not depend on the budget.

Why hand-written: no maintained Python library offers an on-disk landmark index with offset
voting (audfprint is a script with a fixed in-memory table; Olaf and Panako are C and Java).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from vocalmine.mining.fingerprint_match import (
    DEFAULT_THRESHOLDS,
    MatchResult,
    check_compatible,
    count_between,
    expand_variants,
    hash_postings,
    match,
)
from vocalmine.mining.landmarks import DEFAULT_PARAMS, Fingerprint, FingerprintParams
from vocalmine.storage.fingerprint_store import (
    N_BUCKETS,
    FingerprintStore,
    bucket_of,
    bucket_rows,
    sorted_postings,
)

__all__ = [
    "DEFAULT_SWEEP",
    "FingerprintIndex",
    "Postings",
    "PairCheck",
    "SweepParams",
    "open_index",
    "sweep",
    "sweep_blocks",
    "sweep_index",
    "sweep_key",
    "sweep_store",
    "unordered",
]


@dataclass(frozen=True)
class SweepParams:
    """How :func:`sweep` picks the tracks worth an exact match."""

    #: Postings read per query hash, rarest hashes first (a query of n hashes reads at most
    #: ``max(min_postings, postings_per_hash × n)``, ≈ 12 bytes of memory each while its block
    #: is voted): what keeps the work per track from growing with the library.
    postings_per_hash: float = 4.0
    #: The budget of the shortest queries.
    min_postings: int = 2_000
    #: Fewest votes for one offset (± ``tolerance_frames``) that make a track a candidate.
    min_votes: int = 8
    #: Smallest share of the query's looked-up hashes (in the overlap) voting for that offset.
    min_ratio: float = DEFAULT_THRESHOLDS.near_min_ratio / 2
    #: At most this many candidates per query (the best-voted) are re-scored exactly.
    max_candidates: int = 32
    #: Tracks whose lengths differ by more than this never vote (None: no blocking).
    max_duration_diff_s: float | None = 5.0
    #: Landmark Δt jitter looked up (see :func:`mining.fingerprint_match.match`).
    dt_tolerance: int = 1
    #: Offsets within this many frames of the best one count as agreeing.
    tolerance_frames: int = 1


DEFAULT_SWEEP = SweepParams()


def sweep_key(index_key: str, params: SweepParams) -> str:
    """The name a sweep's checks and "swept" marks are stored under: the index's fingerprint
    parameters and the sweep's own. Which pairs a sweep checks depends on both (the budget,
    the duration blocking), so after a change of either every recording is queried again."""
    text = json.dumps(asdict(params), sort_keys=True)
    return f"{index_key}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


@dataclass(frozen=True)
class PairCheck:
    """The exact match of two fingerprints in both directions, ``a < b``: what discovery and
    the duplicate search decide from (stored, so a decision is never re-measured)."""

    a: int
    b: int
    a_in_b: MatchResult
    b_in_a: MatchResult

    def renamed(self, a: int, b: int) -> PairCheck:
        """The same check between other names of the two sides (kept in ``a < b`` order)."""
        if a < b:
            return PairCheck(a, b, self.a_in_b, self.b_in_a)
        return PairCheck(b, a, self.b_in_a, self.a_in_b)


def unordered(pairs: Iterable[tuple[int, int]]) -> set[tuple[int, int]]:
    """Pairs of ids as (lower id, higher id)."""
    return {(min(a, b), max(a, b)) for a, b in pairs}


class Postings(Protocol):
    """What :func:`sweep` reads: the sorted postings of each bucket, in one or more parts
    (:class:`FingerprintIndex` in memory, :class:`~storage.fingerprint_store.FingerprintStore`
    on disk)."""

    def bucket(self, bucket: int) -> list[np.ndarray]:
        """(3, n) uint32 arrays (hash, fingerprint id, time bits), each sorted by hash."""
        ...


class FingerprintIndex:
    """The postings of a few fingerprints in memory (tests, benchmarks, one-off comparisons);
    fingerprint ids are the positions of the sorted track ids."""

    def __init__(self, fingerprints: Mapping[int, Fingerprint]) -> None:
        """Index ``fingerprints`` by track id."""
        self.track_ids = np.array(sorted(fingerprints), dtype=np.int64)
        self.fingerprints = {int(i): fingerprints[int(i)] for i in self.track_ids}
        params = {fp.params for fp in self.fingerprints.values()}
        if len(params) > 1:
            raise ValueError("fingerprints made with different parameters cannot be indexed")
        self.params = params.pop() if params else DEFAULT_PARAMS
        fps = [self.fingerprints[int(i)] for i in self.track_ids]
        self.n_frames = np.array([fp.n_frames for fp in fps], dtype=np.int64)
        chunks: list[list[np.ndarray]] = [[] for _ in range(N_BUCKETS)]
        for position, fp in enumerate(fps):
            for b, rows in enumerate(bucket_rows(position, fp.hashes, fp.times)):
                chunks[b].append(rows)
        self._buckets = [sorted_postings(c) for c in chunks]

    def __len__(self) -> int:
        return int(self.track_ids.size)

    def bucket(self, bucket: int) -> list[np.ndarray]:
        """The one sorted part of a bucket."""
        return [self._buckets[bucket]]

    def reference(self, position: int) -> Fingerprint:
        """The fingerprint at one position."""
        return self.fingerprints[int(self.track_ids[position])]


def _mixed(values: np.ndarray) -> np.ndarray:
    """A fixed pseudo-random order of hash values (Knuth's multiplicative hash): among equally
    rare hashes every query prefers the same ones, whatever their frequency band."""
    return (values.astype(np.uint64) * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)


def _counts(parts: list[np.ndarray], needles: np.ndarray) -> np.ndarray:
    """How many postings each needle has over the parts of one bucket."""
    total = np.zeros(needles.size, dtype=np.int64)
    for part in parts:
        keys = part[0]
        total += np.searchsorted(keys, needles, "right") - np.searchsorted(keys, needles, "left")
    return total


def _best_offsets(
    owner: np.ndarray, offsets: np.ndarray, tolerance: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every owner that received votes: the offset with the most votes within
    ± ``tolerance`` frames, and that many votes. Counted over the occupied (owner, offset)
    cells only (one sort), so memory follows the votes, not the number of owners."""
    if owner.size == 0:
        empty = np.empty(0, np.int64)
        return empty, empty, empty
    lo = int(offsets.min()) - tolerance
    span = int(offsets.max()) - lo + tolerance + 1
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


@dataclass(frozen=True)
class _Variants:
    """Every hash of a block's queries with its Δt neighbours, sorted by bucket then value:
    the value, the query it belongs to (``slot``), the position of its hash in that query,
    and where each bucket's run starts (``bounds``)."""

    hash: np.ndarray
    slot: np.ndarray
    pos: np.ndarray
    bounds: np.ndarray


def _variants(fps: list[Fingerprint], dt_tolerance: int) -> _Variants:
    parts = [expand_variants(fp.hashes, dt_tolerance) for fp in fps]
    v_hash = np.concatenate([v for v, _ in parts])
    v_slot = np.concatenate([np.full(v.size, k, dtype=np.int32) for k, (v, _) in enumerate(parts)])
    v_pos = np.concatenate([owner.astype(np.int32) for _, owner in parts])
    v_bucket = bucket_of(v_hash)
    # one 30-bit key (bucket above the 24-bit hash) sorts faster than a two-key lexsort
    order = np.argsort((v_bucket.astype(np.uint32) << np.uint32(24)) | v_hash)
    bounds = np.searchsorted(v_bucket[order], np.arange(N_BUCKETS + 1))
    return _Variants(v_hash[order], v_slot[order], v_pos[order], bounds)


def _choose(
    postings: Postings, var: _Variants, fps: list[Fingerprint], params: SweepParams
) -> np.ndarray:
    """Which variants to look up: per query, those posted by another fingerprint too, rarest
    first (then the fixed pseudo-random order) while their postings fit the query's budget."""
    df = np.zeros(var.hash.size, dtype=np.int64)
    for b in range(N_BUCKETS):
        s, e = var.bounds[b], var.bounds[b + 1]
        if e > s:
            df[s:e] = _counts(postings.bucket(b), var.hash[s:e])
    own_keys = np.sort(
        np.concatenate([(k << 32) | fp.hashes.astype(np.int64) for k, fp in enumerate(fps)])
    )
    v_keys = (var.slot.astype(np.int64) << 32) | var.hash.astype(np.int64)
    own = np.searchsorted(own_keys, v_keys, "right") - np.searchsorted(own_keys, v_keys, "left")
    del own_keys, v_keys
    useful = df > own
    rank = np.argsort(  # one 64-bit key: query, document frequency, pseudo-random order
        (var.slot.astype(np.uint64) << np.uint64(44))
        | (np.minimum(df, (1 << 20) - 1).astype(np.uint64) << np.uint64(24))
        | (_mixed(var.hash) >> np.uint64(8))
    )
    spent = np.cumsum(np.where(useful[rank], df[rank], 0))
    slot_start = np.searchsorted(var.slot[rank], np.arange(len(fps)))
    before = np.r_[0, spent][slot_start][var.slot[rank]]
    budget = np.array(
        [max(params.min_postings, int(params.postings_per_hash * len(fp))) for fp in fps]
    )
    chosen = np.zeros(var.hash.size, dtype=bool)
    chosen[rank] = useful[rank] & (spent - before <= budget[var.slot[rank]])
    return chosen


def _hits(
    postings: Postings,
    var: _Variants,
    chosen: np.ndarray,
    ids: list[int],
    fps: list[Fingerprint],
    n_frames: np.ndarray,
    params: SweepParams,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query slot, indexed fingerprint, offset) of every posting of the chosen variants in
    another fingerprint of a compatible length."""
    query_id = np.array(ids, dtype=np.int64)
    query_frames = np.array([fp.n_frames for fp in fps], dtype=np.int64)
    max_diff = (
        None
        if params.max_duration_diff_s is None
        else int(np.ceil(params.max_duration_diff_s / fps[0].frame_s))
    )
    flat_times = np.concatenate([fp.times.astype(np.int64) for fp in fps])
    base = np.r_[0, np.cumsum([len(fp) for fp in fps])[:-1]].astype(np.int64)
    hit_slot, hit_ref, hit_offset = [], [], []
    for b in range(N_BUCKETS):
        pick = np.flatnonzero(chosen[var.bounds[b] : var.bounds[b + 1]]) + var.bounds[b]
        if pick.size == 0:
            continue
        needles = var.hash[pick]
        for part in postings.bucket(b):
            lo = np.searchsorted(part[0], needles, "left")
            hi = np.searchsorted(part[0], needles, "right")
            qi, ri = hash_postings(np.arange(pick.size), lo, hi - lo)
            ref = part[1][ri].astype(np.int64)
            ref_time = part[2][ri].view(np.int32).astype(np.int64)
            known = ref < n_frames.size  # indexed after ``n_frames`` was read: next run's
            qi, ref, ref_time = qi[known], ref[known], ref_time[known]
            k = var.slot[pick[qi]].astype(np.int64)
            keep = (ref != query_id[k]) & (n_frames[ref] >= 0)
            if max_diff is not None:
                keep &= np.abs(n_frames[ref] - query_frames[k]) <= max_diff
            k, qpos = k[keep], var.pos[pick[qi]][keep]
            hit_slot.append(k)
            hit_ref.append(ref[keep])
            hit_offset.append(ref_time[keep] - flat_times[base[k] + qpos])
    empty = np.empty(0, np.int64)
    return (
        np.concatenate(hit_slot) if hit_slot else empty,
        np.concatenate(hit_ref) if hit_ref else empty,
        np.concatenate(hit_offset) if hit_offset else empty,
    )


def _candidates(
    hits: tuple[np.ndarray, np.ndarray, np.ndarray],
    var: _Variants,
    chosen: np.ndarray,
    fps: list[Fingerprint],
    n_frames: np.ndarray,
    params: SweepParams,
) -> tuple[np.ndarray, np.ndarray]:
    """(query slot, indexed fingerprint) of every candidate, best-voted first per query: at
    least ``min_votes`` at one offset, and ``min_ratio`` of the query's looked-up hashes in
    the overlap at that offset."""
    h_slot, h_ref, h_offset = hits
    stride = int(n_frames.size) + 1
    cell, owner = np.unique(h_slot * stride + h_ref, return_inverse=True)
    best, offset, votes = _best_offsets(owner.astype(np.int64), h_offset, params.tolerance_frames)
    strong = votes >= params.min_votes
    c_slot, c_ref = cell[best[strong]] // stride, cell[best[strong]] % stride
    offset, votes = offset[strong], votes[strong]
    span = np.int64(1) << 32
    chosen_at = np.unique(var.slot[chosen].astype(np.int64) * span + var.pos[chosen])
    slot_of, pos_of = chosen_at // span, chosen_at % span
    base = np.r_[0, np.cumsum([len(fp) for fp in fps])[:-1]].astype(np.int64)
    flat_times = np.concatenate([fp.times.astype(np.int64) for fp in fps])
    looked_up = np.sort(slot_of * span + flat_times[base[slot_of] + pos_of])
    start = c_slot * span + np.clip(-offset, 0, span - 1)
    stop = c_slot * span + np.clip(n_frames[c_ref] - offset, 0, span - 1)
    overlap = count_between(looked_up, start, np.maximum(start, stop))
    keep = votes / np.maximum(overlap, 1) >= params.min_ratio
    c_slot, c_ref, votes = c_slot[keep], c_ref[keep], votes[keep]
    order = np.lexsort((c_ref, -votes, c_slot))
    return c_slot[order], c_ref[order]


def sweep(
    postings: Postings,
    n_frames: np.ndarray,
    queries: Mapping[int, Fingerprint],
    reference: Callable[[int], Fingerprint],
    params: SweepParams = DEFAULT_SWEEP,
) -> list[PairCheck]:
    """Exact checks of every indexed fingerprint that the ``queries`` (fingerprint id →
    fingerprint, all of them indexed already) find by the rule of the module docstring.

    ``n_frames[id]``: length of every indexed fingerprint (-1: gone); ``reference(id)``: an
    indexed fingerprint, for the exact re-scoring. A pair found from both of its sides is
    returned once. Memory: the block's variants and hits, and one bucket's touched pages.
    """
    ids = sorted(queries)
    if not ids:
        return []
    fps = [queries[i] for i in ids]
    for fp in fps[1:]:
        check_compatible(fps[0], fp)
    var = _variants(fps, params.dt_tolerance)
    chosen = _choose(postings, var, fps, params)
    hits = _hits(postings, var, chosen, ids, fps, n_frames, params)
    c_slot, c_ref = _candidates(hits, var, chosen, fps, n_frames, params)
    del hits, var, chosen
    checks: dict[tuple[int, int], PairCheck] = {}
    taken: dict[int, int] = {}
    cache: dict[int, Fingerprint] = dict(zip(ids, fps, strict=True))
    for k, r in zip(c_slot.tolist(), c_ref.tolist(), strict=True):
        if taken.get(k, 0) >= params.max_candidates:
            continue
        taken[k] = taken.get(k, 0) + 1
        key = (min(ids[k], r), max(ids[k], r))
        if key in checks:
            continue
        if r not in cache:
            cache[r] = reference(r)
        a, b = key
        checks[key] = PairCheck(a, b, match(cache[a], cache[b]), match(cache[b], cache[a]))
    return [checks[k] for k in sorted(checks)]


def sweep_blocks(sizes: Mapping[int, int], budget_hashes: int) -> list[list[int]]:
    """Query ids cut into blocks of about ``budget_hashes`` hashes each (in id order): the unit
    of work of one sweep task, which bounds its memory."""
    blocks: list[list[int]] = []
    total = 0
    for fp_id in sorted(sizes):
        if not blocks or total >= budget_hashes:
            blocks.append([])
            total = 0
        blocks[-1].append(fp_id)
        total += int(sizes[fp_id])
    return blocks


def sweep_index(
    index: FingerprintIndex,
    params: SweepParams = DEFAULT_SWEEP,
    *,
    block_hashes: int = 2_000_000,
    queries: Iterable[int] | None = None,
) -> list[PairCheck]:
    """Every check of an in-memory index (or of the tracks ``queries`` only), named by track
    id: the whole sweep in one process, in blocks."""
    position = {int(t): p for p, t in enumerate(index.track_ids.tolist())}
    wanted = [position[int(t)] for t in (index.track_ids if queries is None else queries)]
    sizes = {p: len(index.reference(p)) for p in wanted}
    out: dict[tuple[int, int], PairCheck] = {}
    for block in sweep_blocks(sizes, block_hashes):
        found = sweep(
            index, index.n_frames, {p: index.reference(p) for p in block}, index.reference, params
        )
        for check in found:
            named = check.renamed(int(index.track_ids[check.a]), int(index.track_ids[check.b]))
            out[(named.a, named.b)] = named
    return [out[k] for k in sorted(out)]


def open_index(root: str, params: FingerprintParams = DEFAULT_PARAMS) -> FingerprintStore:
    """The on-disk index of fingerprints made with ``params`` under ``root``."""
    return FingerprintStore(root, asdict(params))


def sweep_store(
    store: FingerprintStore, contents: Iterable[str], params: SweepParams = DEFAULT_SWEEP
) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """Sweep the on-disk index with the indexed recordings ``contents`` (one block: what one
    task does), as rows (content a, content b, a in b, b in a) with content a < b, the form
    the catalog stores."""
    entries = store.entries
    content_of = store.content_by_id()

    def load(fp_id: int) -> Fingerprint:
        return Fingerprint.from_bytes(store.read_object(content_of[fp_id]))

    queries = {entries[h].fp_id: load(entries[h].fp_id) for h in contents}
    checks = sweep(store, store.n_frames_by_id(), queries, load, params)
    rows = []
    for check in checks:
        a, b = content_of[check.a], content_of[check.b]
        a_in_b, b_in_a = asdict(check.a_in_b), asdict(check.b_in_a)
        rows.append((a, b, a_in_b, b_in_a) if a < b else (b, a, b_in_a, a_in_b))
    return rows
