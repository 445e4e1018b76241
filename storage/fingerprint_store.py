"""The on-disk fingerprint index beside the catalog: each fingerprint once per content hash,
and the inverted index hash → (fingerprint id, time) appended as tracks arrive.

Layout (one folder per set of fingerprint parameters, so new parameters start a new index)::

    <root>/<params key>/
        manifest.json                   the commit point: entries and live generations
        objects/<ab>/<content hash>.fp  one fingerprint's bytes, written once, atomically
        postings/g<NNNNNN>/b<BB>.npy    (3, n) uint32 rows hash, fingerprint id, time; sorted
                                        by hash; bucket BB holds the hashes whose bits 6–11
                                        are BB (the Δt variants of a hash share its bucket)
        .lock                           the writer's flock (local roots)

An append writes a new *generation* of bucket files, then the manifest that lists it: a run
killed mid-append leaves files no manifest names, which the next writer removes, and readers
never see them. Generations are merged size-tiered (a new one is merged into the one before
while it is at least a quarter of its size), so each posting is rewritten O(log N) times and a
library keeps a handful of generations.

Why ``.npy`` bucket files rather than Parquet or a key-value store: the sweep looks hashes up
by binary search, and a memory-mapped ``.npy`` lets it read only the pages it touches, with no
decoding; a Parquet row group must be decoded whole, and LMDB (what Olaf and Panako use) is one
more native dependency that fsspec roots (``s3://…``) cannot hold. Remote roots are read whole
per bucket instead of memory-mapped. The format is plain numpy, readable without vocalmine.

The store deals in bytes and arrays only; :mod:`mining.fingerprint_index` owns the meaning.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vocalmine.core.atomic import atomic_write, is_local
from vocalmine.storage.shard_schema import open_filesystem

__all__ = [
    "FORMAT_VERSION",
    "N_BUCKETS",
    "FingerprintStore",
    "IndexEntry",
    "bucket_of",
    "bucket_rows",
    "params_key",
    "sorted_postings",
]

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
#: Buckets of the postings (bits 6–11 of a hash: the Δf field's low bits, spread evenly).
N_BUCKETS = 64
#: A new generation merges into the previous one while it is at least 1/TIER of its size.
TIER = 4


def bucket_of(hashes: np.ndarray) -> np.ndarray:
    """The postings bucket of each hash (bits 6–11, so a hash and its Δt variants agree)."""
    return (
        (np.asarray(hashes, dtype=np.uint32) >> np.uint32(6)) & np.uint32(N_BUCKETS - 1)
    ).astype(np.intp)


def bucket_rows(fp_id: int, hashes: np.ndarray, times: np.ndarray) -> list[np.ndarray]:
    """One fingerprint's postings split by bucket: ``N_BUCKETS`` (3, n) uint32 arrays of rows
    hash, ``fp_id``, time (the int32 time's bits), in the fingerprint's order."""
    hashes = np.asarray(hashes, dtype=np.uint32)
    rows = np.empty((3, hashes.size), dtype=np.uint32)
    rows[0] = hashes
    rows[1] = fp_id
    rows[2] = np.asarray(times, dtype=np.int32).view(np.uint32)
    owner = bucket_of(hashes)
    order = np.argsort(owner, kind="stable")
    bounds = np.searchsorted(owner[order], np.arange(N_BUCKETS + 1))
    return [rows[:, order[bounds[b] : bounds[b + 1]]] for b in range(N_BUCKETS)]


def sorted_postings(chunks: list[np.ndarray]) -> np.ndarray:
    """Postings chunks of one bucket as one (3, n) array sorted by hash (stable: in a hash's
    run, the order of the chunks, hence of fingerprint ids, is kept)."""
    part = np.concatenate(chunks, axis=1) if chunks else np.empty((3, 0), np.uint32)
    return part[:, np.argsort(part[0], kind="stable")]


def params_key(params: dict[str, Any]) -> str:
    """A short stable name for a set of fingerprint parameters (the index folder's name)."""
    text = json.dumps(params, sort_keys=True, default=list)
    return "fp-" + hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class IndexEntry:
    """One indexed fingerprint: its id in the postings, its length in frames and hash count."""

    fp_id: int
    n_frames: int
    n_hashes: int


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


class FingerprintStore:
    """The fingerprint index of one parameter set under ``root`` (local path or fsspec URL).

    Readers (every Dask worker) open it by ``root`` and ``params`` and see the last committed
    manifest; one writer at a time appends (an ``flock`` on local roots; on remote roots the
    mine flow's catalog lock keeps runs of one data root apart).
    """

    def __init__(self, root: str, params: dict[str, Any]) -> None:
        self.root = str(root)
        self.params = dict(params)
        self.key = params_key(self.params)
        self.fs, base = open_filesystem(self.root)
        self.base = f"{base}/{self.key}"
        self.local = is_local(self.fs)
        self.manifest = self._read_manifest()

    # ----------------------------------------------------------------- reading
    def _read_manifest(self) -> dict[str, Any]:
        path = f"{self.base}/{MANIFEST}"
        try:
            with self.fs.open(path, "rb") as handle:
                manifest = json.loads(handle.read())
        except FileNotFoundError:
            return {
                "format": FORMAT_VERSION,
                "params": self.params,
                "generations": [],
                "next_generation": 0,
                "next_id": 0,
                "entries": {},
            }
        except (OSError, ValueError) as exc:
            raise OSError(f"{path}: unreadable fingerprint index manifest ({exc})") from exc
        if manifest.get("format") != FORMAT_VERSION:
            raise OSError(f"{path}: index format {manifest.get('format')} is not {FORMAT_VERSION}")
        return manifest

    def refresh(self) -> None:
        """Re-read the manifest (another process may have committed since)."""
        self.manifest = self._read_manifest()

    @property
    def entries(self) -> dict[str, IndexEntry]:
        """Indexed fingerprints by content hash."""
        return {h: IndexEntry(*e) for h, e in self.manifest["entries"].items()}

    def __len__(self) -> int:
        return len(self.manifest["entries"])

    def __contains__(self, content_hash: object) -> bool:
        return content_hash in self.manifest["entries"]

    def n_frames_by_id(self) -> np.ndarray:
        """Length in frames of every fingerprint id (-1 for ids no entry holds)."""
        out = np.full(int(self.manifest["next_id"]), -1, dtype=np.int64)
        for fp_id, n_frames, _ in self.manifest["entries"].values():
            out[fp_id] = n_frames
        return out

    def content_by_id(self) -> dict[int, str]:
        """Content hash of every fingerprint id."""
        return {e[0]: h for h, e in self.manifest["entries"].items()}

    def _object_path(self, content_hash: str) -> str:
        return f"{self.base}/objects/{content_hash[:2]}/{content_hash}.fp"

    def has_object(self, content_hash: str) -> bool:
        """True when this content's fingerprint bytes are stored (indexed or not yet)."""
        return bool(self.fs.exists(self._object_path(content_hash)))

    def read_object(self, content_hash: str) -> bytes:
        """The stored fingerprint bytes of one content hash."""
        with self.fs.open(self._object_path(content_hash), "rb") as handle:
            return bytes(handle.read())

    def _bucket_path(self, generation: int, bucket: int) -> str:
        return f"{self.base}/postings/g{generation:06d}/b{bucket:02d}.npy"

    def _load(self, path: str) -> np.ndarray:
        if self.local:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        return np.load(io.BytesIO(self.fs.cat_file(path)), allow_pickle=False)

    def bucket(self, bucket: int) -> list[np.ndarray]:
        """The postings of one bucket, one (3, n) array per live generation (memory-mapped on
        local roots, and unmapped when the caller drops them: the pages a sweep touches count
        towards its memory only while it works on that bucket). A generation merged away since
        the manifest was read is re-resolved."""
        for attempt in range(2):
            try:
                return [
                    self._load(self._bucket_path(g["id"], bucket))
                    for g in self.manifest["generations"]
                    if g["sizes"][bucket]
                ]
            except FileNotFoundError:
                if attempt:
                    raise
                self.refresh()
        raise AssertionError("unreachable")

    def disk_bytes(self) -> int:
        """Bytes the index holds on disk (objects and postings)."""
        return int(
            sum(
                self.fs.du(f"{self.base}/{d}")
                for d in ("objects", "postings")
                if self.fs.exists(f"{self.base}/{d}")
            )
        )

    # ----------------------------------------------------------------- writing
    def _put(self, path: str, data: bytes) -> None:
        """Write one file atomically, making its folder first."""
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        atomic_write(self.fs, path, data)

    def write_object(self, content_hash: str, data: bytes) -> None:
        """Store one fingerprint's bytes (once per content hash; atomic)."""
        path = self._object_path(content_hash)
        if not self.fs.exists(path):
            self._put(path, data)

    @contextlib.contextmanager
    def _writer(self) -> Iterator[None]:
        """Hold the writer lock, with the latest manifest read and dead generations removed."""
        handle = None
        if self.local:
            Path(self.base).mkdir(parents=True, exist_ok=True)
            handle = open(f"{self.base}/.lock", "a+")  # noqa: SIM115 - held for the block
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            self.refresh()
            self._remove_dead_generations()
            yield
        finally:
            if handle is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()

    def _remove_dead_generations(self) -> None:
        """Remove generation folders the manifest does not list (an append or merge killed
        before its commit, or merged away)."""
        live = {f"g{g['id']:06d}" for g in self.manifest["generations"]}
        folder = f"{self.base}/postings"
        if not self.fs.exists(folder):
            return
        for path in self.fs.ls(folder, detail=False):
            if path.rstrip("/").rsplit("/", 1)[-1] not in live:
                self.fs.rm(path, recursive=True)

    def _write_bucket(self, generation: int, bucket: int, part: np.ndarray) -> int:
        """Write one bucket file of a generation ((3, n), sorted by hash); its size."""
        if part.shape[1]:
            self._put(self._bucket_path(generation, bucket), _npy_bytes(part))
        return int(part.shape[1])

    def _commit(self, manifest: dict[str, Any]) -> None:
        self._put(f"{self.base}/{MANIFEST}", json.dumps(manifest, separators=(",", ":")).encode())
        self.manifest = manifest

    def append(self, items: Iterable[tuple[str, np.ndarray, np.ndarray, int]]) -> list[str]:
        """Index fingerprints given as (content hash, hashes, times, n_frames); content already
        indexed is skipped. All of them become one new generation, committed at once, then
        merged size-tiered. Returns the content hashes added."""
        with self._writer():
            manifest = json.loads(json.dumps(self.manifest))
            entries = manifest["entries"]
            next_id = int(manifest["next_id"])
            chunks: list[list[np.ndarray]] = [[] for _ in range(N_BUCKETS)]
            added: list[str] = []
            for content_hash, hashes, times, n_frames in items:
                if content_hash in entries:
                    continue
                for b, rows in enumerate(bucket_rows(next_id, hashes, times)):
                    if rows.shape[1]:
                        chunks[b].append(rows)
                entries[content_hash] = [next_id, int(n_frames), int(np.size(hashes))]
                added.append(content_hash)
                next_id += 1
            if not added:
                return []
            generation = int(manifest["next_generation"])
            sizes = []
            for b in range(N_BUCKETS):
                sizes.append(self._write_bucket(generation, b, sorted_postings(chunks[b])))
                chunks[b] = []
            manifest["generations"].append({"id": generation, "sizes": sizes})
            manifest["next_generation"] = generation + 1
            manifest["next_id"] = next_id
            self._commit(manifest)
            self._merge_tiers()
            return added

    def _merge_tiers(self) -> None:
        """Merge the newest generations while the newest is ≥ 1/TIER of the one before."""
        gens = self.manifest["generations"]
        take, newest = 1, sum(gens[-1]["sizes"]) if gens else 0
        while take < len(gens) and TIER * newest >= sum(gens[-take - 1]["sizes"]):
            newest += sum(gens[-take - 1]["sizes"])
            take += 1
        if take > 1:
            self._merge(gens[-take:])

    def compact(self) -> None:
        """Merge every generation into one (what a merge would reach eventually)."""
        with self._writer():
            if len(self.manifest["generations"]) > 1:
                self._merge(self.manifest["generations"])

    def _merge(self, merged: list[dict[str, Any]]) -> None:
        """Replace ``merged`` (the newest generations, in order) by one generation."""
        manifest = json.loads(json.dumps(self.manifest))
        generation = int(manifest["next_generation"])
        sizes = []
        for b in range(N_BUCKETS):
            arrays = [
                np.load(
                    io.BytesIO(self.fs.cat_file(self._bucket_path(g["id"], b))), allow_pickle=False
                )
                for g in merged
                if g["sizes"][b]
            ]
            sizes.append(self._write_bucket(generation, b, sorted_postings(arrays)))
        ids = {g["id"] for g in merged}
        manifest["generations"] = [g for g in manifest["generations"] if g["id"] not in ids]
        manifest["generations"].append({"id": generation, "sizes": sizes})
        manifest["next_generation"] = generation + 1
        self._commit(manifest)
        for g in ids:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm(f"{self.base}/postings/g{g:06d}", recursive=True)
