"""Parquet shards of training segments: the writer the mining flow fills, the reader training uses.

Layout (DESIGN.md, "Parquet shard contract")::

    <shard_root>/<dataset>/manifest.json
    <shard_root>/<dataset>/<split>/part-00000.parquet

One row per segment: ``pair_id``, ``segment_index``, ``start_s``, ``artist``, ``split``,
``quality`` and three magnitude spectrograms (``mix``, ``instrumental``, ``vocals``), each a
fixed-size list of float16 values whose shape ``(channels, bins, frames)`` is in the schema
metadata. Zstd compression, byte-stream-split encoding for the spectrograms (it groups the high
and low bytes of each float16, which compresses better), row groups of a few tens of MB so a
reader can stream them.

Consistency rests on two rules. A part file is written to a hidden temporary name in its
folder and renamed into place, and only then is the manifest (also written to a temporary name
and renamed) extended to list it. Readers read only the files the manifest lists, so a write
killed at any point leaves nothing visible; the next run simply redoes the pairs that were
not in the manifest. ``ShardWriter.done_pairs`` is that "already done" set: a pair goes into
exactly one part file, and re-writing a pair already listed is skipped.

Paths may be local or any fsspec URL (``s3://...``); local renames use ``os.replace``.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import threading
import unicodedata
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from vocalmine.core.stft import STFTPreset

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SPLITS: tuple[str, ...] = ("train", "valid", "test")
TENSOR_COLUMNS: tuple[str, ...] = ("mix", "instrumental", "vocals")
SCALAR_COLUMNS: tuple[str, ...] = (
    "pair_id",
    "segment_index",
    "start_s",
    "artist",
    "split",
    "quality",
)
MANIFEST = "manifest.json"
ROW_GROUP_BYTES = 32 * 2**20
BUFFER_BYTES = 256 * 2**20


class ShardError(ValueError):
    """Invalid shard input or a damaged dataset; the message names the file and the reason."""


@dataclass
class Segment:
    """One training example: a patch of the mix, the instrumental and the derived vocals."""

    pair_id: int
    segment_index: int
    start_s: float
    artist: str
    split: str
    quality: float
    mix: np.ndarray
    instrumental: np.ndarray
    vocals: np.ndarray


def normalise_artist(artist: str) -> str:
    """Case-, accent- and punctuation-insensitive artist key ("Beyoncé " == "beyonce")."""
    decomposed = unicodedata.normalize("NFKD", artist or "")
    letters = "".join(c for c in decomposed if not unicodedata.combining(c))
    words = "".join(c if c.isalnum() else " " for c in letters.casefold()).split()
    return " ".join(words)


def split_for_artist(artist: str, fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> str:
    """Stable split of an artist: a SHA-256 of the normalised name mapped onto ``fractions``.

    Every track of one artist lands in the same split, on every machine and every run.
    """
    if len(fractions) != len(SPLITS) or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError(f"split fractions must be three non-negative numbers, got {fractions}")
    digest = hashlib.sha256(normalise_artist(artist).encode("utf-8")).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64 * sum(fractions)
    cumulative = 0.0
    for split, fraction in zip(SPLITS, fractions, strict=True):
        cumulative += fraction
        if position < cumulative:
            return split
    return SPLITS[-1]


def to_half(value: np.ndarray) -> np.ndarray:
    """The float16 magnitudes a shard stores (a float16 array is returned as it is).

    Values beyond float16's range become ``inf``, which :class:`ShardWriter` refuses.
    """
    value = np.asarray(value)
    if value.dtype == np.float16:
        return value
    with np.errstate(over="ignore"):
        return value.astype(np.float16)


def _all_finite_half(value: np.ndarray) -> bool:
    """True when no element of a float16 array is inf or NaN (all-ones exponent bits)."""
    exponent = np.ascontiguousarray(value).view(np.uint16) & np.uint16(0x7C00)
    return not (exponent == np.uint16(0x7C00)).any()


def preset_from_dict(data: dict[str, Any]) -> STFTPreset:
    """The :class:`STFTPreset` stored in a manifest."""
    return STFTPreset(**{k: data[k] for k in STFTPreset.__dataclass_fields__})


def segment_shape(preset: STFTPreset) -> tuple[int, int, int]:
    """Shape of one spectrogram patch: ``(channels, bins, frames)``."""
    return (preset.channels, preset.bins, preset.patch_frames)


def shard_schema(preset: STFTPreset) -> pa.Schema:
    """Arrow schema of a shard; the tensor shape and preset ride in the schema metadata."""
    size = int(np.prod(segment_shape(preset)))
    tensor = pa.list_(pa.float16(), size)
    fields = [
        pa.field("pair_id", pa.int64(), nullable=False),
        pa.field("segment_index", pa.int32(), nullable=False),
        pa.field("start_s", pa.float64(), nullable=False),
        pa.field("artist", pa.string()),
        pa.field("split", pa.string(), nullable=False),
        pa.field("quality", pa.float32(), nullable=False),
        *(pa.field(name, tensor, nullable=False) for name in TENSOR_COLUMNS),
    ]
    metadata = {
        "vocalmine.schema_version": str(SCHEMA_VERSION),
        "vocalmine.shape": json.dumps(list(segment_shape(preset))),
        "vocalmine.dtype": "float16",
        "vocalmine.preset": json.dumps(asdict(preset)),
    }
    return pa.schema(fields, metadata=metadata)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def open_filesystem(root: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem of a local path or URL, and the path inside it."""
    fs, path = fsspec.core.url_to_fs(str(root))
    return fs, path.rstrip("/")


def _is_local(fs: fsspec.AbstractFileSystem) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocols or "local" in protocols


def atomic_write(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Write ``data`` to a hidden temporary file beside ``path``, then rename it into place."""
    folder, name = path.rsplit("/", 1)
    tmp = f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"
    if _is_local(fs):
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        return
    with fs.open(tmp, "wb") as handle:
        handle.write(data)
    fs.mv(tmp, path)


def read_manifest(root: str, dataset: str) -> dict[str, Any]:
    """The manifest of ``<root>/<dataset>``; :class:`ShardError` when missing or unreadable."""
    fs, base = open_filesystem(root)
    path = f"{base}/{dataset}/{MANIFEST}"
    try:
        with fs.open(path, "rb") as handle:
            manifest = json.loads(handle.read())
    except FileNotFoundError:
        raise ShardError(f"{path}: no shard manifest (mine the dataset first)") from None
    except (OSError, ValueError) as exc:
        raise ShardError(f"{path}: unreadable manifest ({exc})") from exc
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise ShardError(
            f"{path}: schema version {manifest.get('schema_version')} is not {SCHEMA_VERSION}"
        )
    return manifest


def manifest_summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest without the per-shard pair lists: small enough for a catalog row or a card."""
    summary = {k: v for k, v in manifest.items() if k not in ("shards", "empty_pairs")}
    summary["shards"] = [
        {k: v for k, v in shard.items() if k != "pairs"} for shard in manifest.get("shards", [])
    ]
    summary["sha256"] = hashlib.sha256(
        json.dumps(manifest, sort_keys=True).encode("utf-8")
    ).hexdigest()
    return summary


def resolve_dataset(path: str, dataset: str | None = None) -> tuple[str, str]:
    """``(root, dataset)`` from a dataset folder (holding manifest.json) or a root and a name."""
    if dataset:
        return str(path), dataset
    fs, base = open_filesystem(path)
    if not fs.exists(f"{base}/{MANIFEST}"):
        raise ShardError(f"{path}: no {MANIFEST} here; pass the dataset folder or a dataset name")
    text = str(path).rstrip("/")
    root, name = text.rsplit("/", 1) if "/" in text else (".", text)
    return root or "/", name


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
                    f"{asdict(stored)}, not {preset.name} {asdict(preset)}"
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
            "preset": asdict(self.preset),
            "shape": list(self.shape),
            "dtype": "float16",
            "columns": [*SCALAR_COLUMNS, *TENSOR_COLUMNS],
            "source_run": None,
            "source_runs": [],
            "created_at": _now(),
            "updated_at": _now(),
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
            if not _all_finite_half(half):
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
                "created_at": _now(),
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
        self.manifest["updated_at"] = _now()
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


@dataclass(frozen=True)
class RowGroup:
    """One row group of one part file: the unit that readers and loader workers share out."""

    path: str
    row_group: int
    rows: int


class ShardReader:
    """Reads a shard dataset through pyarrow.dataset: only files the manifest lists, optionally
    one or more splits, optionally only rows with ``quality >= min_quality``."""

    def __init__(
        self,
        root: str,
        dataset: str,
        *,
        split: str | Sequence[str] | None = None,
        min_quality: float = 0.0,
    ) -> None:
        self.root = str(root)
        self.dataset_name = dataset
        self.manifest = read_manifest(root, dataset)
        self.preset = preset_from_dict(self.manifest["preset"])
        self.shape = tuple(self.manifest["shape"])
        self.min_quality = float(min_quality)
        splits = (split,) if isinstance(split, str) else tuple(split or SPLITS)
        unknown = set(splits) - set(SPLITS)
        if unknown:
            raise ShardError(f"{root}/{dataset}: unknown split(s) {sorted(unknown)}")
        self.splits = splits
        fs, base = open_filesystem(root)
        self._fsspec = fs
        self.dir = f"{base}/{dataset}"
        self.shards = [s for s in self.manifest["shards"] if s["split"] in splits]
        self._pa_fs: pafs.FileSystem | None = None
        self._fragments: dict[str, ds.ParquetFileFragment] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_pa_fs"] = None
        state["_fragments"] = {}
        return state

    @property
    def filesystem(self) -> pafs.FileSystem:
        """The Arrow filesystem: native for local paths, fsspec-wrapped for anything else."""
        if self._pa_fs is None:
            if _is_local(self._fsspec):
                self._pa_fs = pafs.LocalFileSystem()
            else:
                self._pa_fs = pafs.PyFileSystem(pafs.FSSpecHandler(self._fsspec))
        return self._pa_fs

    @property
    def paths(self) -> list[str]:
        """Full paths of the part files read."""
        return [f"{self.dir}/{s['path']}" for s in self.shards]

    @property
    def filter(self) -> ds.Expression | None:
        """The row filter (quality), or None."""
        return ds.field("quality") >= self.min_quality if self.min_quality > 0 else None

    def to_dataset(self) -> ds.Dataset:
        """A pyarrow dataset over the listed part files."""
        return ds.dataset(self.paths, format="parquet", filesystem=self.filesystem)

    def _fragment(self, path: str) -> ds.ParquetFileFragment:
        if path not in self._fragments:
            self._fragments[path] = ds.ParquetFileFormat().make_fragment(path, self.filesystem)
        return self._fragments[path]

    def row_groups(self) -> list[RowGroup]:
        """Every row group of the listed files, in manifest order (before quality filtering)."""
        groups = []
        for path in self.paths:
            fragment = self._fragment(path)
            for info in fragment.row_groups:
                groups.append(RowGroup(path, info.id, info.num_rows))
        return groups

    def read_row_group(
        self, group: RowGroup, columns: Sequence[str] | None = None, *, filtered: bool = True
    ) -> dict[str, np.ndarray]:
        """Columns of one row group as numpy; spectrograms as float16 ``(n, C, bins, frames)``."""
        fragment = self._fragment(group.path).subset(row_group_ids=[group.row_group])
        try:
            table = fragment.to_table(
                columns=list(columns) if columns else None,
                filter=self.filter if filtered else None,
            )
        except (OSError, pa.ArrowInvalid) as exc:
            raise ShardError(
                f"{group.path}: cannot read row group {group.row_group} ({exc})"
            ) from exc
        return table_to_numpy(table, self.shape)

    def count_rows(self) -> int:
        """Rows that pass the filter."""
        if self.filter is None:
            return sum(s["rows"] for s in self.shards)
        return self.to_dataset().count_rows(filter=self.filter)

    def iter_segments(self) -> Iterator[Segment]:
        """Every row as a :class:`Segment` (float16 spectrograms), in storage order."""
        for group in self.row_groups():
            data = self.read_row_group(group)
            for i in range(len(data["pair_id"])):
                yield Segment(
                    pair_id=int(data["pair_id"][i]),
                    segment_index=int(data["segment_index"][i]),
                    start_s=float(data["start_s"][i]),
                    artist=str(data["artist"][i]),
                    split=str(data["split"][i]),
                    quality=float(data["quality"][i]),
                    **{name: data[name][i] for name in TENSOR_COLUMNS},
                )

    def verify(self) -> list[str]:
        """Problems found by checking every listed file's size and SHA-256 against the manifest."""
        problems = []
        for shard in self.shards:
            path = f"{self.dir}/{shard['path']}"
            try:
                with self._fsspec.open(path, "rb") as handle:
                    data = handle.read()
            except FileNotFoundError:
                problems.append(f"{path}: missing")
                continue
            if len(data) != shard["bytes"] or hashlib.sha256(data).hexdigest() != shard["sha256"]:
                problems.append(f"{path}: checksum mismatch")
        return problems


def table_to_numpy(table: pa.Table, shape: Iterable[int]) -> dict[str, np.ndarray]:
    """Arrow table to numpy columns; tensor columns reshaped to ``(rows, *shape)`` float16."""
    shape = tuple(shape)
    out: dict[str, np.ndarray] = {}
    for name in table.column_names:
        column = table.column(name)
        if name in TENSOR_COLUMNS:
            flat = column.combine_chunks().flatten().to_numpy(zero_copy_only=False)
            out[name] = flat.astype(np.float16, copy=False).reshape((table.num_rows, *shape))
        else:
            out[name] = column.to_numpy(zero_copy_only=False)
    return out
