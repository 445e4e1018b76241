"""The mining flow's decision rules over catalog facts: the stored sweep checks named by track,
what a fingerprint verification or discovery decides about a pair, copy groups, the title / copy /
role decisions over every live pair, and which pairs a (resumed) run still has to process.

Pure functions over plain data (:class:`PairFacts`, :class:`mining.decisions.TrackFacts`, the
fingerprint module's verdicts): they return decisions with their reason codes and evidence, and
:mod:`flows.mine` reads and writes the catalog around them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from vocalmine.core.reasons import Reason
from vocalmine.mining.decisions import (
    CopyGroups,
    Proposal,
    TrackFacts,
    Verdict,
    conflicting_roles,
    keep_one_per_group,
    title_checks,
)
from vocalmine.mining.discovery import DiscoveredPair, Duplicate
from vocalmine.mining.fingerprint_index import PairCheck
from vocalmine.mining.fingerprint_match import MatchResult
from vocalmine.mining.fingerprint_match import Verdict as FingerprintVerdict
from vocalmine.mining.matching import TrackRef, duration_reason

#: Pair statuses whose pairs take part in the decisions (mined ones are kept, never rejected).
LIVE = ("accepted", "mined")


@dataclass(frozen=True)
class PairFacts:
    """What the rules read of a catalog pair (detached from any session)."""

    id: int
    original_id: int
    instrumental_id: int
    status: str
    source: str | None = None
    fp_ratio: float | None = None
    reason: str | None = None
    offset_s: float | None = None


class PairLike(Protocol):
    """Anything with a catalog pair's attributes (the ORM row, :class:`PairFacts`)."""

    id: int
    original_id: int
    instrumental_id: int
    status: str
    source: str | None
    fp_ratio: float | None
    reason: str | None
    offset_s: float | None


def pair_facts(pair: PairLike) -> PairFacts:
    """:class:`PairFacts` of a catalog row."""
    return PairFacts(
        pair.id,
        pair.original_id,
        pair.instrumental_id,
        pair.status,
        pair.source,
        pair.fp_ratio,
        pair.reason,
        pair.offset_s,
    )


@dataclass(frozen=True)
class TrackRejection:
    """A track that takes part in no pair, and why."""

    track_id: int
    reason: str
    detail: str
    stage: str


@dataclass(frozen=True)
class PairDecision:
    """What to record about one pair: accept it or reject it (``reason``, ``detail``), the
    measured ``numbers`` stored on the pair, and evidence sections for its trail."""

    pair_id: int
    accepted: bool
    reason: str | None = None
    detail: str = ""
    stage: str = ""
    suspect: str | None = None
    numbers: dict[str, Any] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)


def checks_by_track(
    rows: Iterable[tuple[str, str, dict[str, Any], dict[str, Any]]],
    tracks_by_content: Mapping[str, list[int]],
) -> list[PairCheck]:
    """The stored sweep checks (content a, content b, a in b, b in a) as checks between
    tracks: one per pair of tracks holding the two recordings."""
    out = []
    for a, b, a_in_b, b_in_a in rows:
        check = PairCheck(0, 1, MatchResult(**a_in_b), MatchResult(**b_in_a))
        for track_a in tracks_by_content.get(a, []):
            for track_b in tracks_by_content.get(b, []):
                out.append(check.renamed(track_a, track_b))
    return sorted(out, key=lambda c: (c.a, c.b))


def duplicate_rejections(
    duplicates: Iterable[Duplicate], paths: Mapping[int, str]
) -> list[TrackRejection]:
    """One ``duplicate`` rejection per track that is a copy of another."""
    return [
        TrackRejection(
            dup.track_id,
            Reason.DUPLICATE,
            f"{paths[dup.track_id]}: copy of {paths[dup.duplicate_of]} "
            f"({dup.evidence}, agreement {dup.ratio:.2f})",
            "fingerprint",
        )
        for dup in duplicates
    ]


def verification_decision(pair_id: int, verdict: FingerprintVerdict) -> PairDecision:
    """Accept or reject a title candidate by its fingerprint verification."""
    numbers = {
        "fp_matches": verdict.n_matches,
        "fp_ratio": verdict.ratio,
        "offset_s": verdict.offset_s,
    }
    evidence = {
        "fingerprints": {
            "votes": verdict.n_matches,
            "ratio": round(verdict.ratio, 4),
            "coverage": round(verdict.coverage, 4),
            "offset_s": round(verdict.offset_s, 4),
            "suspect": verdict.suspect,
        }
    }
    if verdict.accepted:
        return PairDecision(
            pair_id, True, suspect=verdict.suspect, numbers=numbers, evidence=evidence
        )
    detail = (
        f"{verdict.n_matches} hashes agree, ratio {verdict.ratio:.2f}, "
        f"coverage {verdict.coverage:.2f}"
    )
    return PairDecision(
        pair_id,
        False,
        verdict.reason or Reason.FINGERPRINT_MISMATCH,
        detail,
        "fingerprint",
        numbers=numbers,
        evidence=evidence,
    )


@dataclass(frozen=True)
class OrientedPair:
    """A discovered pair in the order audio (or the fingerprint rule) decided."""

    original_id: int
    instrumental_id: int
    offset_s: float
    found: dict[str, Any]
    orientation: dict[str, Any]


def orient_discovery(
    disc: DiscoveredPair, audio_says: bool | None, paths: Mapping[int, str]
) -> OrientedPair:
    """Put a discovered pair the right way round: ``audio_says`` is True when the audio calls
    the discovery's original the mix, False when it calls it the instrumental, None when it
    could not tell (the fingerprint rule's order stays)."""
    original, instrumental, offset = disc.original_id, disc.instrumental_id, disc.offset_s
    if audio_says is False:
        original, instrumental, offset = instrumental, original, -offset
    return OrientedPair(
        original,
        instrumental,
        offset,
        found={
            "votes": disc.n_matches,
            "ratio": round(disc.ratio, 4),
            "reverse_ratio": round(disc.reverse_ratio, 4),
            "offset_s": round(offset, 4),
            "suspect": disc.suspect,
        },
        orientation={
            "rule": "audio (spectral excess after alignment)"
            if audio_says is not None
            else "fingerprint order (audio undecidable)",
            "original": paths[original],
        },
    )


def discovery_decision(
    pair_id: int,
    status: str,
    disc: DiscoveredPair,
    oriented: OrientedPair,
    original: TrackRef,
    instrumental: TrackRef,
    max_duration_diff_s: float,
    max_duration_s: float,
) -> PairDecision | None:
    """A discovered pair is rejected by the duration filter, accepted while it is a candidate,
    and otherwise left as earlier stages decided (None)."""
    numbers = {"fp_matches": disc.n_matches, "fp_ratio": disc.ratio, "offset_s": oriented.offset_s}
    reason, detail = duration_reason(original, instrumental, max_duration_diff_s, max_duration_s)
    if reason:
        return PairDecision(pair_id, False, reason, detail or "", "match", numbers=numbers)
    if status == "candidate":
        return PairDecision(pair_id, True, suspect=disc.suspect, numbers=numbers)
    return None


def copy_groups(
    duplicates: Iterable[Duplicate], pairs: Iterable[PairLike], track_ids: Collection[int]
) -> CopyGroups:
    """Copy groups from this run's duplicates and every pair ever judged ``same_audio``."""
    groups = CopyGroups()
    for dup in duplicates:
        groups.join(dup.track_id, dup.duplicate_of, f"{dup.evidence} agreement {dup.ratio:.2f}")
    for pair in pairs:
        # A rejection, not an accepted pair whose reason holds a same_audio *suspect*.
        rejected = pair.status == "rejected" and pair.reason == Reason.SAME_AUDIO
        if rejected and pair.original_id in track_ids:
            groups.join(pair.original_id, pair.instrumental_id, "judged same_audio")
    return groups


@dataclass(frozen=True)
class Decisions:
    """The outcome of :func:`decide`: evidence for every live pair, and the rejections."""

    evidence: dict[int, dict[str, Any]]
    rejected: dict[int, Verdict]


def live_pairs(pairs: Iterable[PairLike], track_ids: Collection[int]) -> list[PairFacts]:
    """Accepted and mined pairs whose two tracks are in the library."""
    return [
        pair_facts(p)
        for p in pairs
        if p.status in LIVE and p.original_id in track_ids and p.instrumental_id in track_ids
    ]


def decide(
    live: Iterable[PairFacts], facts: Mapping[int, TrackFacts], groups: CopyGroups
) -> Decisions:
    """Titles and tags, copy groups and roles over every live pair (:mod:`mining.decisions`).

    Only accepted pairs are rejected; mined ones stay (their evidence is still recorded).
    """
    live = list(live)
    paths = {i: f.path for i, f in facts.items()}
    rejected: dict[int, Verdict] = {}
    titles: dict[int, list[dict[str, object]]] = {}
    for pair in live:
        verdict = title_checks(facts[pair.original_id], facts[pair.instrumental_id])
        titles[pair.id] = verdict.checks
        if verdict.reason and pair.status == "accepted":
            rejected[pair.id] = verdict
    proposals = [
        Proposal(p.id, p.original_id, p.instrumental_id, p.status, p.source, p.fp_ratio)
        for p in live
        if p.id not in rejected
    ]
    for pair_id, verdict in {
        **conflicting_roles(proposals, paths),
        **keep_one_per_group(proposals, groups, paths),
    }.items():
        rejected.setdefault(pair_id, verdict)
    evidence: dict[int, dict[str, Any]] = {}
    for pair in live:
        group = {
            role: groups.describe(track_id, paths)
            for role, track_id in (
                ("original", pair.original_id),
                ("instrumental", pair.instrumental_id),
            )
        }
        evidence[pair.id] = {
            "titles": titles[pair.id],
            "copy_groups": {k: v for k, v in group.items() if v},
        }
    accepted = {p.id for p in live if p.status == "accepted"}
    return Decisions(evidence, {i: v for i, v in rejected.items() if i in accepted})


def pairs_to_process(
    accepted: Iterable[PairLike], done: Collection[int], track_ids: Collection[int]
) -> list[PairLike]:
    """The accepted pairs a run (a resumed one too) still processes: those not already in the
    shards (the manifest lists what earlier runs finished) whose two tracks are in the library."""
    return [
        p
        for p in accepted
        if p.id not in done and p.original_id in track_ids and p.instrumental_id in track_ids
    ]
