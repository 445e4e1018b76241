"""Reads a Parquet shard dataset: only the part files its manifest lists, by row group.

See :mod:`storage.shard_schema` for the layout and the consistency rules.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from vocalmine.core.atomic import is_local
from vocalmine.core.stft import preset_from_dict
from vocalmine.storage.shard_schema import (
    TENSOR_COLUMNS,
    Segment,
    ShardError,
    open_filesystem,
    read_manifest,
)
from vocalmine.storage.splits import SPLITS


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
            if is_local(self._fsspec):
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
