"""What `vocalmine pairs --why` reports about a pair follows it through its life."""

from __future__ import annotations

from pathlib import Path

from vocalmine.storage import mining_store as store
from vocalmine.storage.catalog import Catalog, Track, open_catalog


def _catalog_with_pair(tmp_path: Path) -> tuple[Catalog, int, int]:
    catalog = open_catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    with catalog.session() as session:
        for name in ("Song.flac", "Song (Instrumental).flac"):
            session.add(Track(path=str(tmp_path / name), size=1, mtime=0.0, content_hash=name))
    run_id = store.start_run(catalog, str(tmp_path), None)
    original, instrumental = (t.id for t in store.library_tracks(catalog, str(tmp_path)))
    pair_id = store.upsert_pair(
        catalog, original, instrumental, source="title", score=95.0, run_id=run_id
    )
    return catalog, pair_id, run_id


def test_a_suspect_is_shown_until_the_derivation_settles_it(tmp_path: Path) -> None:
    catalog, pair_id, run_id = _catalog_with_pair(tmp_path)
    store.accept_pair(catalog, pair_id, suspect="same_audio", fp_ratio=0.66)
    [pending] = store.explain(catalog, str(pair_id))
    assert (pending["status"], pending["suspect"], pending["reason"]) == (
        "accepted",
        "same_audio",
        None,
    )
    assert [p.reason for p in store.pairs_with_status(catalog, "accepted")] == ["same_audio"]

    store.add_evidence(catalog, pair_id, shards={"quality": 0.98, "segments": 3})
    store.mark_mined(catalog, [pair_id])
    [mined] = store.explain(catalog, str(pair_id))
    assert (mined["status"], mined["suspect"], mined["reason"]) == ("mined", None, None)

    store.reject_pair(catalog, pair_id, "same_audio", "no vocals left", "process", run_id)
    [rejected] = store.explain(catalog, str(pair_id))
    assert (rejected["status"], rejected["reason"], rejected["detail"]) == (
        "rejected",
        "same_audio",
        "no vocals left",
    )
    catalog.dispose()


def test_a_pair_whose_segments_landed_before_the_catalog_heard_is_mined_with_its_measures(
    tmp_path: Path,
) -> None:
    """A kill between the shard manifest's commit and the catalog update: the next run's
    reconciliation marks the pair mined with the offset, segments and split it was sharded with."""
    catalog, pair_id, _ = _catalog_with_pair(tmp_path)
    store.accept_pair(catalog, pair_id, offset_s=0.5)
    measured = {"offset_samples": -8708, "offset_s": -0.197, "segments": 2, "split": "train"}
    store.add_evidence(catalog, pair_id, shards=measured)
    store.reconcile_mined(catalog, set())
    [waiting] = store.all_pairs(catalog)
    assert (waiting.status, waiting.offset_s, waiting.segments) == ("accepted", 0.5, None)

    store.reconcile_mined(catalog, {pair_id})
    [mined] = store.all_pairs(catalog)
    assert mined.status == "mined"
    assert {k: getattr(mined, k) for k in measured} == measured
    catalog.dispose()


def test_evidence_restated_on_a_rerun_is_not_written_again(tmp_path: Path) -> None:
    """Stages restate every pair's evidence each run; only what changed costs a write."""
    catalog, pair_id, _ = _catalog_with_pair(tmp_path)
    store.add_found(catalog, pair_id, "title", {"score": 95.0})
    sections = {"titles": [{"check": "markers", "passed": True}], "copy_groups": {}}
    assert store.add_evidence_many(catalog, {pair_id: sections}) == 1
    assert store.add_evidence_many(catalog, {pair_id: sections}) == 0
    assert store.add_found_many(catalog, "title", {pair_id: {"score": 95.0}}) == 0
    assert store.add_found_many(catalog, "fingerprint", {pair_id: {"votes": 40}}) == 1
    changed = {"copy_groups": {"original": "group of 2: Song.flac, Song copy.flac"}}
    assert store.add_evidence_many(catalog, {pair_id: changed}) == 1
    [row] = store.explain(catalog, str(pair_id))
    assert row["evidence"]["found"] == {"title": {"score": 95.0}, "fingerprint": {"votes": 40}}
    assert row["evidence"]["titles"] == sections["titles"]
    assert row["evidence"]["copy_groups"] == changed["copy_groups"]
    catalog.dispose()
