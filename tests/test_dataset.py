"""The shard-streaming dataset: exactly-once delivery, normalisation, shuffling, exact resume."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader

from tests.test_shards import TINY, make_segments
from vocalmine.storage.shard_writer import ShardWriter
from vocalmine.training.augment import pitch_shift, time_stretch
from vocalmine.training.config import AugmentConfig
from vocalmine.training.dataset import ShardDataset, shuffle_order
from vocalmine.training.trainer import LOADER_CONTEXT


def _context(workers: int) -> dict:
    """Start loader workers the way the trainer does."""
    return {"multiprocessing_context": LOADER_CONTEXT} if workers else {}


PAIRS = {pair: 1 + pair % 4 for pair in range(12)}  # 30 rows


@pytest.fixture
def shards(tmp_path: Path) -> str:
    """Twelve pairs in the train split, written in files of ~8 rows and row groups of 3."""
    with ShardWriter(str(tmp_path), "ds", TINY, rows_per_shard=8, rows_per_group=3) as writer:
        for pair, count in PAIRS.items():
            writer.write_pair(pair, make_segments(pair, count))
        writer.write_pair(100, make_segments(100, 4, split="valid"))
    return str(tmp_path)


ALL_ROWS = {(pair, index) for pair, count in PAIRS.items() for index in range(count)}


def keys(items: list[dict]) -> list[tuple[int, int]]:
    out = []
    for item in items:
        pairs, indices = item["pair_id"].reshape(-1), item["segment_index"].reshape(-1)
        out.extend(zip(pairs.tolist(), indices.tolist(), strict=True))
    return out


@pytest.mark.parametrize("workers", [0, 2])
def test_every_row_exactly_once_per_epoch_across_ranks_and_workers(
    shards: str, workers: int
) -> None:
    for epoch in (0, 1):
        seen: Counter = Counter()
        for rank in range(2):
            dataset = ShardDataset(shards, "ds", rank=rank, world_size=2, buffer_size=5)
            dataset.set_epoch(epoch)
            loader = DataLoader(dataset, batch_size=None, num_workers=workers, **_context(workers))
            seen.update(keys(list(loader)))
        assert set(seen) == ALL_ROWS
        assert max(seen.values()) == 1


def test_batches_cover_the_split_once_and_the_last_batch_is_partial(shards: str) -> None:
    batches = list(ShardDataset(shards, "ds", batch_size=4, shuffle=False))
    assert [len(b["pair_id"]) for b in batches] == [4] * 7 + [2]
    assert set(keys(batches)) == ALL_ROWS
    assert batches[0]["mix"].shape == (4, 1, 64, 32)
    assert batches[0]["targets"].shape == (4, 2, 1, 64, 32)


def test_shuffling_changes_with_the_epoch_and_is_reproducible(shards: str) -> None:
    def order(epoch: int) -> list[tuple[int, int]]:
        dataset = ShardDataset(shards, "ds", seed=3, buffer_size=8)
        dataset.set_epoch(epoch)
        return keys(list(dataset))

    assert order(0) == order(0)
    assert order(0) != order(1)
    assert sorted(order(0)) == sorted(order(1))
    plain = keys(list(ShardDataset(shards, "ds", shuffle=False)))
    assert order(0) != plain


def test_patches_are_normalised_by_the_mix_maximum(shards: str) -> None:
    sample = next(iter(ShardDataset(shards, "ds", shuffle=False)))
    raw = make_segments(0, 1)[0]
    peak = raw.mix.astype(np.float16).astype(np.float32).max()
    assert sample["mix"].max().item() == pytest.approx(1.0)
    assert sample["mix"].min().item() >= 0.0
    expected_vocals = raw.vocals.astype(np.float16).astype(np.float32) / peak
    np.testing.assert_allclose(sample["targets"][0].numpy(), expected_vocals, rtol=1e-6)
    expected_instrumental = raw.instrumental.astype(np.float16).astype(np.float32) / peak
    np.testing.assert_allclose(sample["targets"][1].numpy(), expected_instrumental, rtol=1e-6)


def test_normalise_false_gives_the_raw_magnitudes(shards: str) -> None:
    sample = next(iter(ShardDataset(shards, "ds", shuffle=False, normalise=False)))
    raw = make_segments(0, 1)[0]
    for got, column in [(sample["mix"], raw.mix), (sample["targets"][0], raw.vocals)]:
        expected = column.astype(np.float16).astype(np.float32)
        np.testing.assert_array_equal(got.numpy(), expected)
    assert sample["mix"].max().item() > 1.0


def test_quality_filter_drops_rows(shards: str) -> None:
    dataset = ShardDataset(shards, "ds", min_quality=0.5, shuffle=False)
    expected = {
        (s.pair_id, s.segment_index)
        for pair, count in PAIRS.items()
        for s in make_segments(pair, count)
        if s.quality >= 0.5
    }
    assert set(keys(list(dataset))) == expected
    assert dataset.num_rows() == len(expected)


@pytest.mark.parametrize("workers", [0, 2])
def test_resuming_at_a_batch_continues_the_stream_exactly(shards: str, workers: int) -> None:
    augment = AugmentConfig(p=0.5, gain=0.3, time_stretch=0.2, pitch_shift=0.2)

    def run(start: int, count: int) -> list[dict]:
        dataset = ShardDataset(
            shards, "ds", batch_size=4, repeat=True, buffer_size=6, augment=augment
        )
        dataset.start_batch = start
        loader = iter(
            DataLoader(dataset, batch_size=None, num_workers=workers, **_context(workers))
        )
        return [next(loader) for _ in range(count)]

    straight = run(0, 20)  # 80 samples: more than two passes over the 30 rows
    resumed = run(13, 7)
    for a, b in zip(straight[13:], resumed, strict=True):
        assert torch.equal(a["pair_id"], b["pair_id"])
        assert torch.equal(a["mix"], b["mix"])
        assert torch.equal(a["targets"], b["targets"])


def test_repeating_stream_keeps_the_exactly_once_property_per_pass(shards: str) -> None:
    dataset = ShardDataset(shards, "ds", repeat=True, buffer_size=4)
    stream = iter(dataset)
    first = keys([next(stream) for _ in range(30)])
    second = keys([next(stream) for _ in range(30)])
    assert set(first) == set(second) == ALL_ROWS
    assert first != second


def test_too_many_streams_for_the_row_groups_is_a_clear_error(shards: str) -> None:
    dataset = ShardDataset(shards, "ds", split="valid", repeat=True, rank=0, world_size=4)
    with pytest.raises(ValueError, match="fewer than the 4 loader streams"):
        next(iter(dataset))


def test_shuffle_buffer_is_a_permutation() -> None:
    keys_in = np.arange(100, dtype=np.int64)
    out = shuffle_order(keys_in, 10, np.random.default_rng(0))
    assert sorted(out.tolist()) == keys_in.tolist()
    assert out.tolist() != keys_in.tolist()
    # a buffer of 10 cannot move a key more than ~10 places earlier than it was read
    assert all(position >= key - 10 for position, key in enumerate(out.tolist()))


def test_augmentations_transform_mix_and_targets_alike() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((2, 64, 32)).astype(np.float32)
    assert time_stretch(x, 1.0) == pytest.approx(x)
    assert pitch_shift(x, 1.0) == pytest.approx(x)
    shifted = pitch_shift(x, 0.5)
    np.testing.assert_allclose(shifted[:, 32:], 0.0)  # halving the pitch empties the top half
    np.testing.assert_allclose(shifted[:, 10], x[:, 20])
    stretched = time_stretch(x, 2.0)
    assert stretched.shape == x.shape
    np.testing.assert_allclose(stretched[..., 15:17].mean(), x[..., 15:17].mean(), rtol=0.2)

    from vocalmine.training.augment import augment

    mix = x
    targets = np.stack([x * 0.25, x * 0.75])
    config = AugmentConfig(p=1.0, channel_swap=True, gain=0.3, time_stretch=0.3, pitch_shift=0.3)
    new_mix, new_targets = augment(mix, targets, config, np.random.default_rng(1))
    np.testing.assert_allclose(new_targets.sum(axis=0), new_mix, rtol=1e-5)
    assert not np.allclose(new_mix, mix)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    gain=st.floats(0.0, 0.5),
    stretch=st.floats(0.0, 0.5),
    shift=st.floats(0.0, 0.5),
    channels=st.sampled_from([1, 2]),
)
def test_augmentation_is_the_same_linear_map_on_mix_and_targets(
    seed: int, gain: float, stretch: float, shift: float, channels: int
) -> None:
    """Every transform is linear and shared, so mix = Σ targets survives, as does x ≥ 0."""
    from vocalmine.training.augment import augment

    rng = np.random.default_rng(seed)
    targets = rng.random((2, channels, 16, 12)).astype(np.float32)
    mix = targets.sum(axis=0)
    config = AugmentConfig(
        p=0.7, channel_swap=True, gain=gain, time_stretch=stretch, pitch_shift=shift
    )
    new_mix, new_targets = augment(mix, targets, config, np.random.default_rng(seed))
    assert new_mix.shape == mix.shape and new_targets.shape == targets.shape
    assert new_mix.min() >= 0.0 and new_targets.min() >= 0.0
    np.testing.assert_allclose(new_targets.sum(axis=0), new_mix, rtol=1e-5, atol=1e-6)
