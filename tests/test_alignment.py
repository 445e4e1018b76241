"""Alignment finds sample-exact offsets and polarity, and rejects drifting or unrelated pairs."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import lfilter

from tests.mir1k_pairs import LAME_DELAY, load_clip, load_song, mp3_round_trip, offset_pair
from vocalmine.core.audio import resample
from vocalmine.core.reasons import Reason
from vocalmine.mining.alignment import Alignment, align, apply_alignment

CLIPS = ["amy_10_01", "leon_7_05", "geniusturtle_8_03"]


@pytest.mark.parametrize("offset", [-7919, -1, 0, 1, 12345])
@pytest.mark.parametrize("name", CLIPS)
def test_recovers_known_offset_exactly(mir1k_dir: Path, name: str, offset: int) -> None:
    acc, voc, sr = load_clip(mir1k_dir, name)
    mix, instr = offset_pair(acc, voc, offset)
    result = align(mix, instr * 0.5, sr)
    assert result.ok, result
    assert (result.offset_samples, result.polarity) == (offset, 1)


@pytest.mark.parametrize(
    ("name", "offset", "gain_db"),
    [
        ("amy_10_01", 4321, 6.0),
        ("leon_7_05", -2500, -6.0),
        ("geniusturtle_8_03", 17, -3.0),
    ],
)
def test_recovers_offset_within_one_sample_after_mp3_and_gain(
    mir1k_dir: Path, name: str, offset: int, gain_db: float
) -> None:
    acc, voc, sr = load_clip(mir1k_dir, name)
    mix, instr = offset_pair(acc, voc, offset)
    scaled = instr * 10 ** (gain_db / 20)
    encoded = mp3_round_trip(scaled / max(1.0, np.abs(scaled).max() / 0.99), sr)
    result = align(mix, encoded, sr)
    assert result.ok, result
    assert abs(result.offset_samples - (offset - LAME_DELAY)) <= 1
    assert result.polarity == 1


def test_coarse_offset_narrows_the_search_to_the_same_answer(mir1k_dir: Path) -> None:
    acc, voc, sr = load_clip(mir1k_dir, "leon_7_05")
    mix, instr = offset_pair(acc, voc, 9000)
    assert align(mix, instr, sr, coarse_offset_s=9000 / sr + 0.3).offset_samples == 9000


def test_inverted_polarity_is_detected(mir1k_dir: Path) -> None:
    acc, voc, sr = load_clip(mir1k_dir, "amy_10_01")
    mix, instr = offset_pair(acc, voc, 3000)
    result = align(mix, -mp3_round_trip(instr, sr), sr)
    assert result.ok
    assert result.polarity == -1
    assert result.offset_samples == 3000 - LAME_DELAY


def test_instrumental_sped_up_half_a_percent_is_drift(mir1k_dir: Path) -> None:
    acc, voc, sr = load_song(mir1k_dir, "amy_10")  # about a minute
    mix, instr = offset_pair(acc, voc, 2000)
    stretched = resample(instr, sr, int(sr * 1.005))  # played back at sr: 0.5 % slower
    result = align(mix, mp3_round_trip(stretched, sr), sr)
    assert result.reason == Reason.DRIFT


def test_instrumental_time_stretched_by_a_phase_vocoder_is_drift(mir1k_dir: Path) -> None:
    acc, voc, sr = load_song(mir1k_dir, "amy_10")
    mix, instr = offset_pair(acc, voc, -700)
    stretched = librosa.effects.time_stretch(instr, rate=1 / 1.005)  # same pitch, 0.5 % longer
    result = align(mix, mp3_round_trip(stretched, sr), sr)
    assert result.reason == Reason.DRIFT


def test_instrumental_with_a_section_cut_out_is_drift(mir1k_dir: Path) -> None:
    acc, voc, sr = load_clip(mir1k_dir, "leon_7_05")
    mix, instr = offset_pair(acc, voc, 2000)
    half = instr.shape[1] // 2
    edited = np.concatenate([instr[:, :half], instr[:, half + int(0.3 * sr) :]], axis=1)
    result = align(mix, edited, sr)
    assert result.reason == Reason.DRIFT
    assert abs(result.start_offset - result.end_offset) == pytest.approx(0.3 * sr, abs=2)


def test_unrelated_instrumental_is_misaligned(mir1k_dir: Path) -> None:
    acc, voc, sr = load_clip(mir1k_dir, "amy_10_01")
    other, _, _ = load_clip(mir1k_dir, "leon_7_05")
    result = align((acc + voc)[None], mp3_round_trip(other[None], sr), sr)
    assert result.reason == Reason.MISALIGNED
    assert result.confidence < 0.2


def test_apply_alignment_puts_the_instrumental_on_the_mix_timeline(mir1k_dir: Path) -> None:
    acc, voc, sr = load_clip(mir1k_dir, "amy_10_01")
    for offset in (-500, 500):
        mix, instr = offset_pair(acc, voc, offset)
        result = align(mix, -instr, sr)
        placed = apply_alignment(-instr, result, mix.shape[1])
        assert placed.shape == mix.shape
        accompaniment = mix - offset_pair(np.zeros_like(acc), voc, offset)[0]
        covered = slice(max(offset, 0), min(mix.shape[1], instr.shape[1] + offset))
        np.testing.assert_allclose(placed[:, covered], accompaniment[:, covered], atol=1e-6)
        assert not placed[:, : max(offset, 0)].any()


def test_apply_alignment_pads_and_trims() -> None:
    instr = np.arange(1, 6, dtype=np.float32)[None]
    late = Alignment(2, 1, 1.0, 2, 2, 10)
    early = Alignment(-2, -1, 1.0, -2, -2, 10)
    np.testing.assert_array_equal(apply_alignment(instr, late, 6), [[0, 0, 1, 2, 3, 4]])
    np.testing.assert_array_equal(apply_alignment(instr, early, 4), [[-3, -4, -5, 0]])


def _music_like_noise(seed: int, n: int) -> np.ndarray:
    """Pink-ish noise: white noise through a one-pole low-pass, like music's spectral tilt."""
    white = np.random.default_rng(seed).standard_normal(n)
    return lfilter([1.0], [1.0, -0.95], white).astype(np.float32)


@settings(max_examples=25, deadline=None)
@given(offset=st.integers(-6000, 6000), seed=st.integers(0, 2**16))
def test_alignment_is_exact_for_any_integer_offset(offset: int, seed: int) -> None:
    sr = 8000
    accompaniment = _music_like_noise(seed, 5 * sr)
    vocals = 0.7 * _music_like_noise(seed + 1, 5 * sr)
    mix, instr = offset_pair(accompaniment, vocals, offset)
    result = align(mix, 0.3 * instr, sr)
    assert result.ok
    assert result.offset_samples == offset
