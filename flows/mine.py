"""Prefect flow ``mine``: scan → match → fingerprint → verify → align → gain → derive → shard.

A thin composition: the signal processing lives in ``mining/``, the queries in
``storage/mining_store.py``, the shard format in ``storage/shard_schema.py``. Per-track
fingerprinting and per-pair processing run on a Dask task runner (a LocalCluster by default, a
scheduler address for a real cluster). Re-running is cheap and safe: fingerprints are stored once
per content hash, pairs already in the shard manifest are skipped, and pair processing is claimed in
the catalog so concurrent runs never do the same pair twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
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
    sweep_task,
)
from vocalmine.flows.runtime import flow_run_id, keep_freed_memory
from vocalmine.mining.decisions import CopyGroups, TrackFacts, title_facts
from vocalmine.mining.discovery import discover_pairs, find_duplicates
from vocalmine.mining.fingerprint_index import DEFAULT_SWEEP, open_index, sweep_blocks, sweep_key
from vocalmine.mining.fingerprint_match import verify_pair
from vocalmine.mining.landmarks import Fingerprint
from vocalmine.mining.matching import TrackRef, match_titles
from vocalmine.mining.pair_pipeline import PairResult
from vocalmine.mining.verification import (
    PairDecision,
    TrackRejection,
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
from vocalmine.storage import mining_store as store
from vocalmine.storage.catalog import Catalog, open_catalog
from vocalmine.storage.fingerprint_store import FingerprintStore
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


#: Fingerprint hashes gathered before they are appended to the index as one generation
#: (≈ 150 four-minute songs; 40 MB while buffered).
APPEND_HASHES = 5_000_000


def _adopt_legacy(catalog: Catalog, index: FingerprintStore) -> int:
    """Move fingerprint blobs a catalog from before migration 0003 holds into the on-disk
    index (those made with other parameters are dropped: they would be recomputed)."""
    moved = 0
    while rows := store.legacy_fingerprints(catalog):
        batch = []
        for content_hash, data in rows:
            fp = Fingerprint.from_bytes(data)
            if asdict(fp.params) == index.params:
                index.write_object(content_hash, data)
                batch.append((content_hash, fp.hashes, fp.times, fp.n_frames))
        index.append(batch)
        store.delete_legacy_fingerprints(catalog, [h for h, _ in rows])
        moved += len(batch)
    return moved


def _indexed_rows(
    index: FingerprintStore, hashes: Iterable[str]
) -> Iterator[tuple[str, np.ndarray, np.ndarray, int]]:
    for content_hash in hashes:
        fp = Fingerprint.from_bytes(index.read_object(content_hash))
        yield content_hash, fp.hashes, fp.times, fp.n_frames


def fingerprint_stage(
    catalog: Catalog, tracks: list[store.TrackRow], run_id: int, settings: Settings
) -> FingerprintStore:
    """Fingerprints of every track up to ``max_duration_s`` long into the on-disk index,
    computed on the task runner once per content hash; returns the index.

    Longer tracks are rejected ``too_long`` whatever they match, and decoding a multi-hour
    file whole would set the workers' peak memory, so they are not fingerprinted. Each
    fingerprint is stored as it arrives and the postings are appended in generations of about
    :data:`APPEND_HASHES` hashes, so a killed run keeps what it computed.
    """
    logger = get_run_logger()
    index = open_index(settings.fingerprint_index)
    if moved := _adopt_legacy(catalog, index):
        logger.info("moved %d fingerprints from the catalog into the index", moved)
    tracks = [t for t in tracks if (t.duration_s or 0.0) <= settings.max_duration_s]
    missing = {t.content_hash for t in tracks} - index.entries.keys()
    stored = sorted(h for h in missing if index.has_object(h))
    index.append(_indexed_rows(index, stored))
    by_hash = {t.content_hash: t for t in tracks}
    ordered = sorted(missing - set(stored))
    files = [(by_hash[h].path, h) for h in ordered]
    durations = [by_hash[h].duration_s for h in ordered]
    futures = [
        fingerprint_task.submit(batch) for batch in batches(files, durations, FINGERPRINT_BATCH_S)
    ]
    done = 0
    pending: list[tuple[str, np.ndarray, np.ndarray, int]] = []
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
                index.write_object(content_hash, data)
                fp = Fingerprint.from_bytes(data)
                pending.append((content_hash, fp.hashes, fp.times, fp.n_frames))
            if sum(row[1].size for row in pending) >= APPEND_HASHES:
                index.append(pending)
                pending = []
            logger.info("fingerprinted %d/%d new recordings", done, len(files))
    index.append(pending)
    index.refresh()
    return index


def sweep_stage(
    catalog: Catalog,
    index: FingerprintStore,
    contents: set[str],
    settings: Settings,
    resweep: bool = False,
) -> tuple[str, int]:
    """Query the recordings not yet swept against the index, in blocks on the task runner, and
    store every check they lead to; returns the sweep's key (under which its checks are stored)
    and how many recordings were swept.

    A recording swept once is never queried again: a later one finds it through its own
    query (new against old and old against new go through the same postings). After a change
    of the fingerprint or sweep settings (a new key) every recording is queried again; checks
    under other keys stay (they are read by nobody but a run with those settings).
    ``resweep`` forgets this key's checks and queries every recording again.
    """
    logger = get_run_logger()
    params = replace(
        DEFAULT_SWEEP,
        postings_per_hash=settings.sweep_postings_per_hash,
        max_duration_diff_s=settings.max_duration_diff_s,
    )
    key = sweep_key(index.key, params)
    if resweep:
        store.forget_sweep(catalog, key)
    todo = contents - store.swept_contents(catalog, key, contents)
    if not todo:
        return key, 0
    entries = index.entries
    sizes = {entries[h].fp_id: entries[h].n_hashes for h in todo}
    content_of = {entries[h].fp_id: h for h in todo}
    blocks = [
        [content_of[i] for i in block]
        for block in sweep_blocks(sizes, min(settings.sweep_block_hashes, _spread(sizes)))
    ]
    futures = [sweep_task.submit(index.root, block, params) for block in blocks]
    blocks_of = {id(f): b for f, b in zip(futures, blocks, strict=True)}
    swept = 0
    with cancelled_on_exit(futures):
        for future in as_completed(futures):
            store.save_checks(catalog, key, future.result(), blocks_of[id(future)])
            swept += len(blocks_of[id(future)])
            logger.info("discovery sweep: %d/%d recordings", swept, len(todo))
    return key, swept


def _spread(sizes: dict[int, int], min_tasks: int = 8) -> int:
    """Hashes per sweep block that still give a small library ``min_tasks`` tasks."""
    return max(1, -(-sum(sizes.values()) // min_tasks))


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
    index: FingerprintStore,
    settings: Settings,
    run_id: int,
    resweep: bool = False,
) -> dict[str, int]:
    """Duplicates, fingerprint verification of title candidates, discovery of missed pairs, and
    the decision of every live proposal with all the evidence (:mod:`mining.verification`).

    The sweep queries only recordings not swept before; duplicates and discoveries are then
    decided from the stored checks of the whole library, so earlier checks are never measured
    again. Title candidates are never called duplicates (their derivation decides).
    """
    logger = get_run_logger()
    paths = {i: t.path for i, t in tracks.items()}
    indexed = {i: t for i, t in tracks.items() if t.content_hash in index}
    by_content: dict[str, list[int]] = {}
    for i, t in sorted(indexed.items()):
        by_content.setdefault(t.content_hash, []).append(i)
    key, swept = sweep_stage(catalog, index, set(by_content), settings, resweep)
    checks = checks_by_track(store.load_checks(catalog, key, set(by_content)), by_content)
    known = [(p.original_id, p.instrumental_id) for p in store.all_pairs(catalog)]
    duplicates = find_duplicates(
        checks,
        durations={i: t.duration_s for i, t in indexed.items()},
        content_hashes={i: t.content_hash for i, t in indexed.items()},
        known=known,
    )
    copy_of = {d.track_id: d.duplicate_of for d in duplicates}
    _reject_tracks(catalog, duplicate_rejections(duplicates, paths), run_id)

    def fp(track_id: int) -> Fingerprint:
        return Fingerprint.from_bytes(index.read_object(indexed[track_id].content_hash))

    for pair in store.pairs_with_status(catalog, "candidate"):
        original, instrumental = pair.original_id, pair.instrumental_id
        if original not in indexed or instrumental not in indexed:
            continue
        verdict = verify_pair(fp(original), fp(instrumental))
        _apply(catalog, verification_decision(pair.id, verdict), run_id)
    found = [
        d
        for d in discover_pairs(checks, known=known)
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
    logger.info(
        "fingerprints: swept %d new recordings, %d checks, %d duplicates, %d pairs discovered",
        swept,
        len(checks),
        len(duplicates),
        len(found),
    )
    return {"swept": swept, "checks": len(checks), "discovered": len(found)}


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
    unpublished: set[int],
) -> list[float]:
    """Queue a processed pair's segments for the shards, or record its rejection.

    A mined pair's catalog fields are written to its evidence (section ``shards``) before its
    segments are queued, and become its columns when its part file is in the manifest
    (:func:`_publish_mined`, or the next run's ``reconcile_mined`` after a kill in between):
    the catalog never says ``mined`` of segments that a signal or a crash could still lose,
    nor loses what it measured of segments that did land. Returns the segment qualities queued.
    """
    align = result.alignment
    fields: dict[str, Any] = {
        "sample_rate": result.sample_rate,
        "offset_samples": align.offset_samples if align else None,
        "offset_s": align.offset_s if align else None,
        "polarity": align.polarity if align else None,
        "gain_db": result.gain.gain_db if result.gain else None,
    }
    audio = {
        k: v
        for k, v in result.metrics.items()
        if not k.startswith("seconds_") and k not in ("duration_s", "segments")
    }
    if not result.ok:
        store.add_evidence(catalog, pair_id, checks=result.checks, audio=audio)
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
    shards = {
        "quality": result.quality,
        "segments": len(result.segments),
        "dataset": settings.dataset,
        "split": split,
        **fields,
    }
    store.add_evidence(catalog, pair_id, checks=result.checks, audio=audio, shards=shards)
    unpublished.add(pair_id)
    writer.write_pair(pair_id, _segments(pair_id, artist, split, result))
    _publish_mined(catalog, writer, unpublished)
    return [p.quality for p in result.segments]


def _publish_mined(catalog: Catalog, writer: ShardWriter, unpublished: set[int]) -> None:
    """Mark ``mined`` the waiting pairs whose part files the manifest now lists."""
    published = unpublished & writer.done_pairs()
    if published:
        store.mark_mined(catalog, published)
        unpublished -= published


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
    unpublished: set[int] = set()
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


def decision_key(settings: Settings) -> str:
    """A digest of what the match, fingerprint and decision stages depend on besides the
    library: the release and the settings they read. A run with another key decides again."""
    from vocalmine import __version__

    read = ("max_duration_diff_s", "max_duration_s", "fingerprint_index", "sweep_postings_per_hash")
    text = json.dumps([__version__, [getattr(settings, k) for k in read]], default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _nothing_changed(
    catalog: Catalog, library: str, run_id: int, scan: dict[str, Any], key: str
) -> bool:
    """True when the last run of ``library`` completed with the same decision key, the scan
    found nothing new, changed or missing, and no title candidate waits for verification."""
    previous = store.previous_run(catalog, library, run_id)
    return (
        previous is not None
        and previous[0] == "completed"
        and previous[1].get("decision_key") == key
        and not any(scan.get(k) for k in ("new", "updated", "missing"))
        and not store.pairs_with_status(catalog, "candidate")
    )


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
    resweep: bool = False,
) -> dict[str, Any]:
    """Mine ``library`` into shards; safe to re-run and to run twice at once: only new work is done.

    A run that finds the library as the last completed run left it (no new, changed or missing
    file, the same decision settings, no candidate waiting) goes straight to the pairs still to
    process: nothing proportional to the library is matched, fingerprinted or swept.
    ``resweep``: forget the stored sweep checks and query every recording again (after a change
    of sweep settings). The Dask cluster is the flow's task runner: see
    :func:`configured_mine_flow`.
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
    key = decision_key(settings)
    with exclusive_lock(catalog, f"mine:{settings.shard_root}/{settings.dataset}"):
        clear_stale_claims(catalog, owner)
        run_id = store.start_run(catalog, library, flow_run_id())
        status = "failed"
        stages: dict[str, Any] = {}  # what the scan and discovery did, for the run's record
        try:
            scan = stages["scan"] = scan_task(library, settings.catalog_url, settings.hash_bytes)
            logger.info("scan: %s", scan)
            rows = store.library_tracks(catalog, library)
            tracks = {t.id: t for t in rows}
            quiet = not resweep and _nothing_changed(catalog, library, run_id, scan, key)
            discovery: dict[str, Any] = {"skipped": quiet}
            if not quiet:
                match_stage(catalog, rows, settings, run_id)
                index = fingerprint_stage(catalog, rows, run_id, settings)
                discovery.update(verify_stage(catalog, tracks, index, settings, run_id, resweep))
            stages["discovery"] = discovery
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
            store.finish_run(catalog, run_id, status, {**totals, **stages, "decision_key": key})
    totals.update(stages)
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
