"""The library builder writes what its manifest says: every nuisance is measurable in the files.

Offsets are measured back by cross-correlating the decoded instrumental with the accompaniment
stem, gains by least squares, codecs/rates/bitrates by probing headers and tags by reading them.
Songs are short (20–25 s synthetic, a few MIR-1K songs, two MUSDB previews).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import typer
from scipy.signal import correlate
from typer.testing import CliRunner

from flows.library import library_build_command
from mining.audio import AudioError, load_audio, probe, read_tags, resample
from mining.library_builder import LibraryBuildError, build_library
from mining.scan import parse_filename

SHARED = Path(__file__).parents[1] / ".." / "shared" / "data"
PROBED_CODEC = {"mp3": "mp3", "flac": "flac", "wav": "wave"}


def _hashes(*roots: Path) -> dict[str, str]:
    return {
        f"{i}/{p.relative_to(root)}": hashlib.sha256(p.read_bytes()).hexdigest()
        for i, root in enumerate(roots)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _build(tmp: Path, source: str, **kwargs) -> tuple[Path, Path, dict]:
    lib, truth = tmp / "lib", tmp / "truth"
    manifest = build_library(source, lib, truth=truth, data_root=SHARED, **kwargs)
    return lib, truth, manifest


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    return _build(
        tmp_path_factory.mktemp("synthetic"), "synthetic", count=8, seed=5, duration_range=(20, 25)
    )


@pytest.fixture(scope="module")
def mir1k(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    if not (SHARED / "mir1k").is_dir():
        pytest.skip(f"MIR-1K clips not found at {SHARED / 'mir1k'}")
    return _build(tmp_path_factory.mktemp("mir1k"), "mir1k", count=4, seed=2)


@pytest.fixture(scope="module")
def musdb(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    if not (SHARED / "musdb18-7" / "test").is_dir() or shutil.which("ffmpeg") is None:
        pytest.skip("MUSDB18-7 previews or ffmpeg not available")
    return _build(tmp_path_factory.mktemp("musdb"), "musdb", count=2, seed=0)


def _check_alignment_and_gain(lib: Path, truth: Path, manifest: dict) -> int:
    """Measure every aligned instrumental against its stem; returns how many were checked."""
    checked = 0
    for song in manifest["songs"]:
        inst = song["instrumental"]
        if (
            not inst
            or not song["stems"]
            or inst["content"]
            not in (
                "accompaniment",
                "accompaniment_extended",
            )
        ):
            continue
        sr_i = inst["sample_rate"]
        decoded, sr = load_audio(lib / inst["path"])
        assert sr == sr_i
        stem, sr_o = load_audio(truth / song["stems"]["accompaniment"])
        assert sr_o == song["stems"]["sample_rate"] == song["original"]["sample_rate"]
        stem = resample(stem, sr_o, sr_i)
        a, b = decoded.mean(axis=0), stem.mean(axis=0)
        lag = int(np.argmax(correlate(a, b, mode="full", method="fft"))) - (b.size - 1)
        expected_lag = inst["offset_samples"] + inst["codec_delay_samples"]
        assert abs(lag - expected_lag) <= 3, (song["id"], lag, expected_lag)
        start = expected_lag
        lo, hi = max(0, -start), min(b.size, a.size - start)
        ref, got = b[lo:hi].astype(np.float64), a[lo + start : hi + start].astype(np.float64)
        gain_db = 20 * np.log10((ref @ got) / (ref @ ref))
        assert gain_db == pytest.approx(inst["gain_db"] + inst["codec_gain_db"], abs=0.5)
        assert gain_db == pytest.approx(inst["gain_db"], abs=0.5)
        checked += 1
    return checked


def _check_files(lib: Path, manifest: dict) -> None:
    """Codec, rate, bitrate, channels, duration and tags read back as the manifest says."""
    for song in manifest["songs"]:
        for facts in (song["original"], song["instrumental"]):
            if not facts:
                continue
            path = lib / facts["path"]
            info = probe(path)
            assert info.codec == PROBED_CODEC[facts["codec"]]
            assert info.sample_rate == facts["sample_rate"]
            assert info.channels == facts["channels"]
            assert info.duration_s == pytest.approx(
                facts["duration_s"], abs=0.2
            )  # MP3 frame padding
            if facts["codec"] == "mp3":
                assert info.bitrate_kbps == facts["bitrate_kbps"]
                assert facts["sample_rate"] > 24000 or facts["bitrate_kbps"] <= 160
            if facts["tagged"]:
                assert read_tags(path) == facts["tags"]
            else:
                assert read_tags(path) == {}
                assert parse_filename(path)["artist"] == song["artist"]


def test_every_decoy_kind_appears_once_songs_allow(synthetic) -> None:
    _, _, manifest = synthetic
    kinds = {d["kind"] for d in manifest["decoys"]}
    assert kinds >= {
        "duration_mismatch",
        "same_audio",
        "remix",
        "lone_instrumental",
        "too_long",
        "original_only",
        "oddly_named",
        "duplicate",
        "corrupt",
    }
    expected = {s["kind"]: s["expected"] for s in manifest["songs"]}
    assert expected["remix"] == "fingerprint_mismatch"
    assert expected["lone_instrumental"] == "no_counterpart"
    odd = next(s for s in manifest["songs"] if s["kind"] == "oddly_named")
    assert (odd["expected"], odd["discovery"]) == ("pair", "fingerprint")
    assert odd["instrumental"]["title_variant"] is None


def test_synthetic_offsets_and_gains_measure_back(synthetic) -> None:
    lib, truth, manifest = synthetic
    assert _check_alignment_and_gain(lib, truth, manifest) >= 3


def test_synthetic_files_probe_back_with_their_tags(synthetic) -> None:
    lib, _, manifest = synthetic
    _check_files(lib, manifest)


def test_original_is_the_sum_of_its_stems(synthetic) -> None:
    lib, truth, manifest = synthetic
    song = next(s for s in manifest["songs"] if s["kind"] == "pair")
    mix, _ = load_audio(lib / song["original"]["path"])
    delay = song["original"]["codec_delay_samples"]
    voc, _ = load_audio(truth / song["stems"]["vocals"])
    acc, _ = load_audio(truth / song["stems"]["accompaniment"])
    ref = voc + acc
    got = mix[:, delay : delay + ref.shape[1]]
    err = np.sum((got - ref[:, : got.shape[1]]) ** 2) / np.sum(ref**2)
    assert 10 * np.log10(1 / err) > 15


def test_decoy_files_are_what_they_claim(synthetic) -> None:
    lib, _, manifest = synthetic
    for item in manifest["corrupt"]:
        with pytest.raises(AudioError):
            load_audio(lib / item["path"])
    dup = next(d for d in manifest["decoys"] if d["kind"] == "duplicate")
    copy, original = (lib / p for p in dup["paths"])
    assert copy != original and copy.read_bytes() == original.read_bytes()
    songs = {s["kind"]: s for s in manifest["songs"]}
    longer = songs["duration_mismatch"]
    diff = longer["instrumental"]["duration_s"] - longer["original"]["duration_s"]
    assert diff > manifest["thresholds"]["max_duration_diff_s"]
    assert longer["expected"] == "duration_mismatch"
    too_long = songs["too_long"]
    assert too_long["original"]["duration_s"] > manifest["thresholds"]["max_duration_s"]
    assert songs["same_audio"]["instrumental"]["content"] == "mix"
    assert songs["lone_instrumental"]["original"] is None
    assert songs["original_only"]["instrumental"] is None


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    first = _build(tmp_path / "a", "synthetic", count=3, seed=1, duration_range=(6, 8))
    second = _build(tmp_path / "b", "synthetic", count=3, seed=1, duration_range=(6, 8))
    other = _build(tmp_path / "c", "synthetic", count=3, seed=2, duration_range=(6, 8))
    assert first[2] == second[2]
    assert _hashes(first[0], first[1]) == _hashes(second[0], second[1])
    assert first[2]["songs"] != other[2]["songs"]


def test_mir1k_library_measures_back(mir1k) -> None:
    lib, truth, manifest = mir1k
    assert manifest["count"] == 4
    assert all(s["source_key"].startswith("mir1k:") for s in manifest["songs"])
    _check_files(lib, manifest)
    assert _check_alignment_and_gain(lib, truth, manifest) >= 2


def test_musdb_library_measures_back(musdb) -> None:
    lib, truth, manifest = musdb
    assert [s["expected"] for s in manifest["songs"]] == ["pair", "pair"]
    _check_files(lib, manifest)
    assert _check_alignment_and_gain(lib, truth, manifest) == 2


def test_cli_builds_a_library_and_refuses_a_non_empty_output(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(library_build_command)
    out = tmp_path / "lib"
    args = ["--from", "synthetic", "--out", str(out), "--count", "2", "--duration", "6-8"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "lib.truth" / "manifest.json").read_text())
    assert manifest["count"] == 2 and "built 2 songs" in result.output
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "not empty" in again.output


def test_bad_arguments_fail_with_one_line_reasons(tmp_path: Path) -> None:
    with pytest.raises(LibraryBuildError, match="unknown source"):
        build_library("cd", tmp_path / "x", data_root=SHARED)
    with pytest.raises(LibraryBuildError, match="MIN <= MAX"):
        build_library("synthetic", tmp_path / "x", duration_range=(30, 10))
    with pytest.raises(LibraryBuildError, match="no MIR-1K clips"):
        build_library("mir1k", tmp_path / "x", data_root=tmp_path)
