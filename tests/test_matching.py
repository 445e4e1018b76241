"""Bulk title matching: the right (original, instrumental) pairs come out of a library full of
decoys, every candidate has a score, and every rejection has a reason."""

from __future__ import annotations

from vocalmine.mining.matching import CandidatePair, MatchReport, TrackRef, match_titles


def _library() -> list[TrackRef]:
    rows = [
        # (id, artist, title, version, duration)
        (1, "The Beatles", "Hey Jude - 2015 Remaster", None, 240.0),
        (2, "Beatles", "Hey Jude (Instrumental)", None, 241.5),
        (3, "The Beatles", "Hey Jude (Live)", None, 250.0),
        (4, "The Beatles", "Let It Be", None, 230.0),
        (5, "Beyoncé feat. Jay-Z", "Crazy in Love", None, 236.0),
        (6, "Beyonce", "Crazy In Love (Karaoke Version)", None, 235.0),
        (7, "Beyoncé", "Crazy in Love (DJ Foo Remix)", None, 200.0),
        (8, "Beyoncé", "Crazy in Love (DJ Foo Remix) [Instrumental]", None, 201.0),
        (9, "Queen", "Bohemian Rhapsody", None, 295.0),
        (10, "Queen", "Bohemian Rhapsody", "Off Vocal", 296.0),
        (11, "Someone Else", "Bohemian Rhapsody (Instrumental)", None, 295.0),
        (12, "Band", "Song Part 1", None, 180.0),
        (13, "Band", "Song Part 2 (Instrumental)", None, 180.0),
        (14, "Queen", "Bohemian Rhapsody - Backing Track", None, 295.5),
    ]
    return [TrackRef(i, a, t, v, d, f"/lib/{i}.flac") for i, a, t, v, d in rows]


def _pairs(report: MatchReport) -> set[tuple[int, int]]:
    return {(p.original_id, p.instrumental_id) for p in report.candidates}


def test_bulk_matching_picks_the_right_pairs_among_decoys() -> None:
    report = match_titles(_library())
    assert _pairs(report) == {(1, 2), (5, 6), (7, 8), (9, 10), (9, 14)}


def test_every_candidate_has_a_score_and_the_title_source() -> None:
    report = match_titles(_library())
    for pair in report.pairs:
        assert isinstance(pair, CandidatePair)
        assert 0.0 < pair.score <= 1.0
        assert pair.source == "title"
    exact = {(p.original_id, p.instrumental_id): p.score for p in report.pairs}
    assert exact[(9, 10)] == 1.0


def test_instrumentals_without_an_original_are_reported_no_counterpart() -> None:
    report = match_titles(_library())
    lone = {u.track_id: u.reason for u in report.unmatched}
    assert lone == {11: "no_counterpart", 13: "no_counterpart"}


def test_a_remix_is_never_paired_with_the_album_version() -> None:
    report = match_titles(_library())
    assert (5, 8) not in _pairs(report)
    assert (7, 6) not in _pairs(report)
    assert (3, 2) not in _pairs(report)


def test_duration_filters_give_reason_codes() -> None:
    tracks = [
        TrackRef(1, "A", "Far Apart", None, 200.0),
        TrackRef(2, "A", "Far Apart (Instrumental)", None, 207.5),
        TrackRef(3, "A", "Epic", None, 420.0),
        TrackRef(4, "A", "Epic (Instrumental)", None, 421.0),
        TrackRef(5, "A", "Close", None, 200.0),
        TrackRef(6, "A", "Close (Instrumental)", None, 204.0),
        TrackRef(7, "A", "Unknown Length", None, None),
        TrackRef(8, "A", "Unknown Length (Instrumental)", None, 100.0),
    ]
    report = match_titles(tracks, max_duration_diff_s=5.0, max_duration_s=300.0)
    reasons = {(p.original_id, p.instrumental_id): p.reason for p in report.pairs}
    assert reasons == {(1, 2): "duration_mismatch", (3, 4): "too_long", (5, 6): None, (7, 8): None}
    rejected = {(p.original_id, p.instrumental_id): p.detail for p in report.rejected}
    assert "7.5 s" in rejected[(1, 2)]
    relaxed = match_titles(tracks, max_duration_diff_s=10.0, max_duration_s=600.0)
    assert not relaxed.rejected


def test_an_original_that_passes_the_filters_beats_a_tied_one_that_does_not() -> None:
    tracks = [
        TrackRef(1, "A", "Song", None, 400.0),
        TrackRef(2, "A", "Song (Radio Edit)", None, 210.0),
        TrackRef(3, "A", "Song (Instrumental)", None, 211.0),
    ]
    report = match_titles(tracks)
    assert [(p.original_id, p.instrumental_id, p.reason) for p in report.pairs] == [(2, 3, None)]


def test_ties_are_all_kept_and_one_original_may_have_several_instrumentals() -> None:
    tracks = [
        TrackRef(1, "A", "Song", None, 200.0),
        TrackRef(2, "A", "Song", "Album copy", 200.0),
        TrackRef(3, "A", "Song (Instrumental)", None, 200.0),
        TrackRef(4, "A", "Song (Karaoke)", None, 200.0),
    ]
    report = match_titles(tracks)
    assert _pairs(report) == {(1, 3), (2, 3), (1, 4), (2, 4)}


def test_fuzzy_titles_and_artists_still_meet() -> None:
    tracks = [
        TrackRef(1, "Guns N' Roses", "Sweet Child O' Mine", None, 356.0 - 100),
        TrackRef(2, "Guns N Roses", "Sweet Child o Mine (Instrumental)", None, 256.5),
        TrackRef(3, "Sigur Rós", "Hoppípolla", None, 270.0),
        TrackRef(4, "Sigur Ros", "Hoppipola (Instrumental)", None, 270.0),
    ]
    report = match_titles(tracks)
    assert _pairs(report) == {(1, 2), (3, 4)}
    fuzzy = next(p for p in report.pairs if p.original_id == 3)
    assert 0.9 <= fuzzy.score < 1.0


def test_tracks_without_an_artist_only_meet_each_other() -> None:
    tracks = [
        TrackRef(1, None, "Song", None, 200.0),
        TrackRef(2, "", "Song (Instrumental)", None, 200.0),
        TrackRef(3, "A", "Song (Instrumental)", None, 200.0),
    ]
    report = match_titles(tracks)
    assert _pairs(report) == {(1, 2)}
    assert [u.track_id for u in report.unmatched] == [3]


def test_a_large_library_is_matched_in_bulk() -> None:
    tracks = []
    for n in range(3000):
        tracks.append(TrackRef(2 * n, f"Artist {n % 300}", f"Title number {n}", None, 200.0))
        if n % 10 == 0:
            title = f"Title number {n} (Instrumental)"
            tracks.append(TrackRef(2 * n + 1, f"Artist {n % 300}", title, None, 200.0))
    report = match_titles(tracks)
    assert _pairs(report) == {(2 * n, 2 * n + 1) for n in range(0, 3000, 10)}
