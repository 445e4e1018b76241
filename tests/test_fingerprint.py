"""Landmark fingerprints on real audio: a true (mix, instrumental) pair is found at the right
offset through codec, gain, offset and resampling; other songs, remixes and copies are not pairs.

MIR-1K clips: left channel = karaoke accompaniment (the instrumental), right = singing, mix = L + R.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import librosa
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import maximum_filter1d

from tests.mir1k_pairs import LAME_DELAY, mp3_round_trip
from vocalmine.core.audio import load_audio, resample
from vocalmine.mining.discovery import discover_pairs, find_duplicates, orient_pair
from vocalmine.mining.fingerprint_index import FingerprintIndex, SweepParams, sweep_index
from vocalmine.mining.fingerprint_match import (
    DEFAULT_THRESHOLDS,
    VerifyThresholds,
    match,
    verify_pair,
)
from vocalmine.mining.landmarks import DEFAULT_PARAMS, Fingerprint, fingerprint, window_max

MIR1K = Path(__file__).parents[1] / ".." / "shared" / "data" / "mir1k"
FRAME_S = DEFAULT_PARAMS.frame_s


def _clip(name: str) -> tuple[np.ndarray, np.ndarray, int]:
    """(mix, instrumental, rate) of one MIR-1K clip; skips when the shared data is absent."""
    if not MIR1K.is_dir():
        pytest.skip(f"MIR-1K clips not found at {MIR1K.resolve()}")
    audio, sr = load_audio(MIR1K / f"{name}.flac")
    return audio[0] + audio[1], audio[0], sr


def _library_copy(
    audio: np.ndarray, sr: int, *, offset_s: float, gain_db: float, rate: int
) -> tuple[np.ndarray, int, float]:
    """``audio`` as a library would hold it: offset (cut or padded), gain, resampled, MP3
    128 kbit/s. Returns the decoded copy, its rate, and where its start lies in ``audio`` (s)."""
    shift = int(round(abs(offset_s) * sr))
    padding = np.zeros(shift, np.float32)
    moved = audio[shift:] if offset_s >= 0 else np.concatenate([padding, audio])
    moved = resample(moved * 10 ** (gain_db / 20), sr, rate)
    decoded = mp3_round_trip(moved, rate, bitrate_kbps=128)[0]
    return decoded, rate, offset_s - LAME_DELAY / rate


@pytest.mark.parametrize(
    ("name", "offset_s", "gain_db", "rate"),
    [
        ("amy_10_01", 1.3, -6.0, 44100),
        ("geniusturtle_6_05", -0.8, 6.0, 48000),
        ("leon_2_11", 0.0, 0.0, 44100),
        ("yifen_4_08", 2.0, -3.0, 48000),
    ],
)
def test_true_pair_is_accepted_at_the_right_offset_through_codec_gain_offset_and_resampling(
    name: str, offset_s: float, gain_db: float, rate: int
) -> None:
    mix, instrumental, sr = _clip(name)
    copy, copy_sr, true_offset = _library_copy(
        instrumental, sr, offset_s=offset_s, gain_db=gain_db, rate=rate
    )
    verdict = verify_pair(fingerprint(mix, sr), fingerprint(copy, copy_sr))
    assert verdict.accepted, verdict
    assert verdict.reason is None
    assert abs(verdict.offset_s - true_offset) <= FRAME_S
    assert 0.0 < verdict.ratio < 1.0


def test_the_instrumental_of_another_song_is_a_fingerprint_mismatch() -> None:
    mix, _, sr = _clip("amy_10_01")
    _, other, _ = _clip("jmzen_5_07")
    verdict = verify_pair(fingerprint(mix, sr), fingerprint(other, sr))
    assert not verdict.accepted
    assert verdict.reason == "fingerprint_mismatch"


def test_another_clip_of_the_same_song_is_a_fingerprint_mismatch() -> None:
    mix, _, sr = _clip("amy_10_01")
    _, sibling, _ = _clip("amy_10_03")
    assert verify_pair(fingerprint(mix, sr), fingerprint(sibling, sr)).reason == (
        "fingerprint_mismatch"
    )


@pytest.mark.parametrize("rate", [1.03, 1 / 1.05])
def test_a_time_stretched_accompaniment_is_a_remix_not_a_pair(rate: float) -> None:
    mix, instrumental, sr = _clip("geniusturtle_6_05")
    stretched = librosa.effects.time_stretch(instrumental, rate=rate)
    verdict = verify_pair(fingerprint(mix, sr), fingerprint(stretched, sr))
    assert verdict.reason == "fingerprint_mismatch", verdict


def test_a_pitch_shifted_accompaniment_is_a_remix_not_a_pair() -> None:
    mix, instrumental, sr = _clip("amy_16_04")
    shifted = librosa.effects.pitch_shift(instrumental, sr=sr, n_steps=1.0)
    assert verify_pair(fingerprint(mix, sr), fingerprint(shifted, sr)).reason == (
        "fingerprint_mismatch"
    )


def test_the_mix_against_itself_is_same_audio() -> None:
    mix, _, sr = _clip("leon_7_08")
    verdict = verify_pair(fingerprint(mix, sr), fingerprint(mix, sr))
    assert verdict.reason == "same_audio"
    assert verdict.ratio == 1.0
    assert verdict.offset_s == 0.0


def test_the_mix_against_its_re_encode_is_a_same_audio_suspect_for_the_derivation() -> None:
    mix, _, sr = _clip("leon_7_08")
    copy, copy_sr, true_offset = _library_copy(mix, sr, offset_s=0.4, gain_db=-4.0, rate=44100)
    verdict = verify_pair(fingerprint(mix, sr), fingerprint(copy, copy_sr))
    assert verdict.suspect == "same_audio", verdict
    assert verdict.ratio >= DEFAULT_THRESHOLDS.same_audio_ratio
    assert abs(verdict.offset_s - true_offset) <= FRAME_S
    strict = VerifyThresholds(copy_ratio=DEFAULT_THRESHOLDS.same_audio_ratio)
    assert verify_pair(fingerprint(mix, sr), fingerprint(copy, copy_sr), strict).reason == (
        "same_audio"
    )


def test_a_near_miss_is_a_fingerprint_mismatch_suspect_and_a_clear_miss_is_rejected() -> None:
    mix, instrumental, sr = _clip("amy_10_01")
    fp_mix, fp_inst = fingerprint(mix, sr), fingerprint(instrumental, sr)
    ratio = verify_pair(fp_mix, fp_inst).ratio
    demanding = VerifyThresholds(min_ratio=ratio + 0.01, near_min_ratio=ratio - 0.01)
    near = verify_pair(fp_mix, fp_inst, demanding)
    assert (near.accepted, near.suspect) == (True, "fingerprint_mismatch")
    too_far = VerifyThresholds(min_ratio=ratio + 0.02, near_min_ratio=ratio + 0.01)
    assert verify_pair(fp_mix, fp_inst, too_far).reason == "fingerprint_mismatch"


def test_fingerprints_round_trip_through_bytes() -> None:
    mix, _, sr = _clip("amy_13_04")
    fp = fingerprint(mix, sr)
    back = Fingerprint.from_bytes(fp.to_bytes())
    assert np.array_equal(back.hashes, fp.hashes)
    assert np.array_equal(back.times, fp.times)
    assert back.hashes.dtype == np.uint32
    assert back.times.dtype == np.int32
    assert back.params == fp.params
    assert back.n_frames == fp.n_frames
    assert back.frame_s == fp.frame_s
    assert match(back, fp).ratio == 1.0


def test_corrupt_bytes_and_foreign_parameters_are_refused() -> None:
    mix, _, sr = _clip("amy_13_04")
    with pytest.raises(ValueError, match="not a fingerprint archive"):
        Fingerprint.from_bytes(b"not an npz")
    other = dataclasses.replace(DEFAULT_PARAMS, fan_out=3)
    with pytest.raises(ValueError, match="different parameters"):
        match(fingerprint(mix, sr), fingerprint(mix, sr, other))


def test_silence_has_no_hashes_and_matches_nothing() -> None:
    silent = fingerprint(np.zeros(16000 * 3, np.float32), 16000)
    assert len(silent) == 0
    mix, _, sr = _clip("amy_13_04")
    verdict = verify_pair(fingerprint(mix, sr), silent)
    assert verdict.reason == "fingerprint_mismatch"
    assert verdict.n_matches == 0


@settings(max_examples=8, deadline=None)
@given(gain_db=st.floats(-30.0, 12.0), channels=st.sampled_from([1, 2]))
def test_fingerprints_ignore_gain_and_channel_layout(gain_db: float, channels: int) -> None:
    mix, _, sr = _clip("yifen_1_01")
    reference = fingerprint(mix, sr)
    scaled = mix * np.float32(10 ** (gain_db / 20))
    audio = np.stack([scaled] * channels) if channels == 2 else scaled
    assert match(fingerprint(audio, sr), reference).ratio >= 0.98


def test_orient_pair_tells_the_mix_from_the_instrumental_at_equal_loudness() -> None:
    mix, instrumental, sr = _clip("amy_10_01")
    copy, copy_sr, true_offset = _library_copy(instrumental, sr, offset_s=0.5, gain_db=0, rate=sr)
    mix_eq = mix / np.sqrt(np.mean(mix**2))
    copy_eq = copy / np.sqrt(np.mean(copy**2))
    assert orient_pair(mix_eq, copy_eq, sr, true_offset)
    assert not orient_pair(copy_eq, mix_eq, sr, -true_offset)


def _library() -> tuple[dict[int, Fingerprint], dict[int, np.ndarray], int]:
    """A small library: 1 = mix A, 2 = A's instrumental under an odd name (MP3, offset), 3 = mix
    B, 4 = B's instrumental (already paired by title), 5 = mix C, 6 = a re-encode of mix C,
    7 = another song's accompaniment, alone."""
    mix_a, inst_a, sr = _clip("amy_10_01")
    mix_b, inst_b, _ = _clip("leon_2_11")
    mix_c, _, _ = _clip("geniusturtle_6_05")
    _, inst_d, _ = _clip("jmzen_5_07")
    copy_a, _, _ = _library_copy(inst_a, sr, offset_s=0.7, gain_db=-2, rate=sr)
    copy_c, _, _ = _library_copy(mix_c, sr, offset_s=0.0, gain_db=-1, rate=sr)
    audio = {1: mix_a, 2: copy_a, 3: mix_b, 4: inst_b, 5: mix_c, 6: copy_c, 7: inst_d}
    return {k: fingerprint(v, sr) for k, v in audio.items()}, audio, sr


def test_discovery_finds_an_untitled_instrumental_and_orients_it() -> None:
    fps, audio, sr = _library()
    checks = sweep_index(FingerprintIndex(fps))
    found = discover_pairs(
        checks,
        known=[(3, 4)],
        orient=lambda a, b, offset: orient_pair(audio[a], audio[b], sr, offset),
    )
    assert [(p.original_id, p.instrumental_id) for p in found] == [(1, 2)]
    pair = found[0]
    assert pair.oriented_by == "audio"
    assert pair.source == "fingerprint"
    assert abs(pair.offset_s - (0.7 - LAME_DELAY / sr)) <= FRAME_S
    unoriented = discover_pairs(checks, known=[(4, 3)])
    assert [(p.original_id, p.instrumental_id, p.oriented_by) for p in unoriented] == [
        (1, 2, "unknown")
    ]
    by_energy = discover_pairs(checks, known=[(3, 4)], energy={1: 0.5, 2: 0.9})
    assert [(p.original_id, p.instrumental_id) for p in by_energy] == [(2, 1)]


def test_duplicates_are_found_by_fingerprint_and_by_content_hash() -> None:
    fps, _, _ = _library()
    checks = sweep_index(FingerprintIndex(fps))
    found = find_duplicates(checks, content_hashes={3: "abc", 4: "def", 7: "abc"})
    by_track = {d.track_id: (d.duplicate_of, d.evidence) for d in found}
    assert by_track == {6: (5, "fingerprint"), 7: (3, "content_hash")}
    assert all(d.ratio >= 0.65 for d in found)


def test_a_title_pair_is_never_called_a_duplicate_by_fingerprint() -> None:
    fps, _, _ = _library()
    found = find_duplicates(sweep_index(FingerprintIndex(fps)), known=[(6, 5)])
    assert found == []


def test_the_sweep_finds_the_pairs_and_copies_in_blocks_of_any_size() -> None:
    """Cutting the queries into blocks (the unit of a Dask task) changes nothing."""
    fps, _, _ = _library()
    index = FingerprintIndex(fps)
    checks = sweep_index(index)
    assert {(1, 2), (3, 4), (5, 6)} <= {(c.a, c.b) for c in checks}
    assert sweep_index(index, block_hashes=1) == checks


def test_the_sweep_does_not_depend_on_which_track_of_a_pair_comes_first() -> None:
    """Numbering the tracks the other way round finds the same pairs with the same exact
    numbers, each direction of a check staying with its track."""
    fps, _, _ = _library()
    checks = sweep_index(FingerprintIndex(fps))
    flipped = sweep_index(FingerprintIndex({100 - k: fp for k, fp in fps.items()}))
    renamed = sorted((c.renamed(100 - c.a, 100 - c.b) for c in flipped), key=lambda c: (c.a, c.b))
    assert renamed == checks


def test_a_tight_budget_still_finds_every_pair_by_its_rarest_hashes() -> None:
    """With the postings read per query cut to a sliver, the rarest hashes still find the pairs
    and copies, and the exact numbers do not change."""
    fps, _, _ = _library()
    index = FingerprintIndex(fps)
    full = {(c.a, c.b): c for c in sweep_index(index)}
    tight = {
        (c.a, c.b): c
        for c in sweep_index(index, SweepParams(postings_per_hash=0.2, min_postings=0))
    }
    for key in [(1, 2), (3, 4), (5, 6)]:
        assert tight[key] == full[key]


def test_duration_blocking_keeps_tracks_of_other_lengths_out() -> None:
    fps, _, _ = _library()
    index = FingerprintIndex(fps)
    assert sweep_index(index, SweepParams(max_duration_diff_s=0.0)) == [
        c for c in sweep_index(index) if fps[c.a].n_frames == fps[c.b].n_frames
    ]


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 40),
    cols=st.integers(1, 40),
    size=st.integers(0, 12).map(lambda k: 2 * k + 1),
    axis=st.sampled_from([0, 1]),
    seed=st.integers(0, 2**16),
)
def test_peak_neighbourhood_maximum_equals_scipys_filter(rows, cols, size, axis, seed) -> None:
    spec = np.random.default_rng(seed).random((rows, cols)).astype(np.float32)
    expected = maximum_filter1d(spec, size, axis=axis, mode="constant", cval=0.0)
    np.testing.assert_array_equal(window_max(spec, size, axis), expected)
