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


def _ffmpeg_decode(path: Path, channels: int) -> np.ndarray:
    """``(channels, samples)`` as the ffmpeg binary decodes ``path`` (gapless header honoured)."""
    import subprocess

    raw = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "f32le", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, "<f4").reshape(-1, channels).T


def best_lag(decoded: np.ndarray, reference: np.ndarray, span: int = 2048) -> int:
    """The shift (samples, ``decoded`` later when positive) at which the two correlate most."""
    n = min(decoded.shape[-1], reference.shape[-1]) - 2 * span
    a, b = decoded[0], reference[0]
    scores = {
        lag: float(np.dot(a[span + lag : span + lag + n], b[span : span + n]))
        for lag in range(-span, span + 1)
    }
    return max(scores, key=scores.__getitem__)


@pytest.mark.parametrize("extra", [17, 1000])
@pytest.mark.parametrize(
    ("rate", "channels"), [(44100, 2), (48000, 1), (24000, 2), (16000, 1), (8000, 1)]
)
def test_mp3_stems_decode_to_the_exact_samples_from_sample_0(
    rate: int, channels: int, extra: int, tmp_path: Path
) -> None:
    """ffmpeg's libmp3lame writes the LAME/Info header (encoder delay and padding): ffmpeg and
    libsndfile decode the input's length, not 1105 samples late and a frame or more too long.
    (ffmpeg's own padding was 30 samples short at 48 kHz with 144017 samples, 7 at 16 kHz with
    49000: :func:`set_mp3_length` rewrites it.)"""
    import shutil

    from vocalmine.separation.streams import StemWriter

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed: MP3 stems are encoded by it")
    import subprocess

    audio = (
        0.2 * np.random.default_rng(rate).standard_normal((channels, 3 * rate + extra))
    ).astype(np.float32)
    writer = StemWriter(tmp_path / "stem.mp3", rate, channels)
    writer.write(audio[:, :1000])
    writer.write(audio[:, 1000:])
    path = writer.commit()
    for decoded in (_ffmpeg_decode(path, channels), sf.read(path, always_2d=True)[0].T):
        assert decoded.shape == audio.shape
        assert best_lag(decoded, audio) == 0
        assert np.corrcoef(decoded[0], audio[0])[0, 1] > 0.9  # white noise: the hardest input
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream_tags=encoder", "-of", "csv=p=0", path],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.startswith("Lavc")  # ffmpeg shows the tag's encoder when its CRC is right


def test_an_aborted_mp3_stem_leaves_no_file_and_no_encoder(tmp_path: Path) -> None:
    import shutil

    import psutil

    from vocalmine.separation.streams import StemWriter

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed: MP3 stems are encoded by it")
    writer = StemWriter(tmp_path / "stem.mp3", 44100, 2)
    writer.write(np.zeros((2, 44100), np.float32))
    encoders = [p for p in psutil.Process().children() if p.name() == "ffmpeg"]
    assert encoders
    writer.abort()
    assert list(tmp_path.iterdir()) == []
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in encoders)
