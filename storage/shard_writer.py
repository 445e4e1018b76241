"""Writes a Parquet shard dataset: part files renamed into place, then the manifest extended.

See :mod:`storage.shard_schema` for the layout and the consistency rules.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import threading
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vocalmine.core.atomic import atomic_write
from vocalmine.core.stft import STFTPreset, preset_from_dict, preset_to_dict
from vocalmine.storage.shard_schema import (
    MANIFEST,
    SCALAR_COLUMNS,
    SCHEMA_VERSION,
    TENSOR_COLUMNS,
    Segment,
    ShardError,
    all_finite_half,
    now_iso,
    open_filesystem,
    read_manifest,
    segment_shape,
    shard_schema,
    to_half,
)
from vocalmine.storage.splits import SPLITS

log = logging.getLogger(__name__)

ROW_GROUP_BYTES = 32 * 2**20
BUFFER_BYTES = 256 * 2**20


class ShardWriter:
    """Appends pairs' segments to a shard dataset; see the module docstring for the guarantees.

    Segments are buffered per split and flushed as one part file when ``rows_per_shard`` rows
    (or 256 MB) are waiting, always at a pair boundary, so all segments of a pair land in the
    same file at once. A pair counts as done only once the manifest lists its part file.
    One writer per dataset at a time; calls are thread-safe.
    """

    def __init__(
        self,
        root: str,
        dataset: str,
        preset: STFTPreset,
        *,
        rows_per_shard: int = 256,
        source_run: str | None = None,
        rows_per_group: int | None = None,
    ) -> None:
        if rows_per_shard < 1:
            raise ValueError(f"rows_per_shard must be >= 1, got {rows_per_shard}")
        self.fs, base = open_filesystem(root)
        self.root = str(root)
        self.dataset = dataset
        self.preset = preset
        self.rows_per_shard = rows_per_shard
        self.shape = segment_shape(preset)
        self.schema = shard_schema(preset)
        row_bytes = 2 * len(TENSOR_COLUMNS) * int(np.prod(self.shape))
        self.rows_per_group = rows_per_group or max(1, ROW_GROUP_BYTES // row_bytes)
        self._row_bytes = row_bytes
        self.dir = f"{base}/{dataset}"
        self.manifest_path = f"{self.dir}/{MANIFEST}"
        self._lock = threading.Lock()
        self._buffers: dict[str, list[Segment]] = {s: [] for s in SPLITS}
        self._buffered: set[int] = set()
        self.fs.makedirs(self.dir, exist_ok=True)
        if self.fs.exists(self.manifest_path):
            self.manifest = read_manifest(root, dataset)
            stored = preset_from_dict(self.manifest["preset"])
            if stored != preset:
                raise ShardError(
                    f"{self.manifest_path}: dataset was written with preset {stored.name} "
                    f"{preset_to_dict(stored)}, not {preset.name} {preset_to_dict(preset)}"
                )
        else:
            self.manifest = self._new_manifest()
        self._remove_leftovers()
        self._done = {p for shard in self.manifest["shards"] for p in shard["pairs"]}
        self._done.update(self.manifest["empty_pairs"])
        if source_run and source_run not in self.manifest["source_runs"]:
            self.manifest["source_runs"].append(source_run)
        self.manifest["source_run"] = source_run or self.manifest.get("source_run")

    def _remove_leftovers(self) -> None:
        """Delete temporary files that a killed writer left behind (never listed anywhere)."""
        leftovers = set(self.fs.glob(f"{self.dir}/.*.tmp")) | set(
            self.fs.glob(f"{self.dir}/*/.*.tmp")
        )
        for path in sorted(leftovers):
            self.fs.rm_file(path)
            log.info("removed leftover temporary file %s", path)

    def _new_manifest(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "dataset": self.dataset,
            "preset": preset_to_dict(self.preset),
            "shape": list(self.shape),
            "dtype": "float16",
            "columns": [*SCALAR_COLUMNS, *TENSOR_COLUMNS],
            "source_run": None,
            "source_runs": [],
            "created_at": now_iso(),
            "updated_at": now_iso(),
            "counts": {},
            "shards": [],
            "empty_pairs": [],
        }

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.close()

    def done_pairs(self) -> set[int]:
        """Pair ids already in the manifest: a re-run skips them."""
        with self._lock:
            return set(self._done)

    def write_pair(self, pair_id: int, segments: list[Segment]) -> None:
        """Queue all segments of one pair; a pair already written or queued is skipped.

        A pair with no segments (a song too short to cut) is recorded as done, with no rows.
        """
        checked = [self._check(pair_id, seg) for seg in segments]
        splits = {seg.split for seg in checked}
        if len(splits) > 1:
            raise ShardError(f"pair {pair_id}: segments span several splits {sorted(splits)}")
        with self._lock:
            if pair_id in self._done or pair_id in self._buffered:
                log.info("pair %s is already in %s; skipped", pair_id, self.manifest_path)
                return
            if not checked:
                self._done.add(pair_id)
                self.manifest["empty_pairs"].append(int(pair_id))
                self._write_manifest()
                return
            split = splits.pop()
            self._buffers[split].extend(checked)
            self._buffered.add(pair_id)
            buffered = self._buffers[split]
            if len(buffered) >= self.rows_per_shard or (
                len(buffered) * self._row_bytes >= BUFFER_BYTES
            ):
                self._flush(split)

    def flush(self) -> None:
        """Write every queued segment now."""
        with self._lock:
            for split in SPLITS:
                self._flush(split)

    def close(self) -> dict[str, Any]:
        """Flush and return the manifest."""
        self.flush()
        return json.loads(json.dumps(self.manifest))

    def _check(self, pair_id: int, seg: Segment) -> Segment:
        where = f"{self.dir}: pair {pair_id} segment {seg.segment_index}"
        if seg.pair_id != pair_id:
            raise ShardError(f"{where}: segment belongs to pair {seg.pair_id}")
        if seg.split not in SPLITS:
            raise ShardError(f"{where}: unknown split {seg.split!r} (expected one of {SPLITS})")
        arrays = {}
        for name in TENSOR_COLUMNS:
            value = np.asarray(getattr(seg, name))
            if value.shape != self.shape:
                raise ShardError(f"{where}: {name} has shape {value.shape}, expected {self.shape}")
            half = to_half(value)
            if not all_finite_half(half):
                raise ShardError(f"{where}: {name} has values that are not finite in float16")
            arrays[name] = half
        return Segment(
            pair_id=int(pair_id),
            segment_index=int(seg.segment_index),
            start_s=float(seg.start_s),
            artist=str(seg.artist or ""),
            split=seg.split,
            quality=float(seg.quality),
            **arrays,
        )

    def _table(self, segments: list[Segment]) -> pa.Table:
        size = int(np.prod(self.shape))
        columns: dict[str, pa.Array] = {
            "pair_id": pa.array([s.pair_id for s in segments], pa.int64()),
            "segment_index": pa.array([s.segment_index for s in segments], pa.int32()),
            "start_s": pa.array([s.start_s for s in segments], pa.float64()),
            "artist": pa.array([s.artist for s in segments], pa.string()),
            "split": pa.array([s.split for s in segments], pa.string()),
            "quality": pa.array([s.quality for s in segments], pa.float32()),
        }
        for name in TENSOR_COLUMNS:
            flat = np.stack([getattr(s, name) for s in segments]).reshape(-1)
            columns[name] = pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float16()), size)
        return pa.Table.from_pydict(columns, schema=self.schema)

    def _flush(self, split: str) -> None:
        segments = self._buffers[split]
        if not segments:
            return
        table = self._table(segments)
        sink = io.BytesIO()
        pq.write_table(
            table,
            sink,
            compression="zstd",
            row_group_size=self.rows_per_group,
            use_dictionary=["artist", "split"],
            write_statistics=list(SCALAR_COLUMNS),
            column_encoding={name: "BYTE_STREAM_SPLIT" for name in TENSOR_COLUMNS},
        )
        data = sink.getvalue()
        index = 1 + max(
            (s["index"] for s in self.manifest["shards"] if s["split"] == split), default=-1
        )
        relative = f"{split}/part-{index:05d}.parquet"
        self.fs.makedirs(f"{self.dir}/{split}", exist_ok=True)
        atomic_write(self.fs, f"{self.dir}/{relative}", data)
        pairs = sorted({s.pair_id for s in segments})
        self.manifest["shards"].append(
            {
                "path": relative,
                "split": split,
                "index": index,
                "rows": len(segments),
                "row_groups": -(-len(segments) // self.rows_per_group),
                "pairs": pairs,
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "created_at": now_iso(),
                "source_run": self.manifest.get("source_run"),
            }
        )
        self._write_manifest()
        self._done.update(pairs)
        self._buffered.difference_update(pairs)
        self._buffers[split] = []
        log.info("wrote %s (%d rows, %d pairs)", relative, len(segments), len(pairs))

    def _write_manifest(self) -> None:
        self.manifest["counts"] = _counts(self.manifest)
        self.manifest["updated_at"] = now_iso()
        data = json.dumps(self.manifest, indent=1).encode("utf-8")
        atomic_write(self.fs, self.manifest_path, data)


def _counts(manifest: dict[str, Any]) -> dict[str, Any]:
    splits: dict[str, dict[str, int]] = {}
    for shard in manifest["shards"]:
        entry = splits.setdefault(shard["split"], {"rows": 0, "pairs": 0, "shards": 0})
        entry["rows"] += shard["rows"]
        entry["pairs"] += len(shard["pairs"])
        entry["shards"] += 1
    return {
        "rows": sum(s["rows"] for s in splits.values()),
        "pairs": sum(s["pairs"] for s in splits.values()),
        "empty_pairs": len(manifest["empty_pairs"]),
        "shards": len(manifest["shards"]),
        "splits": splits,
    }
