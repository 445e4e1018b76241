"""Vocal labels are the half-wave spectral difference; no-vocal pairs and bad alignments show."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.mir1k_pairs import load_clip, load_song, mp3_round_trip
from vocalmine.core.stft import PRESETS
from vocalmine.mining.alignment import align, apply_alignment
from vocalmine.mining.loudness import match_gain
from vocalmine.mining.vocals import (
    MIN_VOCAL_RATIO_DB,
    Derived,
    derive,
    label_quality,
    reconstruct_vocals,
    sdr_db,
    to_preset,
    vocal_activity_db,
)

CLIPS = ["amy_10_01", "leon_7_05", "geniusturtle_8_03"]


def has_no_vocals(derived: Derived) -> bool:
    """The pair pipeline's ``no_vocals`` rule: the loud frames' vocal share stays below
    :data:`MIN_VOCAL_RATIO_DB`."""
    return vocal_activity_db(derived) < MIN_VOCAL_RATIO_DB


def mined_instrumental(mix: np.ndarray, instrumental_file: np.ndarray, sr: int) -> np.ndarray:
    """What the pipeline does to a decoded instrumental: align, place, gain-match."""
    placed = apply_alignment(instrumental_file, align(mix, instrumental_file, sr), mix.shape[1])
    return placed * np.float32(match_gain(mix, placed, sr).gain)


@pytest.mark.parametrize("preset_name", ["paper", "hq"])
def test_derived_spectrograms_have_the_preset_shape_and_are_non_negative(
    mir1k_dir: Path, preset_name: str
) -> None:
    preset = PRESETS[preset_name]
    acc, voc, sr = load_clip(mir1k_dir, "amy_10_01")
    derived = derive((acc + voc)[None], acc[None], sr, preset)
    frames = 2 + len(acc) * preset.sample_rate // sr // preset.hop  # one frame covers the end
    for mag in (derived.mix_mag, derived.instr_mag, derived.vocals_mag):
        assert mag.dtype == np.float32
        assert mag.shape == (preset.channels, preset.bins, frames)
    assert (derived.vocals_mag >= 0).all()
    np.testing.assert_allclose(
        derived.vocals_mag, np.maximum(derived.mix_mag - derived.instr_mag, 0), atol=1e-6
    )


def test_mix_minus_itself_has_no_vocals(mir1k_dir: Path) -> None:
    acc, voc, sr = load_clip(mir1k_dir, "leon_7_05")
    mix = (acc + voc)[None]
    derived = derive(mix, mix, sr, PRESETS["paper"])
    assert not derived.vocals_mag.any()
    assert has_no_vocals(derived)
    assert derived.quality().quality == 0.0


@pytest.mark.parametrize("name", CLIPS)
@pytest.mark.parametrize("preset_name", ["paper", "hq"])
def test_instrumental_that_is_really_the_mix_is_rejected_and_real_pairs_pass(
    mir1k_dir: Path, name: str, preset_name: str
) -> None:
    acc, voc, sr = load_clip(mir1k_dir, name)
    mix = (acc + voc)[None]
    preset = PRESETS[preset_name]
    fake = mined_instrumental(mix, mp3_round_trip(mix * 0.8, sr), sr)
    real = mined_instrumental(mix, mp3_round_trip(acc[None] * 0.8, sr), sr)
    assert has_no_vocals(derive(mix, fake, sr, preset))
    assert not has_no_vocals(derive(mix, real, sr, preset))
    assert vocal_activity_db(derive(mix, real, sr, preset)) > -6.0


def test_a_copy_of_the_mix_missing_its_first_two_seconds_still_has_no_vocals(
    mir1k_dir: Path,
) -> None:
    # Outside the copy's extent the "vocals" are the whole mix: those frames must not count.
    acc, voc, sr = load_clip(mir1k_dir, "amy_10_01")
    mix = (acc + voc)[None]
    late = mined_instrumental(mix, mp3_round_trip(mix[:, 2 * sr :] * 0.8, sr), sr)
    assert not late[:, :sr].any()
    assert has_no_vocals(derive(mix, late, sr, PRESETS["paper"]))
    real = mined_instrumental(mix, mp3_round_trip(acc[None, 2 * sr :] * 0.8, sr), sr)
    assert not has_no_vocals(derive(mix, real, sr, PRESETS["paper"]))


@pytest.mark.parametrize("preset_name", ["paper", "hq"])
@settings(max_examples=12, deadline=None)
@given(cut=st.integers(min_value=0, max_value=767))
def test_reconstructed_vocals_have_no_spike_at_the_end_of_a_clip(
    mir1k_dir: Path, preset_name: str, cut: int
) -> None:
    """A clip that does not end in silence, cut at every phase of the hop: the last samples of
    the reconstruction stay at the level of the vocals (no division by a vanishing window)."""
    preset = PRESETS[preset_name]
    acc, voc, sr = load_clip(mir1k_dir, "amy_10_01")
    keep = len(acc) // 2 - cut  # mid-phrase, so the clip ends loud
    acc, voc = acc[:keep], voc[:keep]
    mix = (acc + voc)[None]
    at_preset = to_preset(mix, sr, preset)
    estimate = reconstruct_vocals(at_preset, derive(mix, acc[None], sr, preset).vocals_mag, preset)
    tail = int(0.05 * preset.sample_rate)
    assert np.isfinite(estimate).all()
    assert np.abs(estimate[..., -tail:]).max() <= 1.5 * np.abs(at_preset).max()


@pytest.mark.parametrize("name", CLIPS)
def test_vocals_from_the_true_instrumental_reconstruct_the_true_vocals(
    mir1k_dir: Path, name: str
) -> None:
    preset = PRESETS["hq"]
    acc, voc, sr = load_clip(mir1k_dir, name)
    mix = (acc + voc)[None]
    derived = derive(mix, acc[None], sr, preset)
    at_preset = to_preset(mix, sr, preset)
    estimate = reconstruct_vocals(at_preset, derived.vocals_mag, preset)
    assert estimate.shape == at_preset.shape
    truth = to_preset(voc[None], sr, preset)
    assert sdr_db(truth, estimate) > 9.0
    assert sdr_db(truth, estimate) > sdr_db(truth, at_preset) + 6.0  # far better than the mix


@pytest.mark.parametrize("name", CLIPS)
def test_mined_vocals_are_as_good_as_those_from_the_true_instrumental(
    mir1k_dir: Path, name: str
) -> None:
    preset = PRESETS["hq"]
    acc, voc, sr = load_clip(mir1k_dir, name)
    mix = (acc + voc)[None]
    mined = mined_instrumental(mix, mp3_round_trip(acc[None] * 1.7, sr), sr)
    at_preset, truth = to_preset(mix, sr, preset), to_preset(voc[None], sr, preset)
    oracle = sdr_db(
        truth, reconstruct_vocals(at_preset, derive(mix, acc[None], sr, preset).vocals_mag, preset)
    )
    ours = sdr_db(
        truth, reconstruct_vocals(at_preset, derive(mix, mined, sr, preset).vocals_mag, preset)
    )
    assert ours > oracle - 1.0


@pytest.mark.parametrize("name", CLIPS)
def test_quality_is_higher_for_a_correct_pair_than_a_misaligned_one(
    mir1k_dir: Path, name: str
) -> None:
    preset = PRESETS["paper"]
    acc, voc, sr = load_clip(mir1k_dir, name)
    mix = (acc + voc)[None]
    correct = derive(mix, acc[None], sr, preset).quality()
    shifted = derive(mix, np.roll(acc, 1024)[None], sr, preset).quality()
    off_gain = derive(mix, acc[None] * 10 ** (2 / 20), sr, preset).quality()
    assert 0.0 <= shifted.quality < correct.quality <= 1.0
    assert off_gain.quality < correct.quality
    assert shifted.residual_ratio_db > correct.residual_ratio_db + 6.0


def test_label_quality_formula() -> None:
    assert label_quality(10.0, 4.0, 1.0).quality == pytest.approx(3 / 5)
    assert label_quality(10.0, 1.0, 2.0).quality == 0.0
    assert label_quality(0.0, 0.0, 0.0).quality == 0.0
    figures = label_quality(100.0, 10.0, 1.0)
    assert (figures.vocal_ratio_db, figures.residual_ratio_db) == pytest.approx((-10.0, -20.0))


@pytest.mark.parametrize("song", ["amy_10", "leon_7"])
def test_quality_falls_when_the_label_is_really_the_accompaniment(
    mir1k_dir: Path, song: str
) -> None:
    """An a cappella mined as the "instrumental" derives the accompaniment as "vocals": bass and
    kick below 120 Hz count as error, so its score falls far below the true pair's."""
    acc, voc, sr = load_song(mir1k_dir, song)
    mix = (acc + voc)[None]
    preset = PRESETS["paper"]
    true = derive(mix, mined_instrumental(mix, acc[None], sr), sr, preset).quality().quality
    poisoned = derive(mix, mined_instrumental(mix, voc[None], sr), sr, preset).quality().quality
    assert true > 0.9
    assert poisoned < 0.8 * true
