"""Shard writer and reader: the Parquet contract of DESIGN.md."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vocalmine.core.stft import STFTPreset
from vocalmine.storage.shard_reader import ShardReader
from vocalmine.storage.shard_schema import (
    SCHEMA_VERSION,
    Segment,
    ShardError,
    read_manifest,
    resolve_dataset,
    to_half,
)
from vocalmine.storage.shard_writer import ShardWriter
from vocalmine.storage.splits import SPLITS, split_for_artist

TINY = STFTPreset("tiny", sample_rate=8192, channels=1, n_fft=128, hop=96, patch_frames=32)
STEREO = STFTPreset("tiny-stereo", sample_rate=8192, channels=2, n_fft=64, hop=48, patch_frames=16)


def make_segments(
    pair_id: int, count: int, preset: STFTPreset = TINY, split: str = "train", seed: int = 0
) -> list[Segment]:
    """Random magnitude patches whose vocals are the half-wave difference, as mining makes."""
    rng = np.random.default_rng([pair_id, seed])
    shape = (preset.channels, preset.bins, preset.patch_frames)
    segments = []
    for index in range(count):
        instrumental = rng.gamma(1.0, 2.0, shape).astype(np.float32)
        vocals_true = rng.gamma(0.5, 1.0, shape).astype(np.float32)
        mix = instrumental + vocals_true
        segments.append(
            Segment(
                pair_id=pair_id,
                segment_index=index,
                start_s=20.0 + index * preset.patch_seconds,
                artist=f"artist {pair_id % 3}",
                split=split,
                quality=float(rng.uniform()),
                mix=mix,
                instrumental=instrumental,
                vocals=np.maximum(mix - instrumental, 0.0),
            )
        )
    return segments


def test_rows_round_trip_bit_exactly_as_float16(tmp_path: Path) -> None:
    written = make_segments(7, 5) + make_segments(8, 3)
    for seg in written[5:]:  # as mining workers hand them over: already float16
        seg.mix, seg.instrumental, seg.vocals = (
            to_half(seg.mix),
            to_half(seg.instrumental),
            to_half(seg.vocals),
        )
    with ShardWriter(str(tmp_path), "ds", TINY, rows_per_shard=4) as writer:
        writer.write_pair(7, written[:5])
        writer.write_pair(8, written[5:])
    read = sorted(ShardReader(str(tmp_path), "ds").iter_segments(), key=lambda s: s.pair_id)
    assert [(s.pair_id, s.segment_index) for s in read] == [
        (s.pair_id, s.segment_index) for s in written
    ]
    for a, b in zip(written, read, strict=True):
        for name in ("mix", "instrumental", "vocals"):
            got = getattr(b, name)
            assert got.dtype == np.float16 and got.shape == (1, 64, 32)
            np.testing.assert_array_equal(
                got.view(np.uint16), getattr(a, name).astype(np.float16).view(np.uint16)
            )
        assert (b.artist, b.split, b.start_s) == (a.artist, a.split, a.start_s)
        assert b.quality == pytest.approx(a.quality, rel=1e-6)


def test_stereo_shape_and_schema_metadata(tmp_path: Path) -> None:
    with ShardWriter(str(tmp_path), "ds", STEREO) as writer:
        writer.write_pair(1, make_segments(1, 2, STEREO))
    part = tmp_path / "ds" / "train" / "part-00000.parquet"
    metadata = pq.read_schema(part).metadata
    assert json.loads(metadata[b"vocalmine.shape"]) == [2, 32, 16]
    assert metadata[b"vocalmine.dtype"] == b"float16"
    assert pq.ParquetFile(part).metadata.row_group(0).column(0).compression == "ZSTD"
    segment = next(ShardReader(str(tmp_path), "ds").iter_segments())
    assert segment.mix.shape == (2, 32, 16)


def test_manifest_has_version_preset_counts_source_run_and_checksums(tmp_path: Path) -> None:
    with ShardWriter(str(tmp_path), "ds", TINY, rows_per_shard=2, source_run="run-1") as writer:
        writer.write_pair(1, make_segments(1, 2, split="train"))
        writer.write_pair(2, make_segments(2, 3, split="valid"))
        writer.write_pair(3, [])
    manifest = read_manifest(str(tmp_path), "ds")
    assert manifest["schema_version"] == SCHEMA_VERSION
    assert manifest["preset"]["name"] == "tiny" and manifest["preset"]["n_fft"] == 128
    assert manifest["source_run"] == "run-1"
    assert manifest["counts"]["rows"] == 5 and manifest["counts"]["pairs"] == 2
    assert manifest["counts"]["empty_pairs"] == 1
    assert manifest["counts"]["splits"]["valid"] == {"rows": 3, "pairs": 1, "shards": 1}
    for shard in manifest["shards"]:
        assert len(shard["sha256"]) == 64
        assert (tmp_path / "ds" / shard["path"]).stat().st_size == shard["bytes"]
    assert ShardReader(str(tmp_path), "ds").verify() == []


def test_corrupted_file_fails_verification(tmp_path: Path) -> None:
    with ShardWriter(str(tmp_path), "ds", TINY) as writer:
        writer.write_pair(1, make_segments(1, 2))
    part = tmp_path / "ds" / "train" / "part-00000.parquet"
    part.write_bytes(part.read_bytes()[:-10] + b"0123456789")
    assert ShardReader(str(tmp_path), "ds").verify() == [f"{part}: checksum mismatch"]


def test_rewriting_a_pair_in_the_manifest_is_skipped(tmp_path: Path) -> None:
    with ShardWriter(str(tmp_path), "ds", TINY) as writer:
        writer.write_pair(1, make_segments(1, 3))
        writer.write_pair(1, make_segments(1, 3))  # queued already
    rerun = ShardWriter(str(tmp_path), "ds", TINY, source_run="run-2")
    assert rerun.done_pairs() == {1}
    rerun.write_pair(1, make_segments(1, 3))
    rerun.write_pair(2, make_segments(2, 1))
    manifest = rerun.close()
    assert manifest["counts"]["rows"] == 4
    assert manifest["source_runs"] == ["run-2"]
    keys = [(s.pair_id, s.segment_index) for s in ShardReader(str(tmp_path), "ds").iter_segments()]
    assert sorted(keys) == [(1, 0), (1, 1), (1, 2), (2, 0)]


def test_all_segments_of_a_pair_land_in_one_file(tmp_path: Path) -> None:
    with ShardWriter(str(tmp_path), "ds", TINY, rows_per_shard=4) as writer:
        for pair in range(5):
            writer.write_pair(pair, make_segments(pair, 3))
    manifest = read_manifest(str(tmp_path), "ds")
    owners = [shard["pairs"] for shard in manifest["shards"]]
    flat = [p for pairs in owners for p in pairs]
    assert sorted(flat) == list(range(5)) and len(flat) == len(set(flat))
    assert all(shard["rows"] == 3 * len(shard["pairs"]) for shard in manifest["shards"])


def _killed_writer(root: str) -> None:
    writer = ShardWriter(root, "ds", TINY, rows_per_shard=1000)
    writer.write_pair(1, make_segments(1, 2))
    writer.flush()
    writer.write_pair(2, make_segments(2, 2))
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_killed_write_leaves_no_partial_visible_shard(tmp_path: Path) -> None:
    process = mp.get_context("fork").Process(target=_killed_writer, args=(str(tmp_path),))
    process.start()
    process.join(60)
    assert process.exitcode == -signal.SIGKILL
    reader = ShardReader(str(tmp_path), "ds")
    assert reader.verify() == []
    assert {s.pair_id for s in reader.iter_segments()} == {1}
    assert ShardWriter(str(tmp_path), "ds", TINY).done_pairs() == {1}


def test_an_interrupted_rename_leaves_only_an_ignored_hidden_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ShardWriter(str(tmp_path), "ds", TINY) as writer:
        writer.write_pair(1, make_segments(1, 2))

    def crash(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    writer = ShardWriter(str(tmp_path), "ds", TINY)
    writer.write_pair(2, make_segments(2, 2))
    with pytest.raises(KeyboardInterrupt):
        writer.flush()
    monkeypatch.undo()
    names = {p.name for p in (tmp_path / "ds" / "train").iterdir()}
    assert "part-00000.parquet" in names
    assert all(n.startswith(".") for n in names - {"part-00000.parquet"})
    assert {s.pair_id for s in ShardReader(str(tmp_path), "ds").iter_segments()} == {1}
    ShardWriter(str(tmp_path), "ds", TINY)  # the next writer removes the leftovers
    assert [p.name for p in (tmp_path / "ds" / "train").iterdir()] == ["part-00000.parquet"]


def test_reader_filters_by_split_and_quality(tmp_path: Path) -> None:
    with ShardWriter(str(tmp_path), "ds", TINY) as writer:
        writer.write_pair(1, make_segments(1, 6, split="train"))
        writer.write_pair(2, make_segments(2, 4, split="test"))
    train = ShardReader(str(tmp_path), "ds", split="train", min_quality=0.5)
    expected = [s for s in make_segments(1, 6) if s.quality >= 0.5]
    got = list(train.iter_segments())
    assert [s.segment_index for s in got] == [s.segment_index for s in expected]
    assert train.count_rows() == len(expected)
    assert ShardReader(str(tmp_path), "ds", split=["test"]).count_rows() == 4


def test_bad_input_names_the_pair_and_the_reason(tmp_path: Path) -> None:
    writer = ShardWriter(str(tmp_path), "ds", TINY)
    wrong = make_segments(1, 1)
    wrong[0].mix = wrong[0].mix[:, :10]
    with pytest.raises(ShardError, match=r"pair 1 segment 0: mix has shape \(1, 10, 32\)"):
        writer.write_pair(1, wrong)
    loud = make_segments(1, 1)
    loud[0].vocals[0, 0, 0] = 1e6
    with pytest.raises(ShardError, match="not finite in float16"):
        writer.write_pair(1, loud)
    half_nan = make_segments(1, 1)
    half_nan[0].mix = half_nan[0].mix.astype(np.float16)
    half_nan[0].mix[0, 3, 4] = np.nan
    with pytest.raises(ShardError, match="mix has values that are not finite"):
        writer.write_pair(1, half_nan)
    with pytest.raises(ShardError, match="preset"):
        writer.write_pair(2, make_segments(2, 1))
        writer.close()
        ShardWriter(str(tmp_path), "ds", STEREO)
    with pytest.raises(ShardError, match="no shard manifest"):
        read_manifest(str(tmp_path), "missing")


def test_resolve_dataset_accepts_the_dataset_folder(tmp_path: Path) -> None:
    with ShardWriter(str(tmp_path), "ds", TINY) as writer:
        writer.write_pair(1, make_segments(1, 1))
    assert resolve_dataset(str(tmp_path / "ds")) == (str(tmp_path), "ds")
    assert resolve_dataset(str(tmp_path), "ds") == (str(tmp_path), "ds")
    with pytest.raises(ShardError, match="no manifest.json"):
        resolve_dataset(str(tmp_path))


@settings(max_examples=50, deadline=None)
@given(st.text(min_size=1, max_size=30))
def test_split_is_stable_and_ignores_case_and_accents(artist: str) -> None:
    split = split_for_artist(artist)
    assert split in SPLITS
    assert split_for_artist(artist.upper()) == split_for_artist(artist.lower())
    assert split_for_artist(f"  {artist}  ") == split


def test_split_fractions_are_respected_roughly() -> None:
    splits = [split_for_artist(f"artist {i}") for i in range(4000)]
    assert splits.count("train") / 4000 == pytest.approx(0.8, abs=0.03)
    assert splits.count("valid") / 4000 == pytest.approx(0.1, abs=0.03)
    assert split_for_artist("Beyoncé") == split_for_artist("beyonce")
