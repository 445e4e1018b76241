"""The mine flow hands files and pairs to its workers in batches of about ten minutes of audio."""

from __future__ import annotations

from vocalmine.flows.mine_tasks import FINGERPRINT_BATCH_S, PAIR_BATCH_S, batches


def _files(n: int) -> list[tuple[str, str]]:
    return [(f"/music/{i}.flac", f"hash{i}") for i in range(n)]


def test_every_item_is_handed_out_once_in_order() -> None:
    files = _files(50)
    assert [f for batch in batches(files, [30.0] * 50, FINGERPRINT_BATCH_S) for f in batch] == files


def test_songs_go_two_or_three_per_task_and_short_clips_share_one() -> None:
    songs = batches(_files(90), [210.0] * 90, PAIR_BATCH_S)
    assert {len(b) for b in songs} == {3}
    clips = batches(_files(1000), [7.0] * 1000, FINGERPRINT_BATCH_S)
    assert max(len(b) for b in clips) * 7.0 <= FINGERPRINT_BATCH_S + 7.0
    assert len(clips) < 20


def test_a_small_library_still_spreads_over_sixteen_tasks() -> None:
    assert len(batches(_files(32), [7.0] * 32, FINGERPRINT_BATCH_S)) == 16
    assert len(batches(_files(6), [240.0] * 6, PAIR_BATCH_S)) == 6
    assert batches([], [], PAIR_BATCH_S) == []
