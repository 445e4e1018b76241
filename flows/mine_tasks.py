"""The mining flow's Prefect tasks: what runs on the Dask workers (scan, fingerprint batches,
orientation, pair batches), each a thin wrapper around a pure function of :mod:`vocalmine.mining`,
and how work is cut into batches."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, TypeVar

from prefect import task
from prefect.cache_policies import NO_CACHE

from vocalmine.core.audio import load_audio
from vocalmine.core.stft import get_preset
from vocalmine.mining.discovery import orient_pair
from vocalmine.mining.fingerprint_index import SweepParams, open_index, sweep_store
from vocalmine.mining.landmarks import DEFAULT_PARAMS, fingerprint
from vocalmine.mining.pair_pipeline import PairParams, PairResult, process_pair
from vocalmine.mining.roles import DEFAULT_ROLE_THRESHOLDS
from vocalmine.mining.scan import scan_library
from vocalmine.storage.catalog import open_catalog
from vocalmine.storage.shard_schema import to_half


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


@task(name="sweep", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def sweep_task(
    index_root: str, contents: list[str], params: SweepParams
) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """One block of the discovery sweep: these recordings against the on-disk index, read by
    the worker itself from the data root (nothing but names and numbers travel)."""
    return sweep_store(open_index(index_root), contents, params)


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
