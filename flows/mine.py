"""Prefect flow ``mine``: scan → match → fingerprint → verify → align → gain → derive → shard.

A thin composition: the signal processing lives in ``mining/``, the queries in
``storage/mining_store.py``, the shard format in ``storage/shard_schema.py``. Per-track
fingerprinting and per-pair processing run on a Dask task runner (a LocalCluster by default, a
scheduler address for a real cluster). Re-running is cheap and safe: fingerprints are stored once
per content hash, pairs already in the shard manifest are skipped, and pair processing is claimed in
the catalog so concurrent runs never do the same pair twice.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import dask
from distributed import LocalCluster
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.settings import PREFECT_API_URL
from prefect_dask import DaskTaskRunner

from vocalmine.core.audio import load_audio
from vocalmine.core.reasons import Reason
from vocalmine.core.settings import Settings, get_settings
from vocalmine.core.stft import get_preset
from vocalmine.flows.api_server import temporary_server_url
from vocalmine.flows.artifacts import publish_counts, publish_histogram
from vocalmine.flows.runtime import ALLOCATOR_ENV, flow_run_id, keep_freed_memory
from vocalmine.mining.decisions import CopyGroups, TrackFacts, title_facts
from vocalmine.mining.discovery import discover_pairs, find_duplicates, orient_pair
from vocalmine.mining.fingerprint_index import FingerprintIndex, candidate_pairs
from vocalmine.mining.fingerprint_match import verify_pair
from vocalmine.mining.landmarks import DEFAULT_PARAMS, Fingerprint, fingerprint
from vocalmine.mining.matching import TrackRef, match_titles
from vocalmine.mining.pair_pipeline import PairParams, PairResult, process_pair
from vocalmine.mining.roles import DEFAULT_ROLE_THRESHOLDS
from vocalmine.mining.scan import scan_library
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
from vocalmine.storage.shard_schema import Segment, to_half
from vocalmine.storage.shard_writer import ShardWriter
from vocalmine.storage.splits import split_for_artist

PRE_SPAWN_ENVIRON = "distributed.nanny.pre-spawn-environ"


class LocalAPIDaskTaskRunner(DaskTaskRunner):
    """A Dask runner whose LocalCluster workers report to the flow's own Prefect API.

    With no ``PREFECT_API_URL`` configured, the flow runs against Prefect's temporary local
    server, and every worker process that runs a task would start one more of its own (seconds
    of start-up per worker, task runs scattered over several servers). While the runner is
    open, ``PREFECT_API_URL`` names the flow's server, so the workers it spawns inherit it.
    """

    def __enter__(self) -> LocalAPIDaskTaskRunner:
        self._saved_api_url = os.environ.get("PREFECT_API_URL")
        if not PREFECT_API_URL.value():
            os.environ["PREFECT_API_URL"] = temporary_server_url()
        return super().__enter__()

    def __exit__(self, *args: Any) -> None:
        try:
            super().__exit__(*args)
        finally:
            if self._saved_api_url is None:
                os.environ.pop("PREFECT_API_URL", None)
            else:
                os.environ["PREFECT_API_URL"] = self._saved_api_url


def local_cluster(**kwargs: Any) -> LocalCluster:
    """A LocalCluster whose worker processes start with :data:`flows.runtime.ALLOCATOR_ENV`.

    glibc reads allocator settings only at process start, so they go in the nanny's
    ``pre-spawn-environ`` (its ``env`` is applied after the worker has started).
    """
    spawn_env = {**dask.config.get(PRE_SPAWN_ENVIRON, default={}), **ALLOCATOR_ENV}
    with dask.config.set({PRE_SPAWN_ENVIRON: spawn_env}):
        return LocalCluster(**kwargs)


def task_runner(settings: Settings) -> DaskTaskRunner:
    """A Dask runner: the configured scheduler address, else a LocalCluster of worker processes."""
    if settings.dask_address:
        return DaskTaskRunner(address=settings.dask_address)
    # Worker start/stop chatter drowns the flow's own progress lines; warnings still show.
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    logging.getLogger("distributed").setLevel(logging.WARNING)
    return LocalAPIDaskTaskRunner(
        cluster_class=local_cluster,
        cluster_kwargs={
            "n_workers": settings.dask_workers,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,
            "silence_logs": logging.ERROR,
        },
    )


@task(name="scan", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def scan_task(library: str, catalog_url: str, hash_bytes: int) -> dict[str, Any]:
    """Scan the library into the catalog (incremental)."""
    catalog = open_catalog(catalog_url)
    try:
        return scan_library(library, catalog, hash_bytes=hash_bytes).as_dict()
    finally:
        catalog.dispose()


T = TypeVar("T")

#: Seconds of audio per fingerprint task and per pair-processing task (the original's length).
#: A Prefect task run costs about 0.25 CPU seconds of bookkeeping (submit and result in the
#: flow, the task engine on the worker, the API server), as much as decoding and fingerprinting
#: two minutes of audio, so files and pairs go in batches: two or three songs or hundreds of
#: clips per task.
FINGERPRINT_BATCH_S = 600.0
PAIR_BATCH_S = 600.0


def batches(
    items: list[T], seconds: list[float], budget_s: float, min_tasks: int = 16
) -> list[list[T]]:
    """``items`` in order, cut into batches of about ``budget_s`` seconds of audio, with at most
    ``len(items) / min_tasks`` items each so that small libraries still spread over the workers."""
    cap = max(1, -(-len(items) // min_tasks))
    out: list[list[T]] = []
    total = 0.0
    for item, duration in zip(items, seconds, strict=True):
        if not out or total >= budget_s or len(out[-1]) >= cap:
            out.append([])
            total = 0.0
        out[-1].append(item)
        total += duration
    return out


def _fingerprint_file(path: str, content_hash: str) -> tuple[str, bytes | None, str | None]:
    try:
        audio, sr = load_audio(path, sr=DEFAULT_PARAMS.sample_rate, mono=True)
    except Exception as exc:  # every decode problem becomes a recorded reason, never a crash
        return content_hash, None, " ".join(str(exc).split())
    return content_hash, fingerprint(audio, sr).to_bytes(), None


@task(name="fingerprint", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def fingerprint_task(
    files: list[tuple[str, str]],
) -> list[tuple[str, bytes | None, str | None]]:
    """Landmark fingerprints of (path, content hash) files; decode errors come back as text."""
    return [_fingerprint_file(path, content_hash) for path, content_hash in files]


@task(name="orient-pair", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def orient_task(path_a: str, path_b: str, offset_s: float) -> bool | None:
    """True when ``path_a`` is the mix of a fingerprint-discovered pair (None: undecidable)."""
    try:
        rate = DEFAULT_PARAMS.sample_rate
        a, _ = load_audio(path_a, sr=rate, mono=True)
        b, _ = load_audio(path_b, sr=rate, mono=True)
        return orient_pair(a, b, rate, offset_s)
    except Exception:  # an undecidable orientation keeps the fingerprint rule's choice
        return None


@dataclass(frozen=True)
class PairJob:
    """What a worker needs to process one accepted pair (plain values, picklable)."""

    pair_id: int
    original: str
    instrumental: str
    coarse_offset_s: float | None
    suspect: str | None
    vouched: bool = False


@task(name="process-pairs", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def process_pairs_task(
    jobs: list[PairJob],
    preset_name: str,
    segment_skip_s: float,
    segment_hop_frames: int | None,
    max_gain_db: float = DEFAULT_ROLE_THRESHOLDS.max_gain_db,
) -> list[tuple[int, PairResult]]:
    """Align, gain-match and derive the vocals of a batch of pairs; data problems are reasons.

    Segments come back as the shards' float16: half the bytes to ship to the flow, and the
    conversion runs on the workers rather than in the flow process that writes the shards.
    """
    preset = get_preset(preset_name)
    params = PairParams(roles=replace(DEFAULT_ROLE_THRESHOLDS, max_gain_db=max_gain_db))
    out = []
    for job in jobs:
        result = process_pair(
            job.original,
            job.instrumental,
            preset,
            job.coarse_offset_s,
            segment_skip_s=segment_skip_s,
            segment_hop_frames=segment_hop_frames,
            params=params,
            suspect=job.suspect,
            vouched=job.vouched,
        )
        for patch in result.segments:
            patch.mix = to_half(patch.mix)
            patch.instrumental = to_half(patch.instrumental)
            patch.vocals = to_half(patch.vocals)
        out.append((job.pair_id, result))
    return out


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
    catalog: Catalog, tracks: list[store.TrackRow], run_id: int
) -> dict[int, Fingerprint]:
    """Fingerprints of every track, computed on the task runner once per content hash.

    A stored fingerprint made with other parameters (an older release) is recomputed.
    """
    logger = get_run_logger()
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
    for future in as_completed(futures):
        for content_hash, data, error in future.result():
            done += 1
            if data is None:
                for t in tracks:
                    if t.content_hash == content_hash:
                        store.reject_track(
                            catalog, t.id, Reason.DECODE_ERROR, error or "", "fingerprint", run_id
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
) -> list[float]:
    """Shard a processed pair's segments and mark it mined, or record its rejection.

    Returns the segment qualities written.
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
    writer.write_pair(pair_id, _segments(pair_id, artist, split, result))
    store.mark_mined(
        catalog,
        pair_id,
        quality=result.quality,
        segments=len(result.segments),
        dataset=settings.dataset,
        split=split,
        **fields,
    )
    return [p.quality for p in result.segments]


def process_stage(
    catalog: Catalog,
    tracks: dict[int, store.TrackRow],
    settings: Settings,
    writer: ShardWriter,
    owner: str,
    run_id: int,
) -> list[float]:
    """Align, gain, derive and shard every accepted pair not yet in the shards."""
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
    count = 0
    for future in as_completed(futures):
        for pair_id, result in future.result():
            count += 1
            qualities += _record_pair(
                catalog, writer, settings, run_id, pair_id, original_of[pair_id], result
            )
            logger.info("pair %d/%d: %s", count, len(jobs), result.reason or "mined")
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
            fps = fingerprint_stage(catalog, rows, run_id)
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
