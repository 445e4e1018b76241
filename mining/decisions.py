"""Every proposed pair decided with what the catalog knows: titles and tags, and copy history.

Title matching and fingerprint discovery only *propose* (original, instrumental) pairs. Before a
pair goes to alignment and derivation (where :mod:`mining.roles` checks the audio), these rules
apply to every proposal, however it was found:

1. **Titles and tags** (:func:`title_checks`). Each side's title and version tag are parsed
   (:func:`mining.titles.parse_title`); the comment tag is read for a cappella and instrumental
   words only (free-text comments say "live from …" or "cover art by …" too often for the
   other version words to count there).

   * a side that says it is an a cappella / vocals only is never part of a pair
     (``a_cappella``): its "vocals" would be the accompaniment;
   * sides whose other-version words differ (a live, remix, cover, acoustic, … on one side only)
     are different audio (``other_version``); equal ones pass (a remix and the remix's
     instrumental are a true pair);
   * a proposed original whose title says *instrumental* while the proposed instrumental's does
     not contradicts the orientation, and two instrumentals are no pair (``role_mismatch``).

2. **Copy history** (:class:`CopyGroups`). Tracks known to be one recording — equal content
   hashes, near-total fingerprint agreement (:func:`mining.discovery.find_duplicates`), or a
   pair already judged ``same_audio`` in this or an earlier run — form a copy group. Two sides
   in one group are ``same_audio``. A group contributes one original (and one instrumental): of
   all proposals between the same two groups one is kept — already mined first, then accepted,
   then found by title, then the strongest fingerprint match — and the others are
   ``duplicate``, naming the group and the pair kept (:func:`keep_one_per_group`).

3. **A track in both roles** (:func:`conflicting_roles`): when X is proposed as the
   instrumental of A *and* as the original of B while A and B are themselves proposed as a pair,
   X is a copy of A or of B (the mix re-saved under an instrumental's title, say), so neither
   pair with X stands: both are ``duplicate`` and (A, B) decides alone.

Hand-written: these are the project's own decision rules over catalog facts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from vocalmine.core.reasons import Reason
from vocalmine.mining.titles import ParsedTitle, parse_title


@dataclass(frozen=True)
class TrackFacts:
    """What the decisions read of a catalog track."""

    id: int
    path: str
    title: str | None = None
    version: str | None = None
    comment: str | None = None


@dataclass(frozen=True)
class TitleFacts:
    """A track's title as the decisions see it."""

    base: str
    instrumental: str | None
    a_cappella: bool
    other_versions: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        """Plain values for the evidence trail."""
        return {
            "base": self.base,
            "instrumental_marker": self.instrumental,
            "a_cappella": self.a_cappella,
            "other_versions": list(self.other_versions),
        }


def title_facts(track: TrackFacts) -> TitleFacts:
    """Parse title, version tag and (for a cappella / instrumental words only) the comment."""
    parsed: ParsedTitle = parse_title(track.title, track.version)
    marker = parsed.marker
    a_cappella = "a cappella" in parsed.other_versions
    if track.comment:
        said = parse_title("-", track.comment)
        marker = marker or said.marker
        a_cappella = a_cappella or "a cappella" in said.other_versions
    others = tuple(v for v in parsed.other_versions if v != "a cappella")
    return TitleFacts(parsed.base, marker, a_cappella, others)


@dataclass(frozen=True)
class Verdict:
    """A decision's outcome: ``reason`` (None: passes) with a one-line ``detail``."""

    reason: str | None
    detail: str = ""
    checks: list[dict[str, object]] = field(default_factory=list)


def title_checks(original: TrackFacts, instrumental: TrackFacts) -> Verdict:
    """Rule 1 of the module doc for one proposed (original, instrumental) pair."""
    o, i = title_facts(original), title_facts(instrumental)
    checks: list[dict[str, object]] = [
        {"check": "original_title", **o.as_dict()},
        {"check": "instrumental_title", **i.as_dict()},
    ]
    for role, facts, track in (("original", o, original), ("instrumental", i, instrumental)):
        if facts.a_cappella:
            return Verdict(
                Reason.A_CAPPELLA,
                f"the {role} {track.path} is an a cappella version (title or tags say so)",
                checks,
            )
    if o.other_versions != i.other_versions:
        which = ", ".join(sorted(set(o.other_versions) ^ set(i.other_versions)))
        return Verdict(
            Reason.OTHER_VERSION,
            f"different versions: {which} on one side only "
            f"(original {list(o.other_versions)}, instrumental {list(i.other_versions)})",
            checks,
        )
    if o.instrumental and i.instrumental:
        return Verdict(
            Reason.ROLE_MISMATCH,
            f"titles say both sides are instrumentals ('{o.instrumental}')",
            checks,
        )
    if o.instrumental:
        return Verdict(
            Reason.ROLE_MISMATCH,
            f"the proposed original {original.path} is titled as an instrumental "
            f"('{o.instrumental}') and the proposed instrumental is not",
            checks,
        )
    return Verdict(None, "", checks)


class CopyGroups:
    """Tracks known to be one recording, closed transitively (union-find)."""

    def __init__(self) -> None:
        self._parent: dict[int, int] = {}
        self._why: dict[frozenset[int], str] = {}

    def root(self, track_id: int) -> int:
        """The group's lowest id (the track itself when it is in no group)."""
        while self._parent.get(track_id, track_id) != track_id:
            track_id = self._parent[track_id]
        return track_id

    def join(self, a: int, b: int, why: str) -> None:
        """Record that ``a`` and ``b`` are copies of one recording, and the evidence."""
        ra, rb = self.root(a), self.root(b)
        self._why.setdefault(frozenset((a, b)), why)
        if ra != rb:
            self._parent[max(ra, rb)] = min(ra, rb)

    def members(self, track_id: int) -> list[int]:
        """Every track of ``track_id``'s group, sorted (itself alone when in none)."""
        root = self.root(track_id)
        ids = {root, track_id} | {t for t in self._parent if self.root(t) == root}
        return sorted(ids)

    def describe(self, track_id: int, paths: Mapping[int, str]) -> dict[str, object] | None:
        """The group of ``track_id`` for the evidence trail, or None when it is alone."""
        members = self.members(track_id)
        if len(members) < 2:
            return None
        evidence = [why for pair, why in self._why.items() if set(pair) <= set(members) and why]
        return {
            "members": [paths.get(m, str(m)) for m in members],
            "evidence": sorted(set(evidence)),
        }


@dataclass(frozen=True)
class Proposal:
    """A proposed pair for :func:`keep_one_per_group`: its status so far, source, strength."""

    pair_id: int
    original_id: int
    instrumental_id: int
    status: str
    source: str
    fp_ratio: float | None


def _preference(p: Proposal) -> tuple[int, int, float, int]:
    return (
        {"mined": 0, "accepted": 1}.get(p.status, 2),
        0 if "title" in p.source else 1,
        -(p.fp_ratio or 0.0),
        p.pair_id,
    )


def keep_one_per_group(
    proposals: Iterable[Proposal], groups: CopyGroups, paths: Mapping[int, str]
) -> dict[int, Verdict]:
    """Rule 2 of the module doc: verdicts for the proposals that must go (by pair id)."""
    out: dict[int, Verdict] = {}
    by_key: dict[tuple[int, int], list[Proposal]] = {}
    for p in proposals:
        ro, ri = groups.root(p.original_id), groups.root(p.instrumental_id)
        if ro == ri:
            out[p.pair_id] = Verdict(
                Reason.SAME_AUDIO,
                f"{paths.get(p.original_id)} and {paths.get(p.instrumental_id)} are copies of "
                "one recording (same copy group)",
            )
            continue
        by_key.setdefault((ro, ri), []).append(p)
    for group in by_key.values():
        if len(group) < 2:
            continue
        kept, *others = sorted(group, key=_preference)
        for p in others:
            out[p.pair_id] = Verdict(
                Reason.DUPLICATE,
                f"the same recordings as pair {kept.pair_id} "
                f"({paths.get(kept.original_id)} + {paths.get(kept.instrumental_id)}): "
                "a copy group contributes one original and one instrumental",
            )
    return out


def conflicting_roles(
    proposals: Iterable[Proposal], paths: Mapping[int, str]
) -> dict[int, Verdict]:
    """Rule 3 of the module doc: verdicts for pairs whose track is both a mix and an
    instrumental inside a triangle of proposals (by pair id)."""
    props = list(proposals)
    as_instrumental: dict[int, list[Proposal]] = {}
    as_original: dict[int, list[Proposal]] = {}
    for p in props:
        as_instrumental.setdefault(p.instrumental_id, []).append(p)
        as_original.setdefault(p.original_id, []).append(p)
    linked = {frozenset((p.original_id, p.instrumental_id)) for p in props}
    out: dict[int, Verdict] = {}
    for x, upper in as_instrumental.items():
        for a_pair in upper:
            for b_pair in as_original.get(x, []):
                a, b = a_pair.original_id, b_pair.instrumental_id
                if a == b or frozenset((a, b)) not in linked:
                    continue
                detail = (
                    f"{paths.get(x)} is proposed as the instrumental of {paths.get(a)} and as "
                    f"the original of {paths.get(b)}, which are a pair themselves: it is a copy "
                    "of one of them"
                )
                out[a_pair.pair_id] = Verdict(Reason.DUPLICATE, detail)
                out[b_pair.pair_id] = Verdict(Reason.DUPLICATE, detail)
    return out
