"""Scanning a library: tags and file names, incremental re-scans, and bad files never stop it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from typer.testing import CliRunner

from vocalmine.cli import register
from vocalmine.core.audio import save_audio
from vocalmine.mining.scan import parse_filename, scan_library
from vocalmine.storage.catalog import Track, open_catalog

SR = 44100


def _tone(seconds: float = 2.0, freq: float = 440.0, channels: int = 2) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return np.tile(0.3 * np.sin(2 * np.pi * freq * t), (channels, 1)).astype(np.float32)


@pytest.fixture
def library(tmp_path: Path) -> Path:
    root = tmp_path / "library"
    save_audio(
        root / "Björk" / "Homogenic" / "05 Jóga.flac",
        _tone(),
        SR,
        tags={"title": "Jóga", "artist": "Björk", "album": "Homogenic"},
    )
    save_audio(
        root / "Björk" / "Homogenic" / "05 Jóga (Instrumental).mp3",
        _tone(freq=330),
        SR,
        bitrate_kbps=192,
        tags={"title": "Jóga", "artist": "Björk", "album": "Homogenic", "version": "Instrumental"},
    )
    save_audio(
        root / "untagged" / "01 Sigur Rós - Hoppípolla (Karaoke Version).wav", _tone(channels=1), SR
    )
    (root / "untagged" / "cover.jpg").write_bytes(b"\xff\xd8not audio but not pretending")
    return root


def _tracks(url: str) -> dict[str, Track]:
    catalog = open_catalog(url)
    with catalog.session() as session:
        rows = session.execute(select(Track)).scalars().all()
    catalog.dispose()
    return {Path(t.path).name: t for t in rows}


def test_scan_reads_tags_headers_and_hashes(library: Path, catalog_url: str) -> None:
    result = scan_library(library, open_catalog(catalog_url))
    assert (result.new, result.errors) == (3, {})
    tracks = _tracks(catalog_url)
    assert set(tracks) == {
        "05 Jóga.flac",
        "05 Jóga (Instrumental).mp3",
        "01 Sigur Rós - Hoppípolla (Karaoke Version).wav",
    }
    flac = tracks["05 Jóga.flac"]
    assert (flac.title, flac.artist, flac.album, flac.tag_source) == (
        "Jóga",
        "Björk",
        "Homogenic",
        "tags",
    )
    assert (flac.sample_rate, flac.channels, flac.codec) == (SR, 2, "flac")
    assert flac.duration_s == pytest.approx(2.0, abs=0.01)
    mp3 = tracks["05 Jóga (Instrumental).mp3"]
    assert (mp3.version, mp3.codec, mp3.bitrate_kbps) == ("Instrumental", "mp3", 192)
    wav = tracks["01 Sigur Rós - Hoppípolla (Karaoke Version).wav"]
    assert (wav.artist, wav.title, wav.version, wav.tag_source) == (
        "Sigur Rós",
        "Hoppípolla (Karaoke Version)",
        "Karaoke Version",
        "filename",
    )
    assert len({t.content_hash for t in tracks.values()}) == 3


def test_rescan_skips_unchanged_files_and_notices_changes(library: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    catalog = open_catalog(url)
    scan_library(library, catalog)
    again = scan_library(library, catalog)
    assert (again.new, again.updated, again.unchanged) == (0, 0, 3)

    flac = library / "Björk" / "Homogenic" / "05 Jóga.flac"
    os.utime(flac, (1_000_000, 1_000_000))
    wav = next((library / "untagged").glob("*.wav"))
    save_audio(wav, _tone(seconds=3.0, channels=1), SR)
    (library / "Björk" / "Homogenic" / "05 Jóga (Instrumental).mp3").unlink()
    third = scan_library(library, catalog)
    assert (third.new, third.updated, third.unchanged, third.missing) == (0, 1, 1, 1)
    tracks = _tracks(url)
    assert tracks["05 Jóga (Instrumental).mp3"].status == "missing"
    assert tracks[wav.name].duration_s == pytest.approx(3.0, abs=0.01)


def test_bad_files_are_recorded_with_a_reason_and_never_stop_the_scan(
    library: Path, tmp_path: Path
) -> None:
    bad = library / "bad"
    bad.mkdir()
    (bad / "empty.mp3").write_bytes(b"")
    (bad / "notes.flac").write_text("these are lyrics, not audio\n" * 50)
    good = library / "Björk" / "Homogenic" / "05 Jóga.flac"
    (bad / "truncated.flac").write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    wav = next((library / "untagged").glob("*.wav")).read_bytes()
    (bad / "truncated.wav").write_bytes(wav[: len(wav) // 4])
    (bad / "loop").symlink_to(library)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    result = scan_library(library, open_catalog(url))
    tracks = _tracks(url)
    assert tracks["empty.mp3"].error_reason == "zero_length"
    assert tracks["notes.flac"].error_reason in {"not_audio", "decode_error"}
    assert tracks["truncated.flac"].error_reason in {"truncated", "decode_error"}
    assert tracks["truncated.wav"].error_reason in {"truncated", "decode_error"}
    assert tracks["loop"].error_reason == "symlink_loop"
    for name in ("empty.mp3", "notes.flac", "truncated.flac", "truncated.wav"):
        assert tracks[name].status == "error"
        assert tracks[name].error_detail.startswith(str(bad / name))
        assert "\n" not in tracks[name].error_detail
    assert sum(1 for t in tracks.values() if t.status == "ok") == 3
    assert sum(result.errors.values()) == 5


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Artist - Title.mp3", {"artist": "Artist", "title": "Title"}),
        (
            "03. Sigur Rós - Hoppípolla (Instrumental).flac",
            {
                "artist": "Sigur Rós",
                "title": "Hoppípolla (Instrumental)",
                "version": "Instrumental",
            },
        ),
        (
            "12 - AC-DC - Back In Black [Karaoke Version].wav",
            {
                "artist": "AC-DC",
                "title": "Back In Black [Karaoke Version]",
                "version": "Karaoke Version",
            },
        ),
        (
            "宇多田ヒカル - First Love (Off Vocal).mp3",
            {"artist": "宇多田ヒカル", "title": "First Love (Off Vocal)", "version": "Off Vocal"},
        ),
        ("Untitled.wav", {"title": "Untitled"}),
    ],
)
def test_file_names_fall_back_to_artist_title_version(name: str, expected: dict) -> None:
    assert parse_filename(name) == expected


@given(st.text(min_size=1, max_size=40).filter(lambda s: "/" not in s and "\x00" not in s))
def test_file_name_parsing_never_fails_and_keeps_a_title(stem: str) -> None:
    parsed = parse_filename(f"{stem}.mp3")
    assert set(parsed) <= {"artist", "title", "version"}


def test_cli_scan_prints_a_summary(library: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(register(), ["scan", str(library), "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    assert "new" in result.output and "3" in result.output
    assert (tmp_path / "data" / "catalog.db").exists()
    missing = runner.invoke(register(), ["scan", str(tmp_path / "nope")])
    assert missing.exit_code == 2
