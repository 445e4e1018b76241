"""Post-processing (Prétet 2018 §4.4.3) moves the scores the way the docs say, on real audio.

A realistic imperfect estimate is made from a MIR-1K clip's true stems: the ideal ratio mask
pulled a third of the way towards 0.5 (as a mediocre model leaks the other source). Each option
is applied to it with the same functions the separator uses and scored with museval.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import given
from hypothesis import strategies as st

from vocalmine.separation.eval_datasets import EvalTrack
from vocalmine.separation.masks import FULL_BAND_WINDOW, full_resolution, istft, stft
from vocalmine.separation.postprocess import (
    HopEnergyMeter,
    apply_gate,
    binarize,
    gate_gain,
    hop_energies,
    parse_variant,
    wiener,
)
from vocalmine.separation.scoring import score_track
from vocalmine.separation.separate import Separator
from vocalmine.separation.settings import GateSettings, PostProcessing
from vocalmine.training.models import build_model

CLIP = "amy_10_03.flac"  # 6.2 s; the singer pauses for several seconds


@pytest.fixture(scope="module")
def clip(mir1k_dir: Path) -> EvalTrack:
    audio, rate = sf.read(mir1k_dir / CLIP, dtype="int16", always_2d=True)
    stems = audio.T.astype(np.float32) / 32768.0
    accompaniment, vocals = stems[:1], stems[1:2]
    return EvalTrack(
        CLIP, accompaniment + vocals, {"vocals": vocals, "accompaniment": accompaniment}, rate
    )


@pytest.fixture(scope="module")
def leaky(clip: EvalTrack) -> tuple[torch.Tensor, np.ndarray]:
    """The mixture STFT and a leaky vocal ratio mask on its grid."""
    n_fft, hop = full_resolution(clip.sample_rate)
    mix = stft(torch.from_numpy(clip.mixture), n_fft, hop, FULL_BAND_WINDOW)
    vocal = stft(torch.from_numpy(clip.references["vocals"]), n_fft, hop, FULL_BAND_WINDOW).abs()
    accompaniment = stft(
        torch.from_numpy(clip.references["accompaniment"]), n_fft, hop, FULL_BAND_WINDOW
    ).abs()
    ideal = (vocal / (vocal + accompaniment + 1e-8)).numpy()
    return mix, (2 / 3 * ideal + 1 / 3 * 0.5).astype(np.float32)


def scores(clip: EvalTrack, vocals: np.ndarray) -> dict[str, float]:
    table = score_track(clip, {"vocals": vocals, "accompaniment": clip.mixture - vocals})
    table = table[table.source == "vocals"]
    return {m: float(np.nanmedian(table[table.metric == m].value)) for m in ("SDR", "SIR", "SAR")}


def reconstruct(clip: EvalTrack, spec: torch.Tensor) -> np.ndarray:
    n_fft, hop = full_resolution(clip.sample_rate)
    return istft(spec, n_fft, hop, clip.mixture.shape[1], FULL_BAND_WINDOW).numpy()


@pytest.fixture(scope="module")
def plain(clip: EvalTrack, leaky: tuple[torch.Tensor, np.ndarray]) -> dict[str, float]:
    mix, mask = leaky
    return scores(clip, reconstruct(clip, mix * torch.from_numpy(mask)))


def test_binarisation_raises_vocal_sir_and_lowers_sar(
    clip: EvalTrack, leaky: tuple[torch.Tensor, np.ndarray], plain: dict[str, float]
) -> None:
    mix, mask = leaky
    sharp = scores(clip, reconstruct(clip, mix * torch.from_numpy(binarize(mask, 10.0))))
    assert sharp["SIR"] > plain["SIR"] + 1.0
    assert sharp["SAR"] < plain["SAR"]


def test_gate_zeroes_the_vocal_pauses_raising_sir_at_a_sar_cost(
    clip: EvalTrack, leaky: tuple[torch.Tensor, np.ndarray], plain: dict[str, float]
) -> None:
    mix, mask = leaky
    vocals = reconstruct(clip, mix * torch.from_numpy(mask))
    settings = GateSettings(threshold=0.2, min_silence_s=1.0)
    gated = apply_gate(vocals, settings, clip.sample_rate)
    hop = round(0.01 * clip.sample_rate)
    gain = gate_gain(hop_energies(vocals, hop), settings, clip.sample_rate)
    silent = np.flatnonzero(gain == 0)
    assert silent.size * 0.01 > 1.0
    inner = silent[(silent > silent.min() + 1) & (silent < silent.max() - 1)]
    for h in inner[:50]:
        assert np.all(gated[:, h * hop : (h + 1) * hop] == 0)
    gated_scores = scores(clip, gated)
    assert gated_scores["SIR"] > plain["SIR"] + 1.0
    assert gated_scores["SAR"] < plain["SAR"]


def test_wiener_filter_sharpens_a_mono_estimate_towards_higher_sir(
    clip: EvalTrack, leaky: tuple[torch.Tensor, np.ndarray], plain: dict[str, float]
) -> None:
    mix, mask = leaky
    filtered = wiener(mix.numpy(), mask, iterations=1)
    vocals = reconstruct(clip, torch.from_numpy(filtered))
    assert not np.allclose(vocals, reconstruct(clip, mix * torch.from_numpy(mask)), atol=1e-4)
    assert scores(clip, vocals)["SIR"] > plain["SIR"]


def test_each_option_changes_the_separator_output_and_keeps_the_stem_sum(
    clip: EvalTrack,
) -> None:
    torch.manual_seed(0)
    model = build_model("unet", "paper", width=4)
    base = Separator(model).separate_array(clip.mixture, clip.sample_rate)["vocals"]
    for variant in ("binarize", "wiener", "gate=0.6"):
        stems = Separator(model, post=parse_variant(variant)).separate_array(
            clip.mixture, clip.sample_rate
        )
        assert not np.allclose(stems["vocals"], base, atol=1e-5), variant
        np.testing.assert_allclose(
            stems["vocals"] + stems["accompaniment"], clip.mixture, atol=1e-6
        )


@given(st.lists(st.floats(0, 1), min_size=1, max_size=50), st.floats(1, 50))
def test_binarisation_is_monotone_and_keeps_masks_complementary(
    values: list[float], alpha: float
) -> None:
    mask = np.sort(np.asarray(values, dtype=np.float32))
    out = binarize(mask, alpha)
    assert np.all(np.diff(out) >= 0)
    np.testing.assert_allclose(binarize(1 - mask, alpha), 1 - out, atol=1e-6)
    assert binarize(np.float32(0.5), alpha) == pytest.approx(0.5)


def test_gate_keeps_short_pauses_and_fades_long_ones() -> None:
    rate = 1000
    voice = np.ones(rate * 6, dtype=np.float32)
    voice[1000:1500] = 0.01  # 0.5 s pause: kept
    voice[3000:5000] = 0.01  # 2 s pause: silenced
    gated = apply_gate(voice[None], GateSettings(min_silence_s=1.0, fade_s=0.05), rate)[0]
    np.testing.assert_allclose(gated[1100:1400], 0.01, rtol=1e-5)
    assert np.all(gated[3300:4700] == 0)
    assert np.all(gated[:900] == 1) and np.all(gated[5200:] == 1)
    ramp = gated[3000:3300]
    assert np.all(np.diff(ramp) <= 1e-7) and ramp[0] > ramp[-1]


def test_streamed_energies_equal_whole_signal_energies() -> None:
    audio = np.random.default_rng(0).standard_normal((2, 10_007)).astype(np.float32)
    meter = HopEnergyMeter(160)
    for start in range(0, audio.shape[1], 999):
        meter.push(audio[:, start : start + 999])
    np.testing.assert_allclose(meter.energies(), hop_energies(audio, 160), rtol=1e-6)


def test_variants_parse_with_thesis_defaults() -> None:
    assert parse_variant("none") == PostProcessing()
    assert parse_variant("binarize").binarize_alpha == 10
    assert parse_variant("gate").gate == GateSettings(threshold=0.2, min_silence_s=1.0)
    combined = parse_variant("binarize=5+wiener=2+gate=0.5")
    assert combined.label == "binarize(a=5)+wiener(it=2)+gate(b=0.5,a=1s)"
    with pytest.raises(ValueError, match="use none, binarize"):
        parse_variant("reverb")
