"""process_pair turns two files into segments, or into a reason code, never an exception."""

from __future__ import annotations

import pickle
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.mir1k_pairs import LAME_DELAY, LAME_LEVEL_DB, load_clip, load_song
from vocalmine.core.audio import load_audio, resample, save_audio
from vocalmine.core.stft import PRESETS
from vocalmine.mining.alignment import align
from vocalmine.mining.pair_pipeline import PairParams, process_pair
from vocalmine.mining.roles import RoleThresholds
from vocalmine.testlib.sources import MusdbSource


@pytest.fixture()
def pair_files(mir1k_dir: Path, tmp_path: Path) -> tuple[Path, Path, np.ndarray]:
    acc, voc, sr = load_clip(mir1k_dir, "amy_10_01")
    original = save_audio(tmp_path / "song.flac", (acc + voc)[None] * 0.7, sr)
    instrumental = save_audio(tmp_path / "song (instrumental).mp3", acc[None] * 0.5, sr)
    return original, instrumental, acc + voc


@pytest.mark.parametrize("preset_name", ["paper", "hq"])
def test_a_good_pair_yields_segments_with_alignment_and_gain(
    pair_files: tuple[Path, Path, np.ndarray], preset_name: str
) -> None:
    original, instrumental, _ = pair_files
    preset = PRESETS[preset_name]
    result = process_pair(original, instrumental, preset_name)
    assert result.ok, result.detail
    assert result.alignment.offset_samples == -LAME_DELAY
    assert result.sample_rate == 16000
    assert result.gain.gain_db == pytest.approx(20 * np.log10(0.7 / 0.5) - LAME_LEVEL_DB, abs=0.1)
    assert len(result.segments) == 1  # a 9 s clip: one padded patch, no skip
    seg = result.segments[0]
    assert seg.vocals.shape == (preset.channels, preset.bins, preset.patch_frames)
    assert seg.quality > 0.9
    assert result.metrics["segments"] == 1.0
    assert pickle.loads(pickle.dumps(result)).segments[0].segment_index == 0


def test_an_instrumental_that_is_the_mix_is_no_vocals(
    pair_files: tuple[Path, Path, np.ndarray], tmp_path: Path
) -> None:
    original, _, mix = pair_files
    fake = save_audio(tmp_path / "fake (instrumental).mp3", mix[None] * 0.5, 16000)
    result = process_pair(original, fake, PRESETS["paper"])
    assert result.reason == "no_vocals"
    assert result.segments == []
    assert "vocal share" in result.detail


def test_a_same_audio_suspect_is_confirmed_by_its_missing_vocals_and_cleared_by_real_ones(
    pair_files: tuple[Path, Path, np.ndarray], tmp_path: Path
) -> None:
    original, instrumental, mix = pair_files
    fake = save_audio(tmp_path / "fake (instrumental).mp3", mix[None] * 0.5, 16000)
    confirmed = process_pair(original, fake, "paper", suspect="same_audio")
    assert confirmed.reason == "same_audio"
    assert "vocal share" in confirmed.detail and "one recording" in confirmed.detail
    cleared = process_pair(original, instrumental, "paper", suspect="same_audio")
    assert cleared.ok, cleared.detail


def test_unreadable_instrumental_is_a_decode_error(
    pair_files: tuple[Path, Path, np.ndarray], tmp_path: Path
) -> None:
    original, _, _ = pair_files
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(b"\x00not audio" * 64)
    result = process_pair(original, broken, "paper")
    assert result.reason == "decode_error"
    assert str(broken) in result.detail and "\n" not in result.detail


@pytest.mark.parametrize(
    ("suspect", "reason"), [(None, "misaligned"), ("fingerprint_mismatch", "fingerprint_mismatch")]
)
def test_unrelated_instrumental_is_misaligned_or_confirms_a_fingerprint_suspect(
    pair_files: tuple[Path, Path, np.ndarray],
    mir1k_dir: Path,
    tmp_path: Path,
    suspect: str | None,
    reason: str,
) -> None:
    original, instrumental, _ = pair_files
    other, _, sr = load_clip(mir1k_dir, "leon_7_05")
    unrelated = save_audio(tmp_path / "other.flac", other[None], sr)
    result = process_pair(original, unrelated, "paper", suspect=suspect)
    assert result.reason == reason
    assert result.alignment is not None
    assert ("does not align" in result.detail) == (suspect is not None)
    assert process_pair(original, instrumental, "paper", suspect=suspect).ok


def test_long_song_skips_its_ends_and_uses_the_configured_hop(
    mir1k_dir: Path, tmp_path: Path
) -> None:
    acc, voc, sr = load_song(mir1k_dir, "amy_10")  # about 64 s
    original = save_audio(tmp_path / "long.flac", (acc + voc)[None], sr)
    instrumental = save_audio(tmp_path / "long (instrumental).flac", acc[None], sr)
    result = process_pair(original, instrumental, "paper", segment_skip_s=20.0)
    assert result.ok and result.segments[0].start_s >= 20.0
    denser = process_pair(original, instrumental, "paper", segment_hop_frames=32)
    assert len(denser.segments) > len(result.segments)


@pytest.mark.parametrize("song", ["amy_10", "leon_7"])
def test_an_untagged_a_cappella_is_rejected_in_both_roles(
    mir1k_dir: Path, tmp_path: Path, song: str
) -> None:
    """A real vocal stem posing as the instrumental (as discovery proposes it) is rejected by the
    role checks; posing as the original (the mix "fitted" inside it) by gain or role. Every
    check keeps its value and threshold."""
    acc, voc, sr = load_song(mir1k_dir, song)
    mix = save_audio(tmp_path / "mix.flac", (acc + voc)[None] * 0.7, sr)
    vocals = save_audio(tmp_path / "take 3.flac", voc[None] * 0.9, sr)
    as_instrumental = process_pair(mix, vocals, "paper", segment_skip_s=0)
    assert as_instrumental.reason == "role_mismatch", as_instrumental.detail
    assert "low_share_ratio" in as_instrumental.detail
    assert as_instrumental.segments == []
    failed = [c for c in as_instrumental.checks if not c["passed"]]
    assert failed and all({"value", "threshold", "rule"} <= set(c) for c in failed)
    as_original = process_pair(vocals, mix, "paper", segment_skip_s=0)
    assert as_original.reason in ("implausible_gain", "role_mismatch"), as_original.detail
    assert as_original.segments == []
    true_pair = process_pair(mix, save_audio(tmp_path / "inst.flac", acc[None], sr), "paper")
    assert true_pair.ok, true_pair.detail
    assert all(c["passed"] for c in true_pair.checks)


def test_an_implausible_gain_is_rejected_with_its_value(mir1k_dir: Path, tmp_path: Path) -> None:
    """An instrumental that sits 15 dB below its accompaniment in the mix is not plausible at
    the default ±12 dB; the limit is a setting."""
    acc, voc, sr = load_clip(mir1k_dir, "amy_10_01")
    original = save_audio(tmp_path / "song.flac", (acc + voc)[None] * 0.7, sr)
    quiet = save_audio(tmp_path / "song (inst).flac", acc[None] * 0.7 * 10 ** (-15 / 20), sr)
    result = process_pair(original, quiet, "paper")
    assert result.reason == "implausible_gain"
    assert "+15.0 dB" in result.detail
    assert result.checks[-1] == {
        "check": "gain_db",
        "value": pytest.approx(15.0, abs=0.2),
        "threshold": 12.0,
        "rule": "|gain| <=",
        "passed": False,
    }
    lenient = PairParams(roles=RoleThresholds(max_gain_db=20.0))
    assert process_pair(original, quiet, "paper", params=lenient).ok


def test_an_offset_between_two_samples_is_found_at_the_instrumentals_rate(
    musdb_dir: Path, tmp_path: Path
) -> None:
    """A 22.05 kHz original (Vorbis) whose 44.1 kHz instrumental starts at an odd 44.1 kHz
    sample: at the original's rate the offset falls between two samples, and on this loop-built
    clip the start and end excerpts then lock a beat apart (drift). The pair is aligned again at
    the instrumental's own rate and mined, its offset counted at the original's rate."""
    song = MusdbSource(musdb_dir).load("Skelpolu - Resurrection", np.random.default_rng(0))
    mix = np.pad(song.mix, ((0, 0), (71680, 22050)))
    accompaniment = np.pad(song.accompaniment * 0.67, ((0, 0), (9693, 120000)))
    wav = save_audio(tmp_path / "mix.wav", resample(mix, 44100, 22050), 22050, subtype="FLOAT")
    original = tmp_path / "song.ogg"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(wav), "-c:a", "libvorbis", "-q:a", "3", str(original)],
        check=True,
    )
    instrumental = save_audio(tmp_path / "song (Off Vocal).flac", accompaniment, 44100)
    mix_22k, sr = load_audio(original)
    assert align(mix_22k, load_audio(instrumental, sr=sr)[0], sr).reason == "drift"

    result = process_pair(original, instrumental, "paper", segment_skip_s=0)
    assert result.ok, result.detail
    assert result.alignment.sample_rate == 22050
    assert result.alignment.offset_samples in (30993, 30994)  # (71680 - 9693) / 2 = 30993.5
