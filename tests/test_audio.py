"""Decoding: what every stage reads its audio through (layout, downmix, resampling, errors)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vocalmine.core.audio import AudioError, load_audio, resample


@pytest.fixture
def stereo_wav(tmp_path: Path) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(3)
    left = rng.standard_normal(48000).astype(np.float32) * 0.1
    right = np.sin(np.arange(48000) * 0.05).astype(np.float32) * 0.2
    path = tmp_path / "song.wav"
    sf.write(path, np.stack([left, right], axis=1), 48000, subtype="FLOAT")
    return path, np.stack([left, right])


def test_load_gives_channels_first_contiguous_float32(stereo_wav) -> None:
    path, truth = stereo_wav
    audio, sr = load_audio(path)
    assert sr == 48000
    assert audio.shape == (2, 48000) and audio.dtype == np.float32
    assert audio.flags.c_contiguous
    np.testing.assert_array_equal(audio, truth)


def test_mono_load_is_the_channel_mean_and_resamples_like_resample(stereo_wav) -> None:
    path, truth = stereo_wav
    mono, _ = load_audio(path, mono=True)
    np.testing.assert_allclose(mono[0], truth.mean(axis=0), atol=1e-7)
    low, sr = load_audio(path, sr=11025, mono=True)
    assert sr == 11025 and low.shape == (1, 11025) and low.flags.c_contiguous
    np.testing.assert_allclose(low, resample(mono, 48000, 11025), atol=1e-6)


def test_non_finite_samples_are_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.wav"
    data = np.zeros((1000, 2), dtype=np.float32)
    data[500, 1] = np.nan
    sf.write(path, data, 44100, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"broken\.wav: decoded samples are not finite"):
        load_audio(path)


@pytest.mark.parametrize(
    ("suffix", "subtype"),
    [(".wav", "PCM_16"), (".wav", "PCM_24"), (".flac", "PCM_16"), (".flac", "PCM_24")],
)
def test_integer_pcm_decodes_to_libsndfiles_own_float_values(
    tmp_path: Path, suffix: str, subtype: str
) -> None:
    rng = np.random.default_rng(7)
    data = np.clip(rng.standard_normal((30000, 2)) * 0.3, -1.0, 1.0)
    data[:4] = [[-1.0, 1.0], [0.0, -0.0], [1 / 32768, -1 / 32768], [0.999, -0.999]]
    path = tmp_path / f"pcm{suffix}"
    sf.write(path, data, 44100, subtype=subtype)
    expected, _ = sf.read(path, dtype="float32", always_2d=True)
    audio, _ = load_audio(path)
    np.testing.assert_array_equal(audio, expected.T)
    part, _ = load_audio(path, offset_s=0.25, duration_s=0.1)
    np.testing.assert_array_equal(part, expected[11025 : 11025 + 4410].T)


def test_a_text_file_named_mp3_is_reported_as_not_audio_not_as_missing(tmp_path: Path) -> None:
    fake = tmp_path / "song.mp3"
    fake.write_text("these are liner notes, not audio\n" * 20)
    with pytest.raises(AudioError) as caught:
        load_audio(fake)
    message = str(caught.value)
    assert message.startswith(str(fake))
    assert "not audio" in message and "does not exist" not in message
