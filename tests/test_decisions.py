"""Every proposed pair is decided with titles, tags and copy history, however it was found."""

from __future__ import annotations

import pytest

from vocalmine.core.reasons import Reason
from vocalmine.mining.decisions import (
    CopyGroups,
    Proposal,
    TrackFacts,
    conflicting_roles,
    keep_one_per_group,
    title_checks,
)

MIX = TrackFacts(1, "/lib/Artist/Song.flac", "Song")
INSTRUMENTAL = TrackFacts(2, "/lib/Artist/Song (Instrumental).mp3", "Song (Instrumental)")
NEUTRAL = TrackFacts(3, "/lib/Artist/Track 07.wav", "Track 07")


@pytest.mark.parametrize(
    "acappella",
    [
        TrackFacts(4, "/lib/a.flac", "Song (A Cappella)"),
        TrackFacts(4, "/lib/a.flac", "Song - Acapella"),
        TrackFacts(4, "/lib/a.flac", "Song (Vocals Only)"),
        TrackFacts(4, "/lib/a.flac", "Song", version="Acappella"),
        TrackFacts(4, "/lib/a.flac", "Track 12", comment="vocals only stem"),
        TrackFacts(4, "/lib/a.flac", "Song (Isolated Vocals)"),
        TrackFacts(4, "/lib/a.flac", "Song [Vocal Stem]"),
    ],
)
def test_an_a_cappella_by_title_or_tag_is_rejected_in_both_roles(acappella: TrackFacts) -> None:
    as_instrumental = title_checks(MIX, acappella)
    as_original = title_checks(acappella, INSTRUMENTAL)
    assert as_instrumental.reason == Reason.A_CAPPELLA
    assert as_original.reason == Reason.A_CAPPELLA
    assert "/lib/a.flac" in as_instrumental.detail


def test_a_plain_pair_passes_and_its_titles_are_evidence() -> None:
    verdict = title_checks(MIX, INSTRUMENTAL)
    assert verdict.reason is None
    assert verdict.checks[1]["instrumental_marker"] == "instrumental"
    assert title_checks(MIX, NEUTRAL).reason is None  # an oddly named instrumental


def test_a_live_or_remix_on_one_side_only_is_another_version() -> None:
    live = TrackFacts(5, "/lib/Song (Live).flac", "Song (Live)")
    assert title_checks(live, NEUTRAL).reason == Reason.OTHER_VERSION
    remix = TrackFacts(6, "/lib/Song (Club Remix).flac", "Song (Club Remix)")
    remix_inst = TrackFacts(7, "/lib/x.flac", "Song (Club Remix) [Instrumental]")
    assert title_checks(remix, remix_inst).reason is None  # a remix and its own instrumental
    assert title_checks(MIX, remix_inst).reason == Reason.OTHER_VERSION


def test_an_original_titled_as_an_instrumental_contradicts_the_orientation() -> None:
    assert title_checks(INSTRUMENTAL, NEUTRAL).reason == Reason.ROLE_MISMATCH
    other = TrackFacts(8, "/lib/Song (Karaoke Version).mp3", "Song (Karaoke Version)")
    assert title_checks(INSTRUMENTAL, other).reason == Reason.ROLE_MISMATCH


def _p(pair_id: int, o: int, i: int, status: str = "accepted", source: str = "title") -> Proposal:
    return Proposal(pair_id, o, i, status, source, 0.2)


def test_a_copy_group_contributes_one_original() -> None:
    groups = CopyGroups()
    groups.join(1, 9, "fingerprint agreement 0.97")  # 9: a re-encoded copy of the mix
    paths = {1: "mix.flac", 9: "copy.mp3", 2: "inst.mp3"}
    verdicts = keep_one_per_group(
        [_p(10, 9, 2, source="fingerprint"), _p(11, 1, 2, source="title")], groups, paths
    )
    assert set(verdicts) == {10}  # the title pair is kept, the discovered copy goes
    assert verdicts[10].reason == Reason.DUPLICATE
    assert "pair 11" in verdicts[10].detail
    assert groups.describe(9, paths) == {
        "members": ["mix.flac", "copy.mp3"],
        "evidence": ["fingerprint agreement 0.97"],
    }


def test_an_already_mined_pair_is_kept_over_a_new_copy() -> None:
    groups = CopyGroups()
    groups.join(1, 9, "judged same_audio")
    verdicts = keep_one_per_group(
        [_p(11, 9, 2, status="accepted"), _p(10, 1, 2, status="mined", source="fingerprint")],
        groups,
        {},
    )
    assert set(verdicts) == {11}


def test_two_sides_of_one_copy_group_are_the_same_audio() -> None:
    groups = CopyGroups()
    groups.join(1, 2, "content_hash")
    verdicts = keep_one_per_group([_p(10, 1, 2)], groups, {})
    assert verdicts[10].reason == Reason.SAME_AUDIO


def test_a_copy_judged_same_audio_never_becomes_an_original_of_the_instrumental() -> None:
    """Mix 1, its copy 3 titled as an instrumental (title pair 1→3), and the true instrumental 2:
    discovery proposes 3→2; the copy stands in neither role and the true pair 1→2 decides."""
    proposals = [_p(10, 1, 3), _p(11, 3, 2, source="fingerprint"), _p(12, 1, 2)]
    verdicts = conflicting_roles(proposals, {1: "mix", 2: "inst", 3: "copy"})
    assert set(verdicts) == {10, 11}
    assert all(v.reason == Reason.DUPLICATE for v in verdicts.values())
    groups = CopyGroups()
    groups.join(1, 3, "judged same_audio")  # an earlier run's verdict on 1→3
    verdicts = keep_one_per_group([_p(11, 3, 2), _p(12, 1, 2, status="mined")], groups, {})
    assert set(verdicts) == {11}
