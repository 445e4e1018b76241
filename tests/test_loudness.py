"""Loudness is BS.1770 (pyloudnorm), and the instrumental's gain in the mix is recovered exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyloudnorm
import pytest

from tests.mir1k_pairs import load_clip, mp3_round_trip, offset_pair
from vocalmine.core.audio import resample
from vocalmine.mining.alignment import align, apply_alignment
from vocalmine.mining.loudness import integrated_loudness, loudness_gain_db, match_gain, robust_gain

PAIRS = [
    ("amy_10_01", 6.0),
    ("leon_7_05", -6.0),
    ("geniusturtle_8_03", 4.5),
    ("yifen_2_04", -2.0),
    ("jmzen_4_02", -5.5),
]


@pytest.mark.parametrize(("name", "applied_db"), PAIRS)
def test_known_gain_is_recovered_within_a_tenth_of_a_db(
    mir1k_dir: Path, name: str, applied_db: float
) -> None:
    acc, voc, sr = load_clip(mir1k_dir, name)
    mix = (acc + voc)[None]
    instr = acc[None] * np.float32(10 ** (applied_db / 20))
    gain = match_gain(mix, instr, sr)
    assert gain.gain_db == pytest.approx(-applied_db, abs=0.1)
    assert gain.gain_db == pytest.approx(gain.loudness_gain_db + gain.ls_gain_db)


@pytest.mark.parametrize(("name", "applied_db"), PAIRS[:3])
def test_gain_after_mp3_matches_the_oracle_fit_to_the_true_accompaniment(
    mir1k_dir: Path, name: str, applied_db: float
) -> None:
    # The codec changes the level a little (lameenc: about −0.45 dB), so the truth is the best
    # least-squares gain of the decoded instrumental onto the real accompaniment.
    acc, voc, sr = load_clip(mir1k_dir, name)
    mix, instr = offset_pair(acc, voc, 3000)
    scaled = instr * 10 ** (applied_db / 20)
    encoded = mp3_round_trip(scaled / max(1.0, np.abs(scaled).max() / 0.99), sr)
    placed = apply_alignment(encoded, align(mix, encoded, sr), mix.shape[1])[0]
    oracle_db = 20 * np.log10(np.dot(acc, placed) / np.dot(placed, placed))
    assert match_gain(mix, placed[None], sr).gain_db == pytest.approx(oracle_db, abs=0.1)


def test_robust_gain_beats_plain_least_squares_where_vocals_correlate(mir1k_dir: Path) -> None:
    errors_ls, errors_robust = [], []
    for name, _ in PAIRS:
        acc, voc, _ = load_clip(mir1k_dir, name)
        mix = acc + voc
        errors_ls.append(abs(20 * np.log10(np.dot(mix, acc) / np.dot(acc, acc))))
        errors_robust.append(abs(20 * np.log10(robust_gain(mix[None], acc[None]))))
    assert np.median(errors_robust) < 0.02
    assert np.median(errors_robust) < np.median(errors_ls)


@pytest.mark.parametrize("rate", [16000, 11025, 44100, 48000])
def test_integrated_loudness_is_pyloudnorms(mir1k_dir: Path, rate: int) -> None:
    acc, voc, sr = load_clip(mir1k_dir, "amy_10_01")
    stereo = resample(np.stack([acc, voc * 0.3]), sr, rate)
    gap = np.zeros((2, 3 * rate), np.float32)  # silence the gates must leave out
    signal = np.concatenate([stereo, gap, stereo * 0.05], axis=1)
    for audio in (signal, signal[:1], signal[:, : rate // 2]):
        data = audio.T if audio.shape[0] > 1 else audio[0]
        expected = pyloudnorm.Meter(rate).integrated_loudness(data.astype(np.float64))
        assert integrated_loudness(audio, rate) == pytest.approx(expected, abs=1e-3)


def test_loudness_part_of_the_gain_equalises_as_pyloudnorm_measures_it(mir1k_dir: Path) -> None:
    acc, voc, sr = load_clip(mir1k_dir, "leon_7_05")
    mix, instr = (acc + voc)[None], acc[None] * np.float32(0.3)
    gain = match_gain(mix, instr, sr)
    meter = pyloudnorm.Meter(sr)
    scaled = instr[0] * 10 ** (gain.loudness_gain_db / 20)
    assert meter.integrated_loudness(scaled.astype(np.float64)) == pytest.approx(
        meter.integrated_loudness(mix[0].astype(np.float64)), abs=0.01
    )


def test_robust_gain_scales_with_the_instrumental(mir1k_dir: Path) -> None:
    acc, voc, _ = load_clip(mir1k_dir, "amy_10_01")
    mix = (acc + voc)[None]
    assert robust_gain(mix, acc[None] * np.float32(4.0)) == pytest.approx(
        robust_gain(mix, acc[None]) / 4.0, rel=1e-4
    )


def test_silence_and_short_clips_do_not_break_the_measurement() -> None:
    sr = 16000
    assert integrated_loudness(np.zeros((2, sr)), sr) == float("-inf")
    assert np.isfinite(integrated_loudness(np.full((1, sr // 10), 0.1, np.float32), sr))
    assert loudness_gain_db(-14.0, integrated_loudness(np.zeros((1, sr)), sr)) == 0.0


def test_silent_instrumental_falls_back_to_unit_gain() -> None:
    sr = 16000
    mix = np.random.default_rng(0).standard_normal((1, sr)).astype(np.float32) * 0.1
    gain = match_gain(mix, np.zeros_like(mix), sr)
    assert gain.method == "loudness"
    assert gain.gain == 1.0
