"""Segments: fixed-size patches, skipping the song's ends, with indices, times and quality."""

from __future__ import annotations

import numpy as np
import pytest

from vocalmine.core.stft import PRESETS
from vocalmine.mining.segments import SegmentPolicy, cut_segments, patch_starts
from vocalmine.mining.vocals import Derived

PAPER = PRESETS["paper"]  # 8192 Hz, hop 768: 10.67 frames per second, 128-frame patches
HQ = PRESETS["hq"]


def frames_for(seconds: float, preset=PAPER) -> int:
    return int(seconds * preset.sample_rate / preset.hop)


def fake_derived(n_frames: int, preset=PAPER, seed: int = 0) -> Derived:
    """Spectrograms whose value encodes the frame index, so patches can be located."""
    rng = np.random.default_rng(seed)
    shape = (preset.channels, preset.bins, n_frames)
    mix = np.broadcast_to(np.arange(1, n_frames + 1, dtype=np.float32), shape).copy()
    instr = (mix[..., -1:] * rng.uniform(0.2, 1.0, shape)).astype(np.float32)  # sounds throughout
    vocals = mix - instr
    energy = np.stack(
        [
            (mix**2).sum(axis=(0, 1)),
            (vocals**2).sum(axis=(0, 1)),
            np.zeros(n_frames),
            np.zeros(n_frames),
            (instr**2).sum(axis=(0, 1)),
        ]
    )
    return Derived(mix, instr, vocals, energy)


def test_patches_have_the_preset_shape_and_float32() -> None:
    for preset in (PAPER, HQ):
        segments = cut_segments(fake_derived(frames_for(90, preset), preset), preset)
        assert segments
        for seg in segments:
            for mag in (seg.mix, seg.instrumental, seg.vocals):
                assert mag.shape == (preset.channels, preset.bins, preset.patch_frames)
                assert mag.dtype == np.float32


def test_first_and_last_twenty_seconds_are_skipped() -> None:
    n = frames_for(120)
    skip = int(np.ceil(20 * PAPER.sample_rate / PAPER.hop))
    segments = cut_segments(fake_derived(n), PAPER, SegmentPolicy(skip_s=20, min_last_fill=1.0))
    assert segments[0].start_s == pytest.approx(skip * PAPER.hop / PAPER.sample_rate)
    assert segments[0].start_s >= 20.0
    last_frame = segments[-1].mix[0, 0, -1] - 1  # the value encodes the frame index
    assert last_frame < n - skip
    assert [s.segment_index for s in segments] == list(range(len(segments)))


def test_start_times_follow_the_hop_and_index() -> None:
    policy = SegmentPolicy(skip_s=0, hop_frames=64)
    segments = cut_segments(fake_derived(frames_for(60)), PAPER, policy)
    for seg in segments:
        first_frame = seg.segment_index * 64
        assert seg.start_s == pytest.approx(first_frame * PAPER.hop / PAPER.sample_rate)
        assert seg.mix[0, 0, 0] == first_frame + 1


def test_default_patches_do_not_overlap() -> None:
    starts = patch_starts(frames_for(200), PAPER, SegmentPolicy())
    assert np.all(np.diff(starts) == PAPER.patch_frames)


def test_partial_last_patch_is_zero_padded_when_full_enough_else_dropped() -> None:
    n = 2 * PAPER.patch_frames + 40  # 40 frames = 31 % of a patch
    padded = cut_segments(fake_derived(n), PAPER, SegmentPolicy(skip_s=0, min_last_fill=0.2))
    assert len(padded) == 3
    assert padded[-1].frames == 40
    assert padded[-1].mix[..., 40:].max() == 0 and padded[-1].mix[..., :40].min() > 0
    dropped = cut_segments(fake_derived(n), PAPER, SegmentPolicy(skip_s=0, min_last_fill=0.5))
    assert len(dropped) == 2


def test_song_too_short_for_the_skip_is_cut_without_it_or_dropped_by_policy() -> None:
    n = frames_for(40)  # shorter than 20 s + 12 s patch + 20 s
    fallback = cut_segments(fake_derived(n), PAPER, SegmentPolicy(skip_s=20))
    assert fallback and fallback[0].start_s == 0.0
    strict = SegmentPolicy(skip_s=20, no_skip_if_short=False)
    assert cut_segments(fake_derived(n), PAPER, strict) == []


def test_short_clip_gives_one_padded_patch() -> None:
    segments = cut_segments(fake_derived(frames_for(5)), PAPER)
    assert len(segments) == 1 and segments[0].frames == frames_for(5)


def test_quality_is_per_segment_and_in_unit_range() -> None:
    derived = fake_derived(frames_for(60))
    derived.frame_energy[2, : PAPER.patch_frames] = derived.frame_energy[1, : PAPER.patch_frames]
    segments = cut_segments(derived, PAPER, SegmentPolicy(skip_s=0))
    assert segments[0].quality == 0.0  # error as large as the vocals: worthless label
    assert all(0.0 < s.quality <= 1.0 for s in segments[1:])


def test_frames_the_instrumental_does_not_cover_are_never_cut() -> None:
    derived = fake_derived(frames_for(90))
    first, end = frames_for(5), frames_for(80)  # the instrumental lacks an intro and an outro
    for silent in (slice(None, first), slice(end, None)):
        derived.instr_mag[..., silent] = 0.0
        derived.frame_energy[4, silent] = 0.0
    segments = cut_segments(derived, PAPER, SegmentPolicy(skip_s=0, min_last_fill=0.1))
    assert segments[0].mix[0, 0, 0] == first + 1  # the value encodes the frame index
    for seg in segments:
        real = seg.mix[0, 0, : seg.frames]
        assert real.min() >= first + 1 and real.max() <= end
        assert not seg.mix[..., seg.frames :].any()
    derived.instr_mag[...] = 0.0
    derived.frame_energy[4] = 0.0
    assert cut_segments(derived, PAPER) == []


def test_hop_must_be_positive() -> None:
    with pytest.raises(ValueError, match="hop"):
        patch_starts(1000, PAPER, SegmentPolicy(hop_frames=0))
