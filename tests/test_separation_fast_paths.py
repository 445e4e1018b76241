"""The fast inference paths give the numbers of the plain ones: framed STFT/iSTFT against
torch's, the fused mask-and-resynthesis against mask-then-inverse, the U-Net's inference mask
head against its transposed convolution, and blocks separated in parallel against blocks
separated one after the other."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vocalmine.core.audio import resample
from vocalmine.core.stft import PRESETS, magnitude
from vocalmine.separation.masks import (
    FullBandMask,
    _window,
    istft,
    masked_istft,
    stft,
)
from vocalmine.separation.separate import Separator
from vocalmine.training.models import build_model

CLIP = "amy_10_03.flac"


def torch_stft(audio: torch.Tensor, n_fft: int, hop: int, window: str) -> torch.Tensor:
    return torch.stft(
        audio,
        n_fft,
        hop,
        window=_window(window, n_fft, audio),  # type: ignore[arg-type]
        center=True,
        pad_mode="constant",
        return_complex=True,
    )


@settings(max_examples=30, deadline=None)
@given(
    length=st.integers(1, 20000),
    n_fft=st.sampled_from([64, 256, 1000, 2048]),
    ratio=st.sampled_from([2, 3, 4]),
    window=st.sampled_from(["hann", "sqrt-hann"]),
    channels=st.integers(1, 2),
)
def test_framed_stft_and_istft_equal_torchs(
    length: int, n_fft: int, ratio: int, window: str, channels: int
) -> None:
    hop = n_fft // ratio
    audio = torch.from_numpy(np.random.default_rng(length).standard_normal((channels, length)))
    audio = audio.float()
    ours = stft(audio, n_fft, hop, window)  # type: ignore[arg-type]
    theirs = torch_stft(audio, n_fft, hop, window)
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    back = istft(ours, n_fft, hop, length, window)  # type: ignore[arg-type]
    expected = torch.istft(
        theirs,
        n_fft,
        hop,
        window=_window(window, n_fft, audio),  # type: ignore[arg-type]
        center=True,
        length=length,
    )
    torch.testing.assert_close(back, expected, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def clip(mir1k_dir: Path) -> np.ndarray:
    audio, _ = sf.read(mir1k_dir / CLIP, dtype="float32", always_2d=True)
    return np.ascontiguousarray(audio.T)  # 16 kHz, L = accompaniment, R = vocals


def test_fused_mask_and_resynthesis_equals_masking_the_stft_then_inverting(
    clip: np.ndarray,
) -> None:
    audio = torch.from_numpy(clip)
    n_fft, hop = 1024, 512
    frames = 1 + audio.shape[-1] // hop
    rng = np.random.default_rng(0)
    mask = FullBandMask(
        torch.from_numpy(rng.random((2, 300, frames), dtype=np.float32)),
        torch.from_numpy(rng.random((2, 1, frames), dtype=np.float32)),
        n_fft // 2 + 1,
    )
    fused = masked_istft(audio, mask, n_fft, hop, "sqrt-hann")
    spec = torch_stft(audio, n_fft, hop, "sqrt-hann") * mask.dense()
    expected = torch.istft(
        spec,
        n_fft,
        hop,
        window=_window("sqrt-hann", n_fft, audio),
        center=True,
        length=audio.shape[-1],
    )
    torch.testing.assert_close(fused, expected, rtol=1e-5, atol=1e-6)


def test_inference_mask_head_equals_the_transposed_convolution_on_real_audio(
    clip: np.ndarray,
) -> None:
    preset = PRESETS["paper"]
    mix = resample(clip.sum(axis=0, keepdims=True), 16000, preset.sample_rate)
    spec = magnitude(mix, preset)[None, :, :, : preset.patch_frames]
    x = torch.from_numpy(spec / spec.max())
    torch.manual_seed(0)
    model = build_model("unet", preset).eval()
    with torch.no_grad():
        plain = model(x)
    with torch.inference_mode():
        fast = model(x)
    assert fast.shape == plain.shape == (1, 2, 1, preset.bins, x.shape[-1])
    torch.testing.assert_close(fast, plain, rtol=0, atol=1e-5)


def test_blocks_in_parallel_give_the_sequential_result() -> None:
    torch.manual_seed(0)
    model = build_model("unet", "paper", width=4)
    rate = 8000
    audio = (np.random.default_rng(1).standard_normal((1, 130 * rate)) * 0.1).astype(np.float32)
    threads = torch.get_num_threads()
    one = Separator(model, workers=1).separate_array(audio, rate)
    two = Separator(model, workers=2).separate_array(audio, rate)
    assert torch.get_num_threads() == threads  # the caller's setting survives the pool
    for stem in ("vocals", "accompaniment"):
        np.testing.assert_allclose(two[stem], one[stem], rtol=0, atol=1e-5)
    np.testing.assert_allclose(two["vocals"] + two["accompaniment"], audio, atol=1e-6)
