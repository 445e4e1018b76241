"""Candidate (original, instrumental) pairs from track names, in bulk.

How it works (:func:`match_titles`):

1. Every title is parsed (:func:`mining.titles.parse_title`, with the track's version tag) into a
   base title, an instrumental marker, other-version names (remix, live, ...) and edition tags.
   Tracks with an instrumental marker are *instrumentals*; all others are possible *originals*.
2. Blocking by artist: the distinct normalised artists of instrumentals are scored against the
   distinct normalised artists of originals with :func:`rapidfuzz.process.cdist`
   (``token_sort_ratio``, cut at ``min_artist_score``), so "The Beatles" meets "Beatles" and
   "Beyoncé" meets "Beyonce". Tracks without an artist only meet tracks without an artist.
3. Inside each block, base titles are scored with one ``cdist`` call (``fuzz.ratio``, cut at
   ``min_title_score``); cells whose other versions differ are masked (a remix instrumental pairs
   with the remix, never with the album version), and titles whose digit tokens differ
   ("Part 1" / "Part 2") are dropped. The pair score is ``title × artist`` in [0, 1].
4. Each instrumental keeps its best-scoring originals (ties within ``tie_margin`` all kept; an
   original may so gain several instrumentals), preferring originals that pass the duration
   filters; if none pass, the best ones are returned with their rejection reason.
5. Duration filters: either track longer than ``max_duration_s`` → ``too_long`` (checked first, a
   property of a track); durations differing by more than ``max_duration_diff_s`` →
   ``duration_mismatch``. Unknown durations (``None``) pass.
6. Instrumentals with no original at all are reported as ``no_counterpart``.

The only Python loops run over artist blocks and over the few candidates above the cut-offs,
never over all track pairs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from rapidfuzz import fuzz, process

from vocalmine.core.reasons import Reason
from vocalmine.mining.titles import ParsedTitle, normalize_artist, parse_title

__all__ = [
    "CandidatePair",
    "MatchReport",
    "TrackRef",
    "UnmatchedTrack",
    "match_titles",
]

#: Rows of one ``cdist`` call over artists; bounds its memory to rows × distinct artists bytes.
_ARTIST_CHUNK = 2048


@dataclass(frozen=True)
class TrackRef:
    """What matching needs of a catalog track (the scanner has already filled artist/title from
    ``Artist - Title (Version).ext`` when tags were missing)."""

    id: int
    artist: str | None
    title: str | None
    version: str | None = None
    duration_s: float | None = None
    path: str | None = None


@dataclass(frozen=True)
class CandidatePair:
    """One proposed pair; ``reason`` is a rejection code (``too_long``, ``duration_mismatch``)
    or ``None`` for a candidate that passed, and ``detail`` says why in words."""

    original_id: int
    instrumental_id: int
    score: float
    source: str = "title"
    reason: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class UnmatchedTrack:
    """A track with an instrumental marker and no original (``reason='no_counterpart'``)."""

    track_id: int
    reason: str = Reason.NO_COUNTERPART
    detail: str | None = None


@dataclass(frozen=True)
class MatchReport:
    """Everything :func:`match_titles` found: candidates (passed and rejected) and lone
    instrumentals."""

    pairs: tuple[CandidatePair, ...]
    unmatched: tuple[UnmatchedTrack, ...]

    @property
    def candidates(self) -> tuple[CandidatePair, ...]:
        """Pairs that passed every filter (``reason is None``)."""
        return tuple(p for p in self.pairs if p.reason is None)

    @property
    def rejected(self) -> tuple[CandidatePair, ...]:
        """Pairs dropped by a filter, each with its reason code."""
        return tuple(p for p in self.pairs if p.reason is not None)


@dataclass(frozen=True)
class _Parsed:
    track: TrackRef
    title: ParsedTitle
    artist: str


def duration_reason(
    original: TrackRef, instrumental: TrackRef, max_diff_s: float, max_s: float
) -> tuple[str | None, str | None]:
    """The duration filter's (reason, detail) for one pair, or ``(None, None)`` when it passes."""
    for role, track in (("original", original), ("instrumental", instrumental)):
        if track.duration_s is not None and track.duration_s > max_s:
            return Reason.TOO_LONG, f"{role} is {track.duration_s:.1f} s > {max_s:g} s"
    if original.duration_s is not None and instrumental.duration_s is not None:
        diff = abs(original.duration_s - instrumental.duration_s)
        if diff > max_diff_s:
            return Reason.DURATION_MISMATCH, f"durations differ by {diff:.1f} s > {max_diff_s:g} s"
    return None, None


def _artist_blocks(
    inst_artists: list[str], orig_artists: list[str], min_artist_score: float
) -> dict[int, list[tuple[int, float]]]:
    """For each instrumental artist index, the original artist indices it matches and the score."""
    blocks: dict[int, list[tuple[int, float]]] = defaultdict(list)
    orig_named = [i for i, a in enumerate(orig_artists) if a]
    orig_blank = [i for i, a in enumerate(orig_artists) if not a]
    named_choices = [orig_artists[i] for i in orig_named]
    inst_named = [i for i, a in enumerate(inst_artists) if a]
    for i, artist in enumerate(inst_artists):
        if not artist:
            blocks[i].extend((j, 100.0) for j in orig_blank)
    if not named_choices:
        return blocks
    for start in range(0, len(inst_named), _ARTIST_CHUNK):
        rows = inst_named[start : start + _ARTIST_CHUNK]
        scores = process.cdist(
            [inst_artists[i] for i in rows],
            named_choices,
            scorer=fuzz.token_sort_ratio,
            score_cutoff=min_artist_score,
            dtype=np.uint8,
        )
        for r, c in zip(*np.nonzero(scores), strict=True):
            blocks[rows[r]].append((orig_named[c], float(scores[r, c])))
    return blocks


def match_titles(
    tracks: Iterable[TrackRef],
    *,
    max_duration_diff_s: float = 5.0,
    max_duration_s: float = 300.0,
    min_title_score: float = 90.0,
    min_artist_score: float = 90.0,
    tie_margin: float = 0.0,
) -> MatchReport:
    """Propose (original, instrumental) pairs among ``tracks`` by artist and title.

    ``min_title_score`` and ``min_artist_score`` are rapidfuzz scores (0–100) on normalised text;
    ``tie_margin`` (0–1) keeps originals scoring within that much of an instrumental's best.
    Duration limits default to the catalog settings' defaults; pass ``Settings`` values in.
    Returns every candidate (with ``reason`` set when a duration filter rejected it) and every
    instrumental without an original (``no_counterpart``).
    """
    parsed = [
        _Parsed(t, parse_title(t.title, t.version), normalize_artist(t.artist)) for t in tracks
    ]
    instrumentals = [p for p in parsed if p.title.is_instrumental]
    originals = [p for p in parsed if not p.title.is_instrumental and p.title.base]

    inst_by_artist: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(instrumentals):
        inst_by_artist[p.artist].append(i)
    orig_by_artist: dict[str, list[int]] = defaultdict(list)
    for j, p in enumerate(originals):
        orig_by_artist[p.artist].append(j)
    inst_artists = list(inst_by_artist)
    orig_artists = list(orig_by_artist)
    blocks = _artist_blocks(inst_artists, orig_artists, min_artist_score)

    version_ids: dict[tuple[str, ...], int] = {}
    orig_versions = np.array(
        [version_ids.setdefault(p.title.version_key, len(version_ids)) for p in originals],
        dtype=np.int64,
    )
    found: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for a, artist in enumerate(inst_artists):
        matched = blocks.get(a, [])
        if not matched:
            continue
        cols = np.concatenate([orig_by_artist[orig_artists[j]] for j, _ in matched])
        artist_score = np.concatenate(
            [np.full(len(orig_by_artist[orig_artists[j]]), s) for j, s in matched]
        )
        rows = inst_by_artist[artist]
        titles = process.cdist(
            [instrumentals[i].title.base for i in rows],
            [originals[j].title.base for j in cols],
            scorer=fuzz.ratio,
            score_cutoff=min_title_score,
            dtype=np.float32,
        )
        row_versions = np.array(
            [version_ids.get(instrumentals[i].title.version_key, -1) for i in rows]
        )
        titles[row_versions[:, None] != orig_versions[cols][None, :]] = 0.0
        for r, c in zip(*np.nonzero(titles), strict=True):
            inst, orig = instrumentals[rows[r]], originals[cols[c]]
            if not inst.title.base or inst.title.numbers != orig.title.numbers:
                continue
            score = float(titles[r, c]) / 100.0 * float(artist_score[c]) / 100.0
            found[rows[r]].append((int(cols[c]), score))

    pairs: list[CandidatePair] = []
    unmatched: list[UnmatchedTrack] = []
    for i, inst in enumerate(instrumentals):
        candidates = found.get(i)
        if not candidates:
            detail = "no title" if not inst.title.base else f"no original for '{inst.title.base}'"
            unmatched.append(UnmatchedTrack(inst.track.id, Reason.NO_COUNTERPART, detail))
            continue
        judged = [
            (
                j,
                score,
                *duration_reason(
                    originals[j].track, inst.track, max_duration_diff_s, max_duration_s
                ),
            )
            for j, score in candidates
        ]
        passing = [c for c in judged if c[2] is None]
        pool = passing or judged
        best = max(score for _, score, _, _ in pool)
        for j, score, reason, detail in sorted(pool, key=lambda c: -c[1]):
            if score >= best - tie_margin:
                pairs.append(
                    CandidatePair(
                        original_id=originals[j].track.id,
                        instrumental_id=inst.track.id,
                        score=round(score, 4),
                        source="title",
                        reason=reason,
                        detail=detail,
                    )
                )
    return MatchReport(tuple(pairs), tuple(unmatched))
