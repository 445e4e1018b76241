"""The library builder writes what its manifest says: every nuisance is measurable in the files.

Offsets are measured back by cross-correlating the decoded instrumental with the accompaniment
stem, gains by least squares, codecs/rates/bitrates by probing headers and tags by reading them.
Songs are short (35–40 s synthetic, long enough to have vocals for the a cappella decoys; a few
MIR-1K songs, two MUSDB previews). Both profiles are built: the default (lameenc MP3, FLAC, WAV in
``Artist/Album/NN Title``) and ``alt`` (ffmpeg's LAME MP3, AAC, Vorbis; flat or album-less
folders; other instrumental markers, offsets, gains and rates).
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

from vocalmine.cli.library import library_build_command
from vocalmine.core.audio import AudioError, load_audio, probe, read_tags, resample
from vocalmine.mining.scan import parse_filename
from vocalmine.mining.titles import parse_title
from vocalmine.testlib.builder import build_library
from vocalmine.testlib.decoys import FILE_DECOYS, _other_codec
from vocalmine.testlib.profiles import (
    ALT_A_CAPPELLA_TITLES,
    ALT_TITLE_VARIANTS,
    PROFILES,
    _choose_file,
)
from vocalmine.testlib.sources import LibraryBuildError

SHARED = Path(__file__).parents[1] / ".." / "shared" / "data"
PROBED_CODEC = {
    "mp3": "mp3",
    "flac": "flac",
    "wav": "wave",
    "mp3-ffmpeg": "mp3",
    "aac": "mp4a.40.2",
    "vorbis": "oggvorbis",
}


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
    # 11 songs: every song decoy once, one oddly named pair and four pairs for the file decoys.
    return _build(
        tmp_path_factory.mktemp("synthetic"), "synthetic", count=11, seed=5, duration_range=(35, 40)
    )


@pytest.fixture(scope="module")
def synthetic_alt(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    if shutil.which("ffmpeg") is None:
        pytest.skip("the alt profile encodes with ffmpeg, not installed")
    return _build(
        tmp_path_factory.mktemp("alt"),
        "synthetic",
        count=6,  # one true pair: the a cappella is its only file decoy (kept small for time)
        seed=1,
        duration_range=(35, 40),
        profile="alt",
    )


@pytest.fixture(scope="module")
def mir1k(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    if not (SHARED / "mir1k").is_dir():
        pytest.skip(f"MIR-1K clips not found at {SHARED / 'mir1k'}")
    return _build(tmp_path_factory.mktemp("mir1k"), "mir1k", count=4, seed=2)


@pytest.fixture(scope="module")
def mir1k_alt(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    if not (SHARED / "mir1k").is_dir() or shutil.which("ffmpeg") is None:
        pytest.skip(f"MIR-1K clips not found at {SHARED / 'mir1k'}, or no ffmpeg")
    return _build(tmp_path_factory.mktemp("mir1k_alt"), "mir1k", count=2, seed=6, profile="alt")


@pytest.fixture(scope="module")
def musdb(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    if not (SHARED / "musdb18-7" / "test").is_dir() or shutil.which("ffmpeg") is None:
        pytest.skip("MUSDB18-7 previews or ffmpeg not available")
    return _build(tmp_path_factory.mktemp("musdb"), "musdb", count=2, seed=0)


def _lag(a: np.ndarray, b: np.ndarray) -> int:
    """Samples by which mono ``a`` is late against mono ``b`` (cross-correlation peak)."""
    return int(np.argmax(correlate(a, b, mode="full", method="fft"))) - (b.size - 1)


def _check_alignment_and_gain(lib: Path, truth: Path, manifest: dict, tolerance: int = 3) -> int:
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
        lag = _lag(a, b)
        expected_lag = inst["offset_samples"] + inst["codec_delay_samples"]
        assert abs(lag - expected_lag) <= tolerance, (song["id"], lag, expected_lag)
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
        decoy_files = [
            d["file"] for d in manifest["decoys"] if d["song_id"] == song["id"] and "file" in d
        ]
        for facts in (song["original"], song["instrumental"], *decoy_files):
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
            if facts["codec"] in ("mp3", "mp3-ffmpeg"):
                assert info.bitrate_kbps == facts["bitrate_kbps"]
                assert facts["sample_rate"] > 24000 or facts["bitrate_kbps"] <= 160
            if facts["tagged"]:
                assert read_tags(path) == facts["tags"]
            else:
                assert read_tags(path) == {}
                assert parse_filename(path)["artist"] == song["artist"]


def _reference(lib: Path, truth: Path, song: dict, content: str) -> tuple[np.ndarray, int]:
    """What a file decoy holds, on the original's timeline: a stem, or the decoded original."""
    if content == "mix":
        orig = song["original"]
        decoded, sr = load_audio(lib / orig["path"])
        return decoded[:, orig["codec_delay_samples"] :], sr
    return load_audio(truth / song["stems"][content])


def _check_decoy_files(lib: Path, truth: Path, manifest: dict, tolerance: int = 2) -> dict:
    """Each file decoy against what it copies: offset, level and likeness; kind → correlation."""
    songs = {s["id"]: s for s in manifest["songs"]}
    likeness = {}
    for decoy in manifest["decoys"]:
        if "file" not in decoy:
            continue
        facts, song = decoy["file"], songs[decoy["song_id"]]
        side = "instrumental" if decoy["kind"] == "instrumental_copy" else "original"
        assert decoy["paths"] == [facts["path"], song[side]["path"]]
        assert all((lib / p).is_file() for p in decoy["paths"])
        decoded, sr = load_audio(lib / facts["path"])
        assert (sr, decoded.shape[0]) == (facts["sample_rate"], facts["channels"])
        ref, sr_ref = _reference(lib, truth, song, facts["content"])
        a, b = decoded.mean(axis=0), resample(ref, sr_ref, sr).mean(axis=0)
        if np.abs(b).max() < 1e-3:  # a song too short to have vocals: nothing to compare
            continue
        expected_lag = facts["offset_samples"] + facts["codec_delay_samples"]
        lag = _lag(a, b)
        assert abs(lag - expected_lag) <= tolerance, (decoy["kind"], lag, expected_lag)
        lo, hi = max(0, -expected_lag), min(b.size, a.size - expected_lag)
        ref_, got = b[lo:hi].astype(np.float64), a[lo + expected_lag : hi + expected_lag]
        got = got.astype(np.float64)
        gain_db = 20 * np.log10((ref_ @ got) / (ref_ @ ref_))
        want = facts["gain_db"] + facts["codec_gain_db"]
        if facts["content"] == "mix":
            want -= song["original"]["codec_gain_db"]
        assert gain_db == pytest.approx(want, abs=0.5), decoy["kind"]
        likeness[decoy["kind"]] = float(ref_ @ got / np.sqrt((ref_ @ ref_) * (got @ got)))
    return likeness


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


def test_file_decoys_sit_on_distinct_true_pairs(synthetic) -> None:
    lib, _, manifest = synthetic
    assert manifest["schema_version"] == 2 and manifest["profile"] == "default"
    songs = {s["id"]: s for s in manifest["songs"]}
    decoys = {d["kind"]: d for d in manifest["decoys"] if d["kind"] in FILE_DECOYS}
    assert sorted(decoys) == sorted(FILE_DECOYS)
    assert len({d["song_id"] for d in decoys.values()}) == 4
    for kind, d in decoys.items():
        song = songs[d["song_id"]]
        assert (song["kind"], song["expected"]) == ("pair", "pair")
        assert d["expected"] == ("mined_once" if kind.endswith("_copy") else "not_mined")
        assert d["acceptable_reasons"] and (lib / d["paths"][0]).is_file()
        assert d["paths"][0] not in d["paths"][1:]
    acap = decoys["a_cappella"]["file"]
    parsed = parse_title(acap["tags"]["title"])
    assert "a cappella" in parsed.other_versions and not parsed.is_instrumental
    assert parsed.base == parse_title(songs[decoys["a_cappella"]["song_id"]]["title"]).base
    assert acap["content"] == "vocals" and acap["tagged"]
    untagged = decoys["a_cappella_untagged"]["file"]
    name = untagged["tags"].get("title") or parse_filename(untagged["path"])["title"]
    assert parse_title(name).other_versions == () and not parse_title(name).is_instrumental
    for kind, side in (("mix_copy", "original"), ("instrumental_copy", "instrumental")):
        copy, of = decoys[kind]["file"], songs[decoys[kind]["song_id"]][side]
        assert (copy["codec"], copy["bitrate_kbps"]) != (of["codec"], of["bitrate_kbps"])
        assert abs(copy["offset_s"] - of.get("offset_s", 0.0)) <= 0.3 + 1e-6
    mix_copy = decoys["mix_copy"]["file"]
    assert mix_copy["tags"]["title"] == songs[decoys["mix_copy"]["song_id"]]["title"]


def test_file_decoys_are_the_audio_they_copy(synthetic) -> None:
    lib, truth, manifest = synthetic
    likeness = _check_decoy_files(lib, truth, manifest)
    assert set(likeness) == set(FILE_DECOYS)
    assert all(value > 0.99 for value in likeness.values()), likeness


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


def test_alt_markers_are_read_as_the_builder_means_them() -> None:
    for profile in PROFILES.values():
        for template, marker in profile.title_variants:
            for title in ("Golden Harbor", "Café Mañana"):
                parsed = parse_title(template.format(t=title))
                assert parsed.is_instrumental, template
                assert parsed.base == parse_title(title).base, template
                assert parse_title(f"{title} {marker}").is_instrumental, marker
        for template in profile.a_cappella_titles:
            parsed = parse_title(template.format(t="Golden Harbor"))
            assert "a cappella" in parsed.other_versions and not parsed.is_instrumental, template
            assert parsed.base == "golden harbor", template
    assert not set(ALT_TITLE_VARIANTS) & set(PROFILES["default"].title_variants)
    assert not set(ALT_A_CAPPELLA_TITLES) & set(PROFILES["default"].a_cappella_titles)


def test_alt_profile_uses_other_codecs_layouts_and_markers(synthetic_alt) -> None:
    lib, _, manifest = synthetic_alt
    assert manifest["profile"] == "alt"
    files = [f for s in manifest["songs"] for f in (s["original"], s["instrumental"]) if f]
    files += [d["file"] for d in manifest["decoys"] if "file" in d]
    codecs = {f["codec"] for f in files}
    assert codecs >= {"mp3-ffmpeg", "aac", "vorbis"} and "mp3" not in codecs
    assert {f["sample_rate"] for f in files} & {22050, 48000}
    offsets = [s["instrumental"]["offset_s"] for s in manifest["songs"] if s["instrumental"]]
    assert 2.0 < max(abs(o) for o in offsets) <= 3.0  # beyond the default's -0.5…2 s
    # one folder level: "<Artist> - <Album>/NN - <Artist> - <Title>" or "<Artist>/<Title>"
    for path in lib.rglob("*"):
        if path.is_file():
            assert len(path.relative_to(lib).parts) == 2, path
    for song in manifest["songs"]:
        inst = song["instrumental"]
        if song["expected"] != "pair" or not inst["title_variant"]:
            continue
        assert inst["title_variant"] in {t for t, _ in ALT_TITLE_VARIANTS}
        title = inst["tags"].get("title") or parse_filename(inst["path"])["title"]
        parsed = parse_title(title)
        assert parsed.is_instrumental and parsed.base == parse_title(song["title"]).base
    assert "a_cappella" in {d["kind"] for d in manifest["decoys"]}


def test_alt_profile_files_measure_back_within_two_samples(synthetic_alt) -> None:
    lib, truth, manifest = synthetic_alt
    _check_files(lib, manifest)
    assert _check_alignment_and_gain(lib, truth, manifest, tolerance=2) >= 3
    assert _check_decoy_files(lib, truth, manifest, tolerance=2)["a_cappella"] > 0.99


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_copies_change_codec_or_bitrate_never_rate_or_silence(profile: str) -> None:
    prof, rng = PROFILES[profile], np.random.default_rng(0)
    for _ in range(200):
        spec = _choose_file(rng, 44100, 2.0, 2.0, untagged_p=0.2, profile=prof)
        copy = _other_codec(rng, spec, prof)
        assert copy.codec in prof.codecs and copy.codec != "wav"
        assert (copy.codec, copy.bitrate_kbps, copy.quality) != (
            spec.codec,
            spec.bitrate_kbps,
            spec.quality,
        )
        assert (copy.sample_rate, copy.lead_s, copy.trail_s) == (
            spec.sample_rate,
            spec.lead_s,
            spec.trail_s,
        )


def test_alt_profile_is_deterministic(tmp_path: Path) -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("the alt profile encodes with ffmpeg, not installed")
    kw = {"count": 2, "seed": 4, "duration_range": (6, 8), "profile": "alt"}
    first = _build(tmp_path / "a", "synthetic", **kw)
    second = _build(tmp_path / "b", "synthetic", **kw)
    assert first[2] == second[2]
    assert _hashes(first[0], first[1]) == _hashes(second[0], second[1])
    assert any(d["kind"] == "a_cappella" for d in first[2]["decoys"])


def test_mir1k_library_measures_back(mir1k) -> None:
    lib, truth, manifest = mir1k
    assert manifest["count"] == 4
    assert all(s["source_key"].startswith("mir1k:") for s in manifest["songs"])
    _check_files(lib, manifest)
    assert _check_alignment_and_gain(lib, truth, manifest) >= 2
    # one true pair among four songs: it carries the a cappella, the first file decoy
    assert _check_decoy_files(lib, truth, manifest)["a_cappella"] > 0.99


def test_mir1k_alt_profile_measures_back(mir1k_alt) -> None:
    lib, truth, manifest = mir1k_alt
    assert manifest["profile"] == "alt"
    _check_files(lib, manifest)
    assert _check_alignment_and_gain(lib, truth, manifest, tolerance=2) >= 1
    assert _check_decoy_files(lib, truth, manifest)["a_cappella"] > 0.99


def test_musdb_library_measures_back(musdb) -> None:
    lib, truth, manifest = musdb
    assert [s["expected"] for s in manifest["songs"]] == ["pair", "pair"]
    _check_files(lib, manifest)
    assert _check_alignment_and_gain(lib, truth, manifest) == 2
    assert [d["kind"] for d in manifest["decoys"] if "file" in d] == ["a_cappella"]
    _check_decoy_files(lib, truth, manifest)


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
    with pytest.raises(LibraryBuildError, match="unknown profile"):
        build_library("synthetic", tmp_path / "x", profile="weird")


def test_cli_passes_the_profile(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(library_build_command)
    args = ["--from", "synthetic", "--out", str(tmp_path / "lib"), "--profile", "weird"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "unknown profile 'weird'" in result.output
