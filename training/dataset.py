"""Streams training patches out of the Parquet shards, for any number of DDP ranks and loader
workers, with a shuffle buffer, and resumable at an exact batch.

The unit of work is one row group (storage.shard_reader.RowGroup). For pass ``p`` over the data,
the row groups are permuted with a seed derived from ``(seed, p)`` and dealt round-robin to
the ``world_size × num_workers`` streams, so every row is read by exactly one stream per pass.
Each stream then runs its rows through a shuffle buffer.

The buffer is simulated on row *keys* first (cheap integers) and only then filled with data,
row group by row group, keeping in memory only rows that are still to be emitted. That makes
resuming exact and cheap: skipping the first ``n`` rows of a pass means not emitting them, and
a row group whose rows were all emitted is never read again. Augmentation randomness is drawn
per row position from ``(seed, pass, stream, position)``, so it too replays exactly.

Each patch is normalised as the paper says (magnitudes to [0, 1]): mix and targets are divided
by the maximum of the mix patch; ``normalise=False`` keeps the raw magnitudes (for models whose
``input_scaling`` is ``"raw"``, such as Spleeter's). Targets are stacked in
:data:`training.models.SOURCES` order: vocals, then accompaniment (the instrumental column).

With ``batch_size`` set, the dataset yields ready batches (use ``DataLoader(batch_size=None)``);
a DataLoader takes batches from its workers round-robin, which is what ``start_batch`` relies
on to know how many batches each worker had already produced.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import IterableDataset, get_worker_info

from vocalmine.storage.shard_reader import RowGroup, ShardReader
from vocalmine.training.augment import augment
from vocalmine.training.config import AugmentConfig

KEY_SHIFT = 32
COLUMNS = ("pair_id", "segment_index", "mix", "instrumental", "vocals")


def normalise_patch(mix: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Divide the mix and its targets by the mix patch maximum (silent patches stay zero)."""
    peak = float(mix.max())
    if peak <= 0.0:
        return mix, targets
    scale = np.float32(1.0 / peak)
    return mix * scale, targets * scale


def shuffle_order(keys: np.ndarray, buffer_size: int, rng: np.random.Generator) -> np.ndarray:
    """The order a shuffle buffer of ``buffer_size`` emits ``keys`` read in order.

    Classic streaming shuffle: fill the buffer, then for each new key emit a random buffered
    one and put the new key in its place; finally emit what is left in random order.
    """
    if buffer_size <= 1 or len(keys) <= 1:
        return keys.copy()
    out = np.empty_like(keys)
    buffer = list(keys[:buffer_size])
    n = 0
    picks = rng.integers(0, len(buffer), size=max(0, len(keys) - len(buffer)))
    for key, pick in zip(keys[len(buffer) :], picks, strict=True):
        out[n] = buffer[pick]
        buffer[pick] = key
        n += 1
    out[n:] = np.asarray(buffer, dtype=keys.dtype)[rng.permutation(len(buffer))]
    return out


class ShardDataset(IterableDataset):
    """Training or validation patches of one split, as ``{"mix", "targets", "pair_id",
    "segment_index"}`` (torch tensors; stacked into batches when ``batch_size`` is set).

    ``repeat=True`` streams pass after pass (for step-based training); ``repeat=False`` stops
    after the pass selected with :meth:`set_epoch`. ``normalise=False`` yields raw magnitudes
    instead of patches divided by their mix's peak.
    """

    def __init__(
        self,
        root: str,
        dataset: str,
        split: str = "train",
        *,
        min_quality: float = 0.0,
        batch_size: int | None = None,
        shuffle: bool = True,
        buffer_size: int = 256,
        seed: int = 0,
        repeat: bool = False,
        augment: AugmentConfig | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        start_batch: int = 0,
        normalise: bool = True,
    ) -> None:
        super().__init__()
        self.reader = ShardReader(root, dataset, split=split, min_quality=min_quality)
        self.split = split
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.buffer_size = buffer_size
        self.seed = seed
        self.repeat = repeat
        self.augment = augment or AugmentConfig()
        self.rank = rank
        self.world_size = world_size
        self.start_batch = start_batch
        self.normalise = normalise
        self.epoch = 0
        self._groups: list[RowGroup] | None = None
        self._kept: dict[int, np.ndarray] = {}

    @property
    def preset(self) -> Any:
        """The STFT preset the shards were written with."""
        return self.reader.preset

    def set_epoch(self, epoch: int) -> None:
        """Select the pass (shuffle seed) to iterate, like DistributedSampler.set_epoch."""
        self.epoch = epoch

    def num_rows(self) -> int:
        """Rows of this split that pass the quality filter (one pass, all streams together)."""
        return self.reader.count_rows()

    def groups(self) -> list[RowGroup]:
        """All row groups of the split, in manifest order."""
        if self._groups is None:
            self._groups = self.reader.row_groups()
        return self._groups

    def kept_rows(self, unit: int) -> np.ndarray:
        """Row positions of row group ``unit`` that pass the quality filter."""
        if unit not in self._kept:
            group = self.groups()[unit]
            if self.reader.min_quality > 0:
                quality = self.reader.read_row_group(group, ["quality"], filtered=False)["quality"]
                self._kept[unit] = np.flatnonzero(quality >= self.reader.min_quality)
            else:
                self._kept[unit] = np.arange(group.rows)
        return self._kept[unit]

    def _worker(self) -> tuple[int, int]:
        """``(workers, worker)``, the worker index shifted by ``start_batch``.

        A DataLoader asks its workers for batches round-robin starting with worker 0; after
        resuming at batch ``k`` its worker ``w`` delivers global batch ``k + w (mod workers)``,
        so it must continue the stream of worker ``(w + k) % workers`` of the first run.
        """
        info = get_worker_info()
        if info is None:
            return 1, 0
        return info.num_workers, (info.id + self.start_batch) % info.num_workers

    def stream_layout(self) -> tuple[int, int]:
        """``(stream index, stream count)`` of the calling process and loader worker."""
        workers, worker = self._worker()
        if self.world_size is not None:
            world, rank = self.world_size, self.rank or 0
        elif dist.is_available() and dist.is_initialized():
            world, rank = dist.get_world_size(), dist.get_rank()
        else:
            world, rank = 1, 0
        return rank * workers + worker, world * workers

    def units_for(self, pass_index: int, stream: int, streams: int) -> list[int]:
        """Row groups that ``stream`` reads in pass ``pass_index``, in reading order."""
        count = len(self.groups())
        if self.shuffle:
            order = np.random.default_rng([self.seed, pass_index]).permutation(count)
        else:
            order = np.arange(count)
        return [int(u) for u in order[stream::streams]]

    def pass_order(self, pass_index: int, stream: int, streams: int) -> np.ndarray:
        """Keys ``unit << 32 | row`` in the order ``stream`` emits them during the pass."""
        units = self.units_for(pass_index, stream, streams)
        parts = [(np.int64(u) << KEY_SHIFT) | self.kept_rows(u) for u in units]
        keys = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
        if not self.shuffle:
            return keys
        rng = np.random.default_rng([self.seed, pass_index, stream, 1])
        return shuffle_order(keys, self.buffer_size, rng)

    def _emit(self, pass_index: int, stream: int, streams: int, start: int) -> Iterator[dict]:
        """Samples of one pass of one stream, from position ``start`` on."""
        order = self.pass_order(pass_index, stream, streams)[start:]
        if len(order) == 0:
            return
        pending: dict[int, int] = {}
        for key in order:
            unit = int(key >> KEY_SHIFT)
            pending[unit] = pending.get(unit, 0) + 1
        wanted = set(order.tolist())
        units = iter(self.units_for(pass_index, stream, streams))
        store: dict[int, dict[str, Any]] = {}
        for position, key in enumerate(order.tolist(), start=start):
            while key not in store:
                unit = next(units)
                if not pending.get(unit):
                    continue
                group = self.groups()[unit]
                data = self.reader.read_row_group(group, COLUMNS, filtered=False)
                for row in self.kept_rows(unit):
                    row_key = (unit << KEY_SHIFT) | int(row)
                    if row_key in wanted:
                        store[row_key] = {name: values[row].copy() for name, values in data.items()}
            yield self._sample(store.pop(key), pass_index, stream, position)

    def _sample(self, row: dict[str, Any], pass_index: int, stream: int, position: int) -> dict:
        mix = row["mix"].astype(np.float32)
        targets = np.stack([row["vocals"], row["instrumental"]]).astype(np.float32)
        if self.normalise:
            mix, targets = normalise_patch(mix, targets)
        if self.augment.enabled:
            rng = np.random.default_rng([self.seed, pass_index, stream, position, 2])
            mix, targets = augment(mix, targets, self.augment, rng)
        return {
            "mix": mix,
            "targets": targets,
            "pair_id": int(row["pair_id"]),
            "segment_index": int(row["segment_index"]),
        }

    def _start(self, stream: int, streams: int) -> tuple[int, int]:
        """``(pass, position)`` where this stream resumes after ``start_batch`` batches."""
        workers, worker = self._worker()
        produced = len(range(worker, self.start_batch, workers))
        skip = produced * (self.batch_size or 1)
        pass_index = self.epoch
        empty = 0
        while skip > 0 and self.repeat:
            size = len(self.pass_order(pass_index, stream, streams))
            if skip < size:
                break
            empty = empty + 1 if size == 0 else 0
            self._check_empty(empty)
            skip -= size
            pass_index += 1
        return pass_index, skip

    def _check_empty(self, consecutive: int) -> None:
        """Stop a repeating stream that can never yield instead of spinning forever."""
        if consecutive > (0 if not self.shuffle else 1000):
            raise ValueError(
                f"{self.reader.dir}: split {self.split!r} gives this loader stream no rows "
                "(quality filter too strict, or fewer row groups than streams)"
            )

    def total_rows(self) -> int:
        """Kept rows over all row groups."""
        return sum(len(self.kept_rows(u)) for u in range(len(self.groups())))

    def _samples(self) -> Iterator[dict]:
        stream, streams = self.stream_layout()
        if self.repeat and len(self.groups()) < streams:
            raise ValueError(
                f"{self.reader.dir}: split {self.split!r} has {len(self.groups())} row groups, "
                f"fewer than the {streams} loader streams (ranks × workers); use fewer workers "
                "or write shards with smaller row groups"
            )
        if self.repeat and self.total_rows() == 0:
            raise ValueError(f"{self.reader.dir}: split {self.split!r} has no rows to train on")
        pass_index, position = self._start(stream, streams)
        empty = 0
        while True:
            emitted = 0
            for sample in self._emit(pass_index, stream, streams, position):
                emitted += 1
                yield sample
            if not self.repeat:
                return
            empty = empty + 1 if emitted == 0 and position == 0 else 0
            self._check_empty(empty)
            pass_index, position = pass_index + 1, 0

    def __iter__(self) -> Iterator[dict]:
        if self.batch_size is None:
            for sample in self._samples():
                yield _to_torch(sample)
            return
        batch: list[dict] = []
        for sample in self._samples():
            batch.append(sample)
            if len(batch) == self.batch_size:
                yield collate(batch)
                batch = []
        if batch:
            yield collate(batch)


def _to_torch(sample: dict) -> dict:
    return {
        "mix": torch.from_numpy(sample["mix"]),
        "targets": torch.from_numpy(sample["targets"]),
        "pair_id": torch.tensor(sample["pair_id"]),
        "segment_index": torch.tensor(sample["segment_index"]),
    }


def collate(samples: list[dict]) -> dict[str, torch.Tensor]:
    """Stack samples into a batch of tensors."""
    return {
        "mix": torch.from_numpy(np.stack([s["mix"] for s in samples])),
        "targets": torch.from_numpy(np.stack([s["targets"] for s in samples])),
        "pair_id": torch.tensor([s["pair_id"] for s in samples]),
        "segment_index": torch.tensor([s["segment_index"] for s in samples]),
    }
