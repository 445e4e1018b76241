"""Prefect flow ``mine``: scan → match → fingerprint → verify → align → gain → derive → shard.

A thin composition: the signal processing lives in ``mining/``, the queries in
``storage/mining_store.py``, the shard format in ``storage/shard_schema.py``. Per-track
fingerprinting and per-pair processing run on a Dask task runner (a LocalCluster by default, a
scheduler address for a real cluster). Re-running is cheap and safe: fingerprints are stored once
per content hash, pairs already in the shard manifest are skipped, and pair processing is claimed in
the catalog so concurrent runs never do the same pair twice.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.futures import as_completed

from vocalmine.core.reasons import Reason
from vocalmine.core.settings import Settings, get_settings
from vocalmine.core.stft import get_preset
from vocalmine.flows.artifacts import publish_counts, publish_histogram
from vocalmine.flows.cluster import cancelled_on_exit, task_runner
from vocalmine.flows.mine_tasks import (
    FINGERPRINT_BATCH_S,
    PAIR_BATCH_S,
    PairJob,
    batches,
    fingerprint_task,
    orient_task,
    process_pairs_task,
    scan_task,
)
from vocalmine.flows.runtime import flow_run_id, keep_freed_memory
from vocalmine.mining.decisions import CopyGroups, TrackFacts, title_facts
from vocalmine.mining.discovery import discover_pairs, find_duplicates
from vocalmine.mining.fingerprint_index import FingerprintIndex, candidate_pairs
from vocalmine.mining.fingerprint_match import verify_pair
from vocalmine.mining.landmarks import Fingerprint
from vocalmine.mining.matching import TrackRef, match_titles
from vocalmine.mining.pair_pipeline import PairResult
from vocalmine.mining.verification import (
    PairDecision,
    TrackRejection,
    copy_groups,
    decide,
    discovery_decision,
    duplicate_rejections,
    live_pairs,
    orient_discovery,
    pairs_to_process,
    stale_fingerprints,
    verification_decision,
)
from vocalmine.storage import mining_store as store
from vocalmine.storage.catalog import Catalog, open_catalog
from vocalmine.storage.locks import (
    claim_pairs,
    clear_stale_claims,
    exclusive_lock,
    new_owner,
    release_pairs,
)
from vocalmine.storage.shard_schema import Segment
from vocalmine.storage.shard_writer import ShardWriter
from vocalmine.storage.splits import split_for_artist


def _ref(track: store.TrackRow) -> TrackRef:
    return TrackRef(
        track.id, track.artist, track.title, track.version, track.duration_s, track.path
    )


def match_stage(
    catalog: Catalog, tracks: list[store.TrackRow], settings: Settings, run_id: int
) -> None:
    """Title matching with duration filters: candidates and rejections into the catalog."""
    report = match_titles(
        [_ref(t) for t in tracks],
        max_duration_diff_s=settings.max_duration_diff_s,
        max_duration_s=settings.max_duration_s,
    )
    found: dict[int, dict[str, Any]] = {}
    for cand in report.pairs:
        pair_id = store.upsert_pair(
            catalog,
            cand.original_id,
            cand.instrumental_id,
            source="title",
            score=cand.score,
            run_id=run_id,
        )
        found[pair_id] = {"score": cand.score}
        if cand.reason:
            store.reject_pair(catalog, pair_id, cand.reason, cand.detail or "", "match", run_id)
    store.add_found_many(catalog, "title", found)
    orientation = {"rule": "title (the instrumental's version marker)"}
    store.add_evidence_many(catalog, {pair_id: {"orientation": orientation} for pair_id in found})
    for lone in report.unmatched:
        store.reject_track(catalog, lone.track_id, lone.reason, lone.detail or "", "match", run_id)


def fingerprint_stage(
    catalog: Catalog, tracks: list[store.TrackRow], run_id: int, max_duration_s: float
) -> dict[int, Fingerprint]:
    """Fingerprints of every track up to ``max_duration_s`` long, computed on the task runner
    once per content hash.

    Longer tracks are rejected ``too_long`` whatever they match, and decoding a multi-hour
    file whole would set the workers' peak memory, so they are not fingerprinted. A stored
    fingerprint made with other parameters (an older release) is recomputed.
    """
    logger = get_run_logger()
    tracks = [t for t in tracks if (t.duration_s or 0.0) <= max_duration_s]
    hashes = {t.content_hash for t in tracks}
    stale = stale_fingerprints(store.load_fingerprints(catalog, hashes))
    store.delete_fingerprints(catalog, stale)
    todo = store.missing_fingerprints(catalog, hashes)
    by_hash = {t.content_hash: t for t in tracks}
    ordered = sorted(todo)
    files = [(by_hash[h].path, h) for h in ordered]
    durations = [by_hash[h].duration_s for h in ordered]
    futures = [
        fingerprint_task.submit(batch) for batch in batches(files, durations, FINGERPRINT_BATCH_S)
    ]
    done = 0
    with cancelled_on_exit(futures):
        for future in as_completed(futures):
            for content_hash, data, error in future.result():
                done += 1
                if data is None:
                    for t in tracks:
                        if t.content_hash == content_hash:
                            store.reject_track(
                                catalog,
                                t.id,
                                Reason.DECODE_ERROR,
                                error or "",
                                "fingerprint",
                                run_id,
                            )
                    continue
                fp = Fingerprint.from_bytes(data)
                store.save_fingerprint(
                    catalog, content_hash, data, fp.params.sample_rate, fp.params.hop, len(fp)
                )
            logger.info("fingerprinted %d/%d new recordings", done, len(files))
    stored = store.load_fingerprints(catalog, hashes)
    decoded = {h: Fingerprint.from_bytes(d) for h, d in stored.items()}
    return {t.id: decoded[t.content_hash] for t in tracks if t.content_hash in decoded}


def _facts(track: store.TrackRow) -> TrackFacts:
    return TrackFacts(track.id, track.path, track.title, track.version, track.comment)


def _apply(catalog: Catalog, decision: PairDecision | None, run_id: int) -> None:
    """Record a pair decision of :mod:`mining.verification`: evidence, then accept or reject."""
    if decision is None:
        return
    if decision.evidence:
        store.add_evidence(catalog, decision.pair_id, **decision.evidence)
    if decision.accepted:
        store.accept_pair(catalog, decision.pair_id, suspect=decision.suspect, **decision.numbers)
    else:
        store.reject_pair(
            catalog,
            decision.pair_id,
            decision.reason or "",
            decision.detail,
            decision.stage,
            run_id,
            **decision.numbers,
        )


def _reject_tracks(catalog: Catalog, rejections: list[TrackRejection], run_id: int) -> None:
    for r in rejections:
        store.reject_track(catalog, r.track_id, r.reason, r.detail, r.stage, run_id)


def verify_stage(
    catalog: Catalog,
    tracks: dict[int, store.TrackRow],
    fps: dict[int, Fingerprint],
    settings: Settings,
    run_id: int,
) -> None:
    """Duplicates, fingerprint verification of title candidates, discovery of missed pairs, and
    the decision of every live proposal with all the evidence (:mod:`mining.verification`).

    One all-against-all sweep of the fingerprint index feeds both the duplicate search and the
    discovery; title candidates are never called duplicates (their derivation decides).
    """
    logger = get_run_logger()
    paths = {i: t.path for i, t in tracks.items()}
    index = FingerprintIndex(fps)
    candidates = candidate_pairs(index, threads=min(os.cpu_count() or 1, 8))
    known = [(p.original_id, p.instrumental_id) for p in store.all_pairs(catalog)]
    duplicates = find_duplicates(
        index,
        durations={i: t.duration_s for i, t in tracks.items() if i in fps},
        content_hashes={i: t.content_hash for i, t in tracks.items() if i in fps},
        candidates=candidates,
        known=known,
    )
    copy_of = {d.track_id: d.duplicate_of for d in duplicates}
    _reject_tracks(catalog, duplicate_rejections(duplicates, paths), run_id)
    for pair in store.pairs_with_status(catalog, "candidate"):
        original, instrumental = pair.original_id, pair.instrumental_id
        if original not in fps or instrumental not in fps:
            continue
        verdict = verify_pair(fps[original], fps[instrumental])
        _apply(catalog, verification_decision(pair.id, verdict), run_id)
    found = [
        d
        for d in discover_pairs(index, known=known, candidates=candidates)
        if d.original_id not in copy_of and d.instrumental_id not in copy_of
    ]
    oriented = [
        orient_task.submit(tracks[d.original_id].path, tracks[d.instrumental_id].path, d.offset_s)
        for d in found
    ]
    for disc, future in zip(found, oriented, strict=True):
        pair = orient_discovery(disc, future.result(), paths)
        pair_id = store.upsert_pair(
            catalog,
            pair.original_id,
            pair.instrumental_id,
            source="fingerprint",
            score=100 * disc.ratio,
            run_id=run_id,
        )
        store.add_found(catalog, pair_id, "fingerprint", pair.found)
        store.add_evidence(catalog, pair_id, orientation=pair.orientation)
        decision = discovery_decision(
            pair_id,
            store.pair_status(catalog, pair_id),
            disc,
            pair,
            _ref(tracks[pair.original_id]),
            _ref(tracks[pair.instrumental_id]),
            settings.max_duration_diff_s,
            settings.max_duration_s,
        )
        _apply(catalog, decision, run_id)
    groups = copy_groups(duplicates, store.all_pairs(catalog), tracks)
    decide_stage(catalog, tracks, groups, run_id)
    logger.info("fingerprints: %d duplicates, %d pairs discovered", len(duplicates), len(found))


def decide_stage(
    catalog: Catalog, tracks: dict[int, store.TrackRow], groups: CopyGroups, run_id: int
) -> None:
    """Titles and tags, copy groups and roles over every accepted pair (mined ones stay)."""
    live = live_pairs(store.all_pairs(catalog), tracks)
    facts = {i: _facts(t) for i, t in tracks.items()}
    decisions = decide(live, facts, groups)
    store.add_evidence_many(catalog, decisions.evidence)
    for pair in live:
        verdict = decisions.rejected.get(pair.id)
        if verdict:
            store.reject_pair(
                catalog, pair.id, verdict.reason or "", verdict.detail, "decide", run_id
            )


def _segments(pair_id: int, artist: str, split: str, result: PairResult) -> list[Segment]:
    return [
        Segment(
            pair_id=pair_id,
            segment_index=p.segment_index,
            start_s=p.start_s,
            artist=artist,
            split=split,
            quality=p.quality,
            mix=p.mix,
            instrumental=p.instrumental,
            vocals=p.vocals,
        )
        for p in result.segments
    ]


def _record_pair(
    catalog: Catalog,
    writer: ShardWriter,
    settings: Settings,
    run_id: int,
    pair_id: int,
    original: store.TrackRow,
    result: PairResult,
    unpublished: dict[int, dict[str, Any]],
) -> list[float]:
    """Queue a processed pair's segments for the shards, or record its rejection.

    A mined pair's catalog fields wait in ``unpublished`` until its part file is in the
    manifest (:func:`_publish_mined`): the catalog never says ``mined`` of segments that a
    signal or a crash could still lose. Returns the segment qualities queued.
    """
    align = result.alignment
    fields: dict[str, Any] = {
        "sample_rate": result.sample_rate,
        "offset_samples": align.offset_samples if align else None,
        "offset_s": align.offset_s if align else None,
        "polarity": align.polarity if align else None,
        "gain_db": result.gain.gain_db if result.gain else None,
    }
    store.add_evidence(
        catalog,
        pair_id,
        checks=result.checks,
        audio={
            k: v
            for k, v in result.metrics.items()
            if not k.startswith("seconds_") and k not in ("duration_s", "segments")
        },
    )
    if not result.ok:
        store.reject_pair(
            catalog,
            pair_id,
            result.reason or "error",
            result.detail or "",
            "process",
            run_id,
            **fields,
        )
        return []
    artist = original.artist or ""
    split = split_for_artist(artist, settings.split_fractions)
    unpublished[pair_id] = {
        "quality": result.quality,
        "segments": len(result.segments),
        "dataset": settings.dataset,
        "split": split,
        **fields,
    }
    writer.write_pair(pair_id, _segments(pair_id, artist, split, result))
    _publish_mined(catalog, writer, unpublished)
    return [p.quality for p in result.segments]


def _publish_mined(
    catalog: Catalog, writer: ShardWriter, unpublished: dict[int, dict[str, Any]]
) -> None:
    """Mark ``mined`` the waiting pairs whose part files the manifest now lists."""
    done = writer.done_pairs()
    for pair_id in sorted(unpublished.keys() & done):
        store.mark_mined(catalog, pair_id, **unpublished.pop(pair_id))


def process_stage(
    catalog: Catalog,
    tracks: dict[int, store.TrackRow],
    settings: Settings,
    writer: ShardWriter,
    owner: str,
    run_id: int,
) -> list[float]:
    """Align, gain, derive and shard every accepted pair not yet in the shards.

    Every pair is marked ``mined`` once its segments are in the manifest, the last ones when
    the writer is flushed here.
    """
    logger = get_run_logger()
    done = writer.done_pairs()
    store.reconcile_mined(catalog, done)
    pending = pairs_to_process(store.pairs_with_status(catalog, "accepted"), done, tracks)
    held = set(claim_pairs(catalog, owner, [p.id for p in pending]))
    pending = [p for p in pending if p.id in held]
    logger.info("processing %d accepted pairs (%d already in the shards)", len(pending), len(done))
    jobs = [
        PairJob(
            p.id,
            tracks[p.original_id].path,
            tracks[p.instrumental_id].path,
            p.offset_s,
            p.reason,
            title_facts(_facts(tracks[p.instrumental_id])).instrumental is not None,
        )
        for p in pending
    ]
    durations = [tracks[p.original_id].duration_s for p in pending]
    futures = [
        process_pairs_task.submit(
            batch,
            settings.stft_preset,
            settings.segment_skip_s,
            settings.segment_hop_frames,
            settings.max_gain_db,
        )
        for batch in batches(jobs, durations, PAIR_BATCH_S)
    ]
    original_of = {p.id: tracks[p.original_id] for p in pending}
    qualities: list[float] = []
    unpublished: dict[int, dict[str, Any]] = {}
    count = 0
    with cancelled_on_exit(futures):
        for future in as_completed(futures):
            for pair_id, result in future.result():
                count += 1
                qualities += _record_pair(
                    catalog,
                    writer,
                    settings,
                    run_id,
                    pair_id,
                    original_of[pair_id],
                    result,
                    unpublished,
                )
                logger.info("pair %d/%d: %s", count, len(jobs), result.reason or "mined")
    writer.flush()
    _publish_mined(catalog, writer, unpublished)
    return qualities


def settings_for(**options: Any) -> Settings:
    """Settings for a run: the config file and environment, then the flow's non-None options."""
    config = options.pop("config", None)
    return get_settings(config, **options)


@flow(name="mine", log_prints=True)
def mine_flow(
    library: str,
    data_dir: str | None = None,
    catalog_url: str | None = None,
    shard_root: str | None = None,
    dataset: str | None = None,
    stft_preset: str | None = None,
    segment_skip_s: float | None = None,
    config: str | None = None,
) -> dict[str, Any]:
    """Mine ``library`` into shards; safe to re-run and to run twice at once: only new work is done.

    The Dask cluster is the flow's task runner: see :func:`configured_mine_flow`.
    """
    keep_freed_memory()
    logger = get_run_logger()
    settings = settings_for(
        config=config,
        data_dir=data_dir,
        catalog_url=catalog_url,
        shard_root=shard_root,
        dataset=dataset,
        stft_preset=stft_preset,
        segment_skip_s=segment_skip_s,
    )
    library = str(Path(library).resolve())
    catalog = open_catalog(settings.catalog_url)
    owner = new_owner("mine")
    with exclusive_lock(catalog, f"mine:{settings.shard_root}/{settings.dataset}"):
        clear_stale_claims(catalog, owner)
        run_id = store.start_run(catalog, library, flow_run_id())
        status = "failed"
        try:
            scan = scan_task(library, settings.catalog_url, settings.hash_bytes)
            logger.info("scan: %s", scan)
            rows = store.library_tracks(catalog, library)
            tracks = {t.id: t for t in rows}
            match_stage(catalog, rows, settings, run_id)
            fps = fingerprint_stage(catalog, rows, run_id, settings.max_duration_s)
            verify_stage(catalog, tracks, fps, settings, run_id)
            preset = get_preset(settings.stft_preset)
            writer = ShardWriter(
                settings.shard_root, settings.dataset, preset, source_run=str(run_id)
            )
            qualities = process_stage(catalog, tracks, settings, writer, owner, run_id)
            manifest = writer.close()
            store.reconcile_mined(catalog, writer.done_pairs())
            status = "completed"
        finally:
            release_pairs(catalog, owner)
            totals = store.counts(catalog)
            store.finish_run(catalog, run_id, status, totals)
    totals["scan"] = scan
    totals["shards"] = manifest.get("counts", {})
    catalog.dispose()
    publish_counts("mining-counts", "Mining: tracks, pairs by status, rejections by reason", totals)
    publish_histogram(
        "label-quality",
        qualities,
        "Label quality of the segments mined in this run",
        value_range=(0.0, 1.0),
        xlabel="quality",
    )
    return totals


def configured_mine_flow(settings: Settings) -> Any:
    """The mine flow on the Dask cluster the settings name (a LocalCluster when none)."""
    return mine_flow.with_options(task_runner=task_runner(settings))
