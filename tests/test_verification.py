"""The mining flow's pure decision rules (mining.verification): stored sweep checks, fingerprint
verdicts and discoveries as pair decisions, copy groups, the title / copy / role decisions over
live pairs, and which pairs a resumed run still processes."""

from __future__ import annotations

from vocalmine.core.reasons import Reason
from vocalmine.mining.decisions import TrackFacts
from vocalmine.mining.discovery import DiscoveredPair, Duplicate
from vocalmine.mining.fingerprint_match import Verdict
from vocalmine.mining.matching import TrackRef
from vocalmine.mining.verification import (
    PairFacts,
    checks_by_track,
    copy_groups,
    decide,
    discovery_decision,
    duplicate_rejections,
    live_pairs,
    orient_discovery,
    pairs_to_process,
    verification_decision,
)

PATHS = {1: "/lib/Song.flac", 2: "/lib/Song (Instrumental).flac", 3: "/lib/Song copy.flac"}


def _result(ratio: float) -> dict:
    return {
        "n_matches": 100,
        "ratio": ratio,
        "offset_s": 0.5,
        "offset_frames": 43.0,
        "sharpness": 9.0,
        "coverage": 1.0,
        "n_query": 400,
        "n_overlap": 380,
    }


def test_a_stored_check_between_recordings_names_every_pair_of_tracks_holding_them() -> None:
    """Recording x (tracks 5 and 9) was checked against recording y (track 7): both tracks of x
    get the check, each direction staying with its recording."""
    rows = [("x", "y", _result(0.3), _result(0.1))]
    checks = checks_by_track(rows, {"x": [5, 9], "y": [7]})
    assert [(c.a, c.b) for c in checks] == [(5, 7), (7, 9)]
    assert (checks[0].a_in_b.ratio, checks[0].b_in_a.ratio) == (0.3, 0.1)
    assert (checks[1].a_in_b.ratio, checks[1].b_in_a.ratio) == (0.1, 0.3)
    assert checks_by_track(rows, {"x": [5]}) == []


def test_duplicates_become_track_rejections_naming_the_copy() -> None:
    (rejection,) = duplicate_rejections([Duplicate(3, 1, "fingerprint", 0.98)], PATHS)
    assert (rejection.track_id, rejection.reason, rejection.stage) == (
        3,
        Reason.DUPLICATE,
        "fingerprint",
    )
    assert rejection.detail == f"{PATHS[3]}: copy of {PATHS[1]} (fingerprint, agreement 0.98)"


def test_a_fingerprint_verdict_accepts_or_rejects_with_its_numbers() -> None:
    good = Verdict(True, None, 0.25, 120, 0.6, 0.9, 5.0, suspect=Reason.SAME_AUDIO)
    accepted = verification_decision(7, good)
    assert accepted.accepted and accepted.suspect == Reason.SAME_AUDIO
    assert accepted.numbers == {"fp_matches": 120, "fp_ratio": 0.6, "offset_s": 0.25}
    assert accepted.evidence["fingerprints"]["coverage"] == 0.9
    bad = verification_decision(7, Verdict(False, None, 0.0, 3, 0.01, 0.05, 1.0))
    assert not bad.accepted and bad.reason == Reason.FINGERPRINT_MISMATCH
    assert bad.stage == "fingerprint"
    assert bad.detail == "3 hashes agree, ratio 0.01, coverage 0.05"


def test_a_discovery_is_turned_round_when_the_audio_says_so() -> None:
    disc = DiscoveredPair(1, 2, 80, 0.5, 0.2, 1.5, "unknown")
    kept = orient_discovery(disc, True, PATHS)
    assert (kept.original_id, kept.instrumental_id, kept.offset_s) == (1, 2, 1.5)
    assert kept.orientation == {
        "rule": "audio (spectral excess after alignment)",
        "original": PATHS[1],
    }
    flipped = orient_discovery(disc, False, PATHS)
    assert (flipped.original_id, flipped.instrumental_id, flipped.offset_s) == (2, 1, -1.5)
    assert flipped.found["offset_s"] == -1.5
    unknown = orient_discovery(disc, None, PATHS)
    assert unknown.orientation["rule"] == "fingerprint order (audio undecidable)"


def test_a_discovery_is_accepted_only_as_a_candidate_and_within_the_durations() -> None:
    disc = DiscoveredPair(1, 2, 80, 0.5, 0.2, 1.5, "audio")
    pair = orient_discovery(disc, True, PATHS)
    short, long_ = TrackRef(1, "A", "S", duration_s=200.0), TrackRef(2, "A", "S", duration_s=260.0)
    args = (5.0, 1200.0)
    ok = discovery_decision(9, "candidate", disc, pair, short, TrackRef(2, "A", "S", 201.0), *args)
    assert ok is not None and ok.accepted and ok.numbers["offset_s"] == 1.5
    assert discovery_decision(9, "mined", disc, pair, short, short, *args) is None
    rejected = discovery_decision(9, "accepted", disc, pair, short, long_, *args)
    assert rejected is not None and not rejected.accepted
    assert (rejected.reason, rejected.stage) == (Reason.DURATION_MISMATCH, "match")


def test_copy_groups_join_duplicates_and_pairs_judged_same_audio() -> None:
    pairs = [
        PairFacts(1, 1, 2, "rejected", reason=Reason.SAME_AUDIO),
        PairFacts(2, 4, 5, "accepted", reason=Reason.SAME_AUDIO),  # only a suspect
        PairFacts(3, 8, 9, "rejected", reason=Reason.SAME_AUDIO),  # not in this library
    ]
    groups = copy_groups([Duplicate(3, 1, "content_hash", 1.0)], pairs, {1, 2, 3, 4, 5})
    assert sorted(groups.members(1)) == [1, 2, 3]
    assert groups.members(4) == [4]
    assert groups.members(8) == [8]


def test_decide_rejects_only_accepted_pairs_and_keeps_evidence_for_all() -> None:
    facts = {
        1: TrackFacts(1, PATHS[1], "Song"),
        2: TrackFacts(2, PATHS[2], "Song (Instrumental)"),
        4: TrackFacts(4, "/lib/Song (Live).flac", "Song (Live)"),
        5: TrackFacts(5, "/lib/Other (Live).flac", "Other (Live)"),
    }
    rows = [
        PairFacts(1, 1, 2, "mined", "title"),
        PairFacts(2, 4, 2, "accepted", "fingerprint", 0.4),  # a live original, studio instr.
        PairFacts(3, 5, 2, "mined", "fingerprint", 0.3),
        PairFacts(4, 1, 9, "accepted"),  # a track outside the library
        PairFacts(5, 1, 2, "rejected"),
    ]
    live = live_pairs(rows, facts)
    assert [p.id for p in live] == [1, 2, 3]
    decisions = decide(live, facts, copy_groups([], rows, facts))
    assert set(decisions.evidence) == {1, 2, 3}
    assert decisions.evidence[2]["titles"]
    assert set(decisions.rejected) == {2}
    assert decisions.rejected[2].reason == Reason.OTHER_VERSION


def test_a_resumed_run_processes_only_pairs_not_yet_in_the_shards() -> None:
    accepted = [
        PairFacts(1, 1, 2, "accepted"),
        PairFacts(2, 3, 4, "accepted"),
        PairFacts(3, 1, 9, "accepted"),
    ]
    assert [p.id for p in pairs_to_process(accepted, {1}, {1, 2, 3, 4})] == [2]
    assert [p.id for p in pairs_to_process(accepted, set(), {1, 2, 3, 4})] == [1, 2]
