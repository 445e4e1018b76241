"""The mine flow end to end on a small real-audio library (MIR-1K karaoke songs).

One library holds every case a data engineer meets: good pairs in several codecs with offsets
and gains, an instrumental with an extended outro, an over-long track, a "remix" whose audio is
another song, a mislabelled "instrumental" that is the mix (beside the song's real one), a lone
instrumental, a duplicate file, a corrupt file, an oddly named instrumental only fingerprints
can find, and a cappella versions, one tagged and one with a neutral name. The flow runs
twice; the second run must add nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from vocalmine.cli import register
from vocalmine.core.audio import load_audio, save_audio
from vocalmine.core.settings import get_settings
from vocalmine.flows.mine import configured_mine_flow
from vocalmine.storage.catalog import Pair, Rejection, Track, open_catalog
from vocalmine.storage.shard_schema import read_manifest

pytestmark = pytest.mark.slow
SR = 16000


def _song(mir1k: Path, name: str, clips: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(accompaniment, vocals) of the first clips of one MIR-1K song, joined."""
    paths = sorted(mir1k.glob(f"{name}_*.flac"))[:clips]
    parts = [load_audio(p)[0] for p in paths]
    audio = np.concatenate(parts, axis=1)
    return audio[0], audio[1]


def _write(root: Path, rel: str, audio: np.ndarray, artist: str, title: str) -> None:
    save_audio(
        root / rel,
        0.5 * np.atleast_2d(audio),
        SR,
        bitrate_kbps=128,
        tags={"artist": artist, "title": title},
    )


@pytest.fixture(scope="module")
def mined(mir1k_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("mine")
    lib = base / "library"
    names = [
        "amy_10",
        "amy_11",
        "leon_1",
        "yifen_1",
        "jmzen_1",
        "geniusturtle_1",
        "amy_12",
        "amy_13",
        "amy_14",
    ]
    available = [n for n in names if list(mir1k_dir.glob(f"{n}_*.flac"))]
    if len(available) < len(names):
        pytest.skip("MIR-1K clips of the expected songs are missing")
    songs = {n: _song(mir1k_dir, n) for n in available}
    rng = np.random.default_rng(3)
    for n in available[:2]:  # good pairs: FLAC original, MP3 instrumental, offset and gain
        acc, voc = songs[n]
        delay = int(rng.integers(SR // 10, SR))
        instr = np.concatenate([np.zeros(delay, np.float32), acc * 0.6])
        _write(lib, f"{n}/{n}.flac", acc + voc, n.split("_")[0], f"Song {n}")
        _write(
            lib, f"{n}/{n} (Instrumental).mp3", instr, n.split("_")[0], f"Song {n} (Instrumental)"
        )
    acc, voc = songs["leon_1"]  # extended outro: +8 s of accompaniment
    _write(lib, "leon/Mix.wav", acc + voc, "leon", "Night")
    longer = np.concatenate([acc, acc[: 8 * SR]])
    _write(
        lib,
        "leon/Night - Instrumental Version.flac",
        longer,
        "leon",
        "Night - Instrumental Version",
    )
    acc, voc = songs["yifen_1"]  # the "remix" instrumental is another song's accompaniment
    _write(lib, "yifen/Rain.flac", acc + voc, "yifen", "Rain")
    other = songs["amy_14"][0][: acc.size]
    _write(lib, "yifen/Rain (Karaoke Version).mp3", other, "yifen", "Rain [Karaoke Version]")
    acc, voc = songs["jmzen_1"]  # the "instrumental" is really the mix
    _write(lib, "jmzen/Sun.flac", acc + voc, "jmzen", "Sun")
    _write(lib, "jmzen/Sun (Off Vocal).mp3", acc + voc, "jmzen", "Sun (Off Vocal)")
    _write(lib, "jmzen/Sun (Karaoke).flac", acc, "jmzen", "Sun (Karaoke)")  # the real one
    acc, voc = songs["amy_11"]  # a cappella versions: one tagged, one with a neutral name
    _write(lib, "amy_11/Song amy_11 (A Cappella).flac", voc, "amy", "Song amy_11 (A Cappella)")
    acc, voc = songs["yifen_1"]
    _write(lib, "yifen/take 3.wav", np.concatenate([np.zeros(SR // 3, np.float32), voc]), "", "")
    acc, voc = songs["geniusturtle_1"]  # an oddly named instrumental, and an over-long song
    _write(lib, "gt/Wind.flac", acc + voc, "geniusturtle", "Wind")
    _write(lib, "gt/track07.wav", acc * 0.8, "geniusturtle", "track07")
    storm = songs["amy_13"][0]
    _write(lib, "gt/Storm (Instrumental).flac", storm, "nobody", "Storm (Instrumental)")
    acc, voc = songs["amy_12"]
    _write(lib, "gt/Long.flac", np.tile(acc + voc, 3), "geniusturtle", "Long Song")
    longer_instr = np.tile(acc, 3)
    _write(lib, "gt/Long (Instrumental).flac", longer_instr, "geniusturtle", "Long Song (Instr.)")
    (lib / "copies").mkdir()
    (lib / "copies" / "amy_10 copy.flac").write_bytes((lib / "amy_10" / "amy_10.flac").read_bytes())
    (lib / "copies" / "broken.flac").write_bytes(b"fLaC" + bytes(range(256)) * 20)

    config = base / "vocalmine.toml"
    config.write_text(
        f'data_dir = "{base / "data"}"\nsegment_skip_s = 0\nmax_duration_s = 60\ndask_workers = 1\n'
    )
    settings = get_settings(config)
    first = configured_mine_flow(settings)(str(lib), config=str(config))
    manifest_first = read_manifest(settings.shard_root, settings.dataset)
    second = configured_mine_flow(settings)(str(lib), config=str(config))
    return {
        "lib": lib,
        "settings": settings,
        "config": config,
        "first": first,
        "second": second,
        "manifest": manifest_first,
    }


def _all_pairs(settings) -> list[tuple[str, str, Pair]]:
    catalog = open_catalog(settings.catalog_url)
    with catalog.session() as session:
        tracks = {t.id: t for t in session.execute(select(Track)).scalars()}
        pairs = session.execute(select(Pair)).scalars().all()
    return [
        (Path(tracks[p.original_id].path).name, Path(tracks[p.instrumental_id].path).name, p)
        for p in pairs
    ]


def _pairs(settings) -> dict[str, Pair]:
    """Pairs by instrumental file name, for instrumentals that have a single pair."""
    by_instr: dict[str, list[Pair]] = {}
    for _, instr, pair in _all_pairs(settings):
        by_instr.setdefault(instr, []).append(pair)
    return {k: v[0] for k, v in by_instr.items() if len(v) == 1}


def _track_reasons(settings) -> dict[str, set[str]]:
    catalog = open_catalog(settings.catalog_url)
    with catalog.session() as session:
        tracks = {t.id: t for t in session.execute(select(Track)).scalars()}
        reasons: dict[str, set[str]] = {Path(t.path).name: set() for t in tracks.values()}
        for t in tracks.values():
            if t.error_reason:
                reasons[Path(t.path).name].add(t.error_reason)
        for r in session.execute(
            select(Rejection).where(Rejection.track_id.is_not(None))
        ).scalars():
            reasons[Path(tracks[r.track_id].path).name].add(r.reason)
    return reasons


def test_true_pairs_are_mined_into_shards(mined: dict) -> None:
    for name in ("amy_10 (Instrumental).mp3", "amy_11 (Instrumental).mp3"):
        mined_pairs = [
            p for _, i, p in _all_pairs(mined["settings"]) if i == name and p.status == "mined"
        ]
        assert len(mined_pairs) == 1, name
        pair = mined_pairs[0]
        assert pair.segments and pair.segments > 0
        assert pair.gain_db == pytest.approx(20 * np.log10(1 / 0.6), abs=0.6)
    manifest = mined["manifest"]
    assert manifest["counts"]["pairs"] >= 2
    shard_root = Path(mined["settings"].shard_root) / mined["settings"].dataset
    rows = sum(pq.read_metadata(p).num_rows for p in shard_root.glob("*/part-*.parquet"))
    assert rows == manifest["counts"]["rows"]


def test_each_decoy_is_rejected_with_its_reason(mined: dict) -> None:
    pairs = _pairs(mined["settings"])
    assert pairs["Night - Instrumental Version.flac"].reason == "duration_mismatch"
    assert pairs["Long (Instrumental).flac"].reason == "too_long"
    assert pairs["Rain (Karaoke Version).mp3"].reason == "fingerprint_mismatch"
    assert pairs["Sun (Off Vocal).mp3"].reason == "same_audio"
    reasons = _track_reasons(mined["settings"])
    assert "no_counterpart" in reasons["Storm (Instrumental).flac"]
    assert "duplicate" in reasons["amy_10.flac"] | reasons["amy_10 copy.flac"]
    with_copy = {
        o: p for o, i, p in _all_pairs(mined["settings"]) if i == "amy_10 (Instrumental).mp3"
    }
    assert sorted(p.status for p in with_copy.values()) == ["mined", "rejected"]
    assert [p.reason for p in with_copy.values() if p.status == "rejected"] == ["duplicate"]
    assert reasons["broken.flac"] & {"decode_error", "not_audio", "truncated"}


def test_fingerprints_discover_an_oddly_named_instrumental(mined: dict) -> None:
    pair = _pairs(mined["settings"])["track07.wav"]
    assert pair.source == "fingerprint"
    assert pair.status == "mined"


def test_a_second_run_adds_nothing(mined: dict) -> None:
    assert mined["first"]["discovery"]["swept"] > 0
    assert mined["second"]["discovery"] == {"skipped": True}  # nothing changed: no sweep
    assert mined["second"]["pairs"] == mined["first"]["pairs"]
    again = read_manifest(mined["settings"].shard_root, mined["settings"].dataset)
    assert again["counts"] == mined["manifest"]["counts"]
    assert [s["path"] for s in again["shards"]] == [s["path"] for s in mined["manifest"]["shards"]]


def test_pairs_why_explains_a_rejection(mined: dict) -> None:
    path = mined["lib"] / "leon" / "Night - Instrumental Version.flac"
    result = CliRunner().invoke(
        register(), ["pairs", "--why", str(path), "--config", str(mined["config"])]
    )
    assert result.exit_code == 0, result.output
    assert "duration_mismatch" in result.output
    assert "durations differ" in result.output
    json.dumps(mined["first"])


def test_a_cappella_versions_are_never_mined(mined: dict) -> None:
    for name in ("Song amy_11 (A Cappella).flac", "take 3.wav"):
        involved = [p for o, i, p in _all_pairs(mined["settings"]) if name in (o, i)]
        assert all(p.status != "mined" for p in involved), name
        assert all(
            p.reason in ("a_cappella", "role_mismatch", "implausible_gain") for p in involved
        ), [(p.reason, p.source) for p in involved]
    tagged = [p for o, i, p in _all_pairs(mined["settings"]) if "A Cappella" in o + i]
    assert all(p.reason == "a_cappella" for p in tagged)


def test_a_copy_rejected_as_same_audio_never_becomes_an_original(mined: dict) -> None:
    pairs = _all_pairs(mined["settings"])
    assert not [p for o, i, p in pairs if o == "Sun (Off Vocal).mp3" and p.status == "mined"]
    true = [p for o, i, p in pairs if (o, i) == ("Sun.flac", "Sun (Karaoke).flac")]
    assert [p.status for p in true] == ["mined"]
    assert sum(p.status == "mined" for o, i, p in pairs if i == "Sun (Karaoke).flac") == 1


def test_pairs_why_shows_the_evidence_of_a_discovered_pair(mined: dict) -> None:
    path = mined["lib"] / "gt" / "track07.wav"
    result = CliRunner().invoke(
        register(), ["pairs", "--why", str(path), "--config", str(mined["config"])]
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "found by fingerprint: votes" in out
    assert "orientation: rule audio" in out
    assert "instrumental_title:" in out
    assert "check gain_db:" in out and "check low_share_ratio:" in out
    assert "pass" in out
