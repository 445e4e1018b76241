"""The mine flow fingerprints short files in batches and long songs one per task."""

from __future__ import annotations

from flows.mine import FINGERPRINT_BATCH_S, fingerprint_batches


def _files(n: int) -> list[tuple[str, str]]:
    return [(f"/music/{i}.flac", f"hash{i}") for i in range(n)]


def test_every_file_is_fingerprinted_once_in_order() -> None:
    files = _files(50)
    batches = fingerprint_batches(files, [30.0] * 50)
    assert [f for batch in batches for f in batch] == files


def test_long_songs_get_a_task_each_and_short_clips_share_one() -> None:
    assert all(len(b) == 1 for b in fingerprint_batches(_files(40), [210.0] * 40))
    clips = fingerprint_batches(_files(400), [7.0] * 400)
    assert max(len(b) for b in clips) * 7.0 <= FINGERPRINT_BATCH_S + 7.0
    assert len(clips) < 40


def test_a_small_library_still_spreads_over_sixteen_tasks() -> None:
    assert len(fingerprint_batches(_files(32), [7.0] * 32)) == 16
    assert fingerprint_batches([], []) == []
