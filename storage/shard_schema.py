"""The Parquet shard contract: schema, float16 codec, manifest; shared by writer and reader.

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

The writer is :mod:`storage.shard_writer`, the reader :mod:`storage.shard_reader`, the split
policy :mod:`storage.splits`.

Paths may be local or any fsspec URL (``s3://...``); writes go through
:func:`core.atomic.atomic_write`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa

from vocalmine.core.stft import STFTPreset, preset_to_dict

SCHEMA_VERSION = 1
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


def to_half(value: np.ndarray) -> np.ndarray:
    """The float16 magnitudes a shard stores (a float16 array is returned as it is).

    Values beyond float16's range become ``inf``, which
    :class:`storage.shard_writer.ShardWriter` refuses.
    """
    value = np.asarray(value)
    if value.dtype == np.float16:
        return value
    with np.errstate(over="ignore"):
        return value.astype(np.float16)


def all_finite_half(value: np.ndarray) -> bool:
    """True when no element of a float16 array is inf or NaN (all-ones exponent bits)."""
    exponent = np.ascontiguousarray(value).view(np.uint16) & np.uint16(0x7C00)
    return not (exponent == np.uint16(0x7C00)).any()


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
        "vocalmine.preset": json.dumps(preset_to_dict(preset)),
    }
    return pa.schema(fields, metadata=metadata)


def now_iso() -> str:
    """The current UTC time, ISO 8601 to the second (manifest timestamps)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def open_filesystem(root: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem of a local path or URL, and the path inside it."""
    fs, path = fsspec.core.url_to_fs(str(root))
    return fs, path.rstrip("/")


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
