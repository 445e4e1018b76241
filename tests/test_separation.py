"""Separation: stems sum to the mix, keep the input's rate, channels, length and bandwidth, any
length is separated in full, and the command never overwrites or stops on one bad file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from vocalmine.cli.separate import separate_command
from vocalmine.core.stft import PRESETS
from vocalmine.separation.chunking import (
    CrossFader,
    array_pieces,
    merge_patches,
    overlapping_blocks,
    patch_starts,
    split_patches,
)
from vocalmine.separation.masks import (
    full_resolution,
    high_band_mask,
    map_to_full_band,
    ratio_masks,
)
from vocalmine.separation.postprocess import parse_variant
from vocalmine.separation.separate import (
    OutputExistsError,
    Separator,
    expand_inputs,
    output_dir_for,
)
from vocalmine.separation.settings import ChunkSettings
from vocalmine.storage.catalog import open_catalog
from vocalmine.storage.registry import ModelRegistry, parse_model_spec
from vocalmine.training.models import build_model


@pytest.fixture(scope="module")
def tiny_model() -> torch.nn.Module:
    """A small paper-preset U-Net with fresh (seeded) weights."""
    torch.manual_seed(0)
    return build_model("unet", "paper", width=4)


@pytest.fixture(scope="module")
def separator(tiny_model: torch.nn.Module) -> Separator:
    return Separator(tiny_model)


def noise(channels: int, samples: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((channels, samples)) * 0.1).astype(
        np.float32
    )


@pytest.mark.parametrize(
    ("rate", "channels", "samples"),
    [(44100, 2, 44100 * 3 + 7), (48000, 1, 48000 * 2 + 1), (44100, 1, 999), (48000, 2, 12345)],
)
def test_stems_sum_to_the_mix_with_the_input_shape(
    separator: Separator, rate: int, channels: int, samples: int
) -> None:
    mix = noise(channels, samples)
    stems = separator.separate_array(mix, rate)
    assert stems["vocals"].shape == mix.shape == stems["accompaniment"].shape
    np.testing.assert_allclose(stems["vocals"] + stems["accompaniment"], mix, atol=1e-6)
    assert np.abs(stems["vocals"]).max() > 0


def test_one_dimensional_input_gives_one_dimensional_stems(separator: Separator) -> None:
    mix = noise(1, 8000)[0]
    stems = separator.separate_array(mix, 16000)
    assert stems["vocals"].shape == mix.shape


@pytest.mark.parametrize(
    ("rate", "channels", "samples", "fmt"),
    [(44100, 1, 44100 * 2 + 3, "wav"), (48000, 2, 48000 + 11, "flac"), (44100, 2, 30001, "wav")],
)
def test_files_keep_rate_channels_and_exact_length(
    separator: Separator, tmp_path: Path, rate: int, channels: int, samples: int, fmt: str
) -> None:
    source = tmp_path / f"song.{fmt}"
    mix = noise(channels, samples)
    sf.write(source, mix.T, rate, subtype="FLOAT" if fmt == "wav" else "PCM_24")
    decoded = sf.read(source, dtype="float32", always_2d=True)[0].T
    written = separator.separate_file(source, tmp_path / "out", fmt=fmt)
    stems = {}
    for stem, path in written.items():
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.frames) == (rate, channels, samples)
        stems[stem] = sf.read(path, dtype="float32", always_2d=True)[0].T
    # float WAV sums exactly; 24-bit FLAC within its quantisation step
    np.testing.assert_allclose(stems["vocals"] + stems["accompaniment"], decoded, atol=2e-6)


def test_file_and_in_memory_separation_agree(separator: Separator, tmp_path: Path) -> None:
    mix = noise(2, 44100 * 2)
    sf.write(tmp_path / "a.wav", mix.T, 44100, subtype="FLOAT")
    vocals = separator.separate_file(tmp_path / "a.wav", tmp_path / "o", stems=["vocals"])
    assert list(vocals) == ["vocals"]
    from_file = sf.read(vocals["vocals"], dtype="float32", always_2d=True)[0].T
    np.testing.assert_allclose(from_file, separator.separate_array(mix, 44100)["vocals"], atol=1e-6)


def test_gated_file_in_two_passes_equals_the_in_memory_gate(
    tiny_model: torch.nn.Module, tmp_path: Path
) -> None:
    rate = 16000
    t = np.arange(rate * 8) / rate
    mix = (0.3 * np.sin(2 * np.pi * 330 * t) * (t % 4 < 1.5)).astype(np.float32)[None]
    mix += noise(1, t.size) * 0.01
    sf.write(tmp_path / "a.wav", mix.T, rate, subtype="FLOAT")
    separator = Separator(tiny_model, post=parse_variant("gate=0.3"))
    written = separator.separate_file(tmp_path / "a.wav", tmp_path / "out")
    in_memory = separator.separate_array(mix, rate)
    for stem, path in written.items():
        audio = sf.read(path, dtype="float32", always_2d=True)[0].T
        np.testing.assert_allclose(audio, in_memory[stem], atol=1e-6)
    assert np.any(in_memory["vocals"] == 0)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "accompaniment.wav",
        "vocals.wav",
    ]


def test_a_twelve_minute_input_is_separated_to_the_last_sample(
    tiny_model: torch.nn.Module, tmp_path: Path
) -> None:
    rate = 8000
    minutes = 12
    t = np.arange(rate * 60 * minutes) / rate
    # a tone whose pitch changes every second, louder in the last minute
    pitch = 200 + 50 * (np.floor(t) % 7)
    mix = (0.2 * np.sin(2 * np.pi * pitch * t) * (1 + (t > 660))).astype(np.float32)[None]
    source = tmp_path / "long.flac"
    sf.write(source, mix.T, rate, subtype="PCM_24")
    written = Separator(tiny_model).separate_file(source, tmp_path / "out", fmt="flac")
    vocals = sf.read(written["vocals"], dtype="float32", always_2d=True)[0].T
    accompaniment = sf.read(written["accompaniment"], dtype="float32", always_2d=True)[0].T
    assert vocals.shape == accompaniment.shape == mix.shape
    last_minute = slice(-rate * 60, None)
    assert np.sqrt(np.mean(vocals[:, last_minute] ** 2)) > 0.01
    np.testing.assert_allclose(
        (vocals + accompaniment)[:, last_minute], mix[:, last_minute], atol=1e-4
    )


def test_energy_above_the_models_band_stays_in_the_stems(separator: Separator) -> None:
    rate = 44100
    t = np.arange(rate * 3) / rate
    treble = sum(np.sin(2 * np.pi * f * t) for f in (9000, 12000, 15000, 19000))
    mix = (0.05 * treble + noise(1, t.size)[0] * 0.5).astype(np.float32)[None].repeat(2, 0)
    stems = separator.separate_array(mix, rate)

    def above_8k(x: np.ndarray) -> float:
        spectrum = np.abs(np.fft.rfft(x, axis=-1)) ** 2
        return float(spectrum[:, np.fft.rfftfreq(x.shape[-1], 1 / rate) > 8000].sum())

    assert PRESETS["paper"].max_frequency_hz < 8000
    assert above_8k(stems["accompaniment"]) > 0.05 * above_8k(mix)
    assert above_8k(stems["vocals"] + stems["accompaniment"]) == pytest.approx(
        above_8k(mix), rel=1e-4
    )


def test_ratio_masks_sum_to_one_and_split_silence_evenly() -> None:
    masks = np.random.default_rng(1).random((2, 1, 8, 5)).astype(np.float32)
    masks[:, 0, 0, 0] = 0
    vocal = ratio_masks(masks)
    assert vocal[0, 0, 0] == pytest.approx(0.5)
    masks[:, 0, 0, 0] = 1  # elsewhere it is eq. 1.1 exactly
    np.testing.assert_allclose(
        vocal[0, 1:], (masks[0] / (masks[0] + masks[1]))[0, 1:], rtol=1e-5, atol=1e-6
    )


def test_above_band_mask_is_the_vocal_share_of_the_top_octave() -> None:
    mask = np.zeros((1, 8, 2), dtype=np.float32)
    mask[:, 4:, :] = [[0.0], [1.0], [1.0], [1.0]]
    magnitude = np.ones_like(mask)
    magnitude[:, 4, :] = 3.0  # the one non-vocal bin carries half the top octave's magnitude
    assert high_band_mask(mask, magnitude)[0, 0].tolist() == pytest.approx([0.5, 0.5])


def test_mask_mapping_interpolates_in_hertz_and_seconds() -> None:
    preset = PRESETS["paper"]
    frames = 6
    freqs = np.arange(preset.bins) * preset.sample_rate / preset.n_fft
    mask = np.repeat((freqs / freqs[-1])[None, :, None], frames, axis=2).astype(np.float32)
    high = np.full((1, 1, frames), 0.25, dtype=np.float32)
    n_fft, hop = full_resolution(44100)
    out_frames = 40
    mapped = map_to_full_band(
        torch.from_numpy(mask), torch.from_numpy(high), preset, 44100, n_fft, hop, out_frames
    )
    full = mapped.dense().numpy()
    spec = torch.ones(1, n_fft // 2 + 1, out_frames, dtype=torch.complex64) * (1 - 2j)
    np.testing.assert_allclose(mapped.apply(spec).numpy(), full * (1 - 2j), rtol=1e-6)
    full_freqs = np.arange(n_fft // 2 + 1) * 44100 / n_fft
    inside = full_freqs <= freqs[-1]
    np.testing.assert_allclose(full[0, inside, 7], full_freqs[inside] / freqs[-1], atol=1e-5)
    assert np.all(full[0, ~inside] == pytest.approx(0.25))
    assert (n_fft, hop) == (2048, 1024)


@settings(max_examples=40, deadline=None)
@given(
    total=st.integers(1, 5000),
    size=st.integers(3, 900),
    overlap_share=st.floats(0, 0.49),
    piece=st.integers(1, 700),
)
def test_cross_faded_blocks_rebuild_the_stream_exactly(
    total: int, size: int, overlap_share: float, piece: int
) -> None:
    overlap = int(size * overlap_share)
    signal = np.random.default_rng(total).standard_normal((2, total)).astype(np.float32)
    fader = CrossFader(overlap)
    blocks = list(overlapping_blocks(array_pieces(signal, piece), 2, size, overlap))
    assert all(b.shape[1] <= size for b, _ in blocks) and blocks[-1][1]
    assert all(b.shape[1] > overlap for b, _ in blocks[1:])
    out = np.concatenate([fader.push(b, last) for b, last in blocks], axis=1)
    np.testing.assert_allclose(out, signal, atol=1e-5)


def test_patches_cover_every_frame_and_merge_back() -> None:
    spec = np.random.default_rng(2).random((1, 4, 300)).astype(np.float32)
    for overlap in (0.0, 0.25, 0.5):
        starts = patch_starts(300, 128, overlap)
        assert starts[0] == 0 and starts[-1] == 300 - 128
        merged = merge_patches(split_patches(spec, 128, starts), starts, 300)
        np.testing.assert_allclose(merged, spec, rtol=1e-5)
    short = split_patches(spec[..., :50], 128, [0])
    assert short.shape == (1, 1, 4, 128)


def test_blocks_hold_whole_model_patches() -> None:
    preset = PRESETS["paper"]
    size, overlap = ChunkSettings().block_samples(44100, preset)
    model_frames = 1 + int(size * preset.sample_rate / 44100) // preset.hop
    assert model_frames <= 4 * preset.patch_frames
    assert overlap == 88200


def test_inputs_expand_from_files_folders_and_globs(tmp_path: Path) -> None:
    (tmp_path / "album" / "cd1").mkdir(parents=True)
    for name in ("album/a.flac", "album/cd1/b.mp3", "album/cover.jpg", "c.wav"):
        (tmp_path / name).write_bytes(b"x")
    files, errors = expand_inputs(
        [str(tmp_path / "album"), str(tmp_path / "*.wav"), str(tmp_path / "missing.wav")]
    )
    assert [f.name for f in files] == ["a.flac", "b.mp3", "c.wav"]
    assert errors == [f"{tmp_path / 'missing.wav'}: no such file"]
    assert output_dir_for(Path("x/Song.stem.mp4"), Path("out")) == Path("out/Song")
    assert output_dir_for(Path("x/my.song.flac"), Path("out")) == Path("out/my.song")


def test_model_spec_parses_name_and_version() -> None:
    assert parse_model_spec("voice:3") == ("voice", 3)
    assert parse_model_spec("voice") == ("voice", None)
    assert parse_model_spec(None) == ("vocalmine", None)
    with pytest.raises(ValueError, match="version must be a number"):
        parse_model_spec("voice:latest")


def test_existing_output_is_not_overwritten(separator: Separator, tmp_path: Path) -> None:
    sf.write(tmp_path / "a.wav", noise(1, 16000).T, 16000)
    out = tmp_path / "out"
    out.mkdir()
    (out / "vocals.wav").write_bytes(b"keep me")
    with pytest.raises(OutputExistsError, match="pass --overwrite"):
        separator.separate_file(tmp_path / "a.wav", out)
    assert (out / "vocals.wav").read_bytes() == b"keep me"
    assert not (out / "accompaniment.wav").exists()
    separator.separate_file(tmp_path / "a.wav", out, overwrite=True)
    assert sf.info(out / "vocals.wav").frames == 16000
    # written through a private temp file, but published with the usual permissions
    umask = os.umask(0o022)
    os.umask(umask)
    assert (out / "vocals.wav").stat().st_mode & 0o777 == 0o666 & ~umask


# --- the command line ------------------------------------------------------------------------


@pytest.fixture
def registered(tmp_path: Path, tiny_model: torch.nn.Module) -> Path:
    """A data folder whose registry holds the tiny model as ``vocalmine`` v1."""
    data = tmp_path / "data"
    catalog = open_catalog(f"sqlite:///{data / 'catalog.db'}")
    ModelRegistry(str(data / "models"), catalog).register(
        tiny_model, name="vocalmine", config={}, manifest=None, metrics={}
    )
    catalog.dispose()
    return data


def cli() -> typer.Typer:
    app = typer.Typer()
    app.command("separate")(separate_command)
    app.command("noop")(lambda: None)
    return app


def test_command_separates_a_batch_and_reports_bad_files_in_one_line(
    registered: Path, tmp_path: Path
) -> None:
    songs = tmp_path / "songs"
    songs.mkdir()
    sf.write(songs / "good.wav", noise(2, 22050).T, 22050)
    (songs / "broken.flac").write_text("this is not audio")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli(),
        ["separate", str(songs), "-o", str(out), "--data-dir", str(registered), "-f", "flac"],
    )
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "broken.flac: " in errors[0] and "decode" in errors[0]
    assert sf.info(out / "good" / "vocals.flac").frames == 22050
    assert sf.info(out / "good" / "accompaniment.flac").frames == 22050
    assert not (out / "broken").exists() or not any((out / "broken").iterdir())


def test_command_skips_existing_stems_unless_overwrite(registered: Path, tmp_path: Path) -> None:
    sf.write(tmp_path / "song.wav", noise(1, 16000).T, 16000)
    target = tmp_path / "out" / "song"
    target.mkdir(parents=True)
    (target / "vocals.mp3").write_bytes(b"older")
    args = ["separate", str(tmp_path / "song.wav"), "-o", str(tmp_path / "out")]
    args += ["--data-dir", str(registered), "--format", "mp3", "--stems", "vocals"]
    result = CliRunner().invoke(cli(), args)
    assert result.exit_code == 0, result.output
    assert "skip:" in result.output and "--overwrite" in result.output
    assert (target / "vocals.mp3").read_bytes() == b"older"
    result = CliRunner().invoke(cli(), [*args, "--overwrite", "--gate", "--binarize", "10"])
    assert result.exit_code == 0, result.output
    assert (target / "vocals.mp3").read_bytes()[:3] != b"old"
    assert not (target / "accompaniment.mp3").exists()


def test_command_without_a_registered_model_is_a_one_line_error(tmp_path: Path) -> None:
    sf.write(tmp_path / "song.wav", noise(1, 1600).T, 16000)
    result = CliRunner().invoke(
        cli(),
        ["separate", str(tmp_path / "song.wav"), "-o", str(tmp_path / "o")]
        + ["--data-dir", str(tmp_path / "empty"), "--model", "nobody:2"],
    )
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0
    assert "nobody" in result.output


def test_command_workers_option_changes_speed_not_stems(registered: Path, tmp_path: Path) -> None:
    sf.write(tmp_path / "song.wav", noise(2, 16000 * 100).T, 16000)  # three model blocks
    stems = {}
    for workers in ("1", "2"):
        out = tmp_path / f"out{workers}"
        args = ["separate", str(tmp_path / "song.wav"), "-o", str(out), "--workers", workers]
        result = CliRunner().invoke(cli(), [*args, "--data-dir", str(registered)])
        assert result.exit_code == 0, result.output
        stems[workers] = sf.read(out / "song" / "vocals.wav", dtype="float32")[0]
    np.testing.assert_allclose(stems["1"], stems["2"], atol=1e-4)
