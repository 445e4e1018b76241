"""Model architectures: shapes, parameter counts derived from the papers, masks, learning."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from tests.test_shards import STEREO, TINY
from vocalmine.core.stft import PRESETS
from vocalmine.training.losses import separation_loss, volume_weights
from vocalmine.training.models import MODEL_KINDS, UNet, build_model, model_from_spec
from vocalmine.training.models.flops import conv_macs

K = 5 * 5  # every kernel is 5×5


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """The test machine is small and shared: one intra-op thread avoids oversubscription."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def conv(cin: int, cout: int) -> int:
    """Weights and biases of one 5×5 (transposed) convolution."""
    return cin * cout * K + cout


def unet_parameters(channels_in: int, channels_out: int, width: int = 16, skip: bool = True) -> int:
    """Parameters of Jansson et al. 2017's U-Net, counted from its description.

    Encoder: six 5×5 convolutions width → 32·width, each with batch norm (γ and β per channel).
    Decoder: five 5×5 transposed convolutions with batch norm whose inputs, after the first,
    are doubled by the skip concatenation; then the last transposed convolution to the mask.
    """
    enc = [width * 2**i for i in range(6)]
    total = 0
    previous = channels_in
    for c in enc:
        total += conv(previous, c) + 2 * c
        previous = c
    dec_out = enc[-2::-1]
    factor = 2 if skip else 1
    previous = enc[-1]
    for c in dec_out:
        total += conv(previous, c) + 2 * c
        previous = c * factor
    return total + conv(previous, channels_out)


def test_paper_unet_has_the_papers_parameter_count() -> None:
    net = UNet(1, 1)
    count = sum(p.numel() for p in net.parameters())
    assert count == unet_parameters(1, 1) == 9_823_313  # "about 9.8 M"


def test_stereo_unet_count_is_the_theses_up_to_its_output_layer() -> None:
    # The thesis (Prétet 2018 §4.3) reports 9,822,725 parameters for its stereo U-Net. Ours has
    # 9,824,514: the thesis's last decoder layer differs in details it does not give (its count
    # matches a one-channel last layer plus a 4×4 output convolution and no batch norm after the
    # sixth encoder block, as in Deezer's later open-source U-Net). The body is identical.
    count = sum(p.numel() for p in UNet(2, 2).parameters())
    assert count == unet_parameters(2, 2) == 9_824_514
    assert abs(count - 9_822_725) / 9_822_725 < 2e-4


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("unet", 2 * unet_parameters(1, 1)),
        ("no-skip", 2 * unet_parameters(1, 1, skip=False)),
        ("spectrogram-channels", unet_parameters(1, 2)),
    ],
)
def test_separator_parameter_counts(kind: str, expected: int) -> None:
    model = build_model(kind, "paper")
    assert model.parameter_count() == expected


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_paper_preset_shapes_and_masks_in_unit_interval(kind: str) -> None:
    model = build_model(kind, "paper")
    x = torch.rand(2, 1, 512, 128)
    masks = model(x)
    assert masks.shape == (2, 2, 1, 512, 128)
    assert masks.min() >= 0.0 and masks.max() <= 1.0


def test_hq_preset_shapes_with_a_narrow_model() -> None:
    # hq is 2×1024×512; width 2 keeps the test light, the geometry is the same as width 16.
    model = build_model("spectrogram-channels", "hq", width=2).eval()
    assert model(torch.rand(1, *_shape("hq"))).shape == (1, 2, 2, 1024, 512)


def _shape(preset: str) -> tuple[int, int, int]:
    p = PRESETS[preset]
    return (p.channels, p.bins, p.patch_frames)


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_any_patch_size_is_padded_and_cropped(kind: str) -> None:
    model = build_model(kind, STEREO, width=2).eval()
    masks = model(torch.rand(3, 2, 40, 27))
    assert masks.shape == (3, 2, 2, 40, 27)
    assert masks.min() >= 0.0 and masks.max() <= 1.0


def test_flop_floor_matches_the_issue() -> None:
    macs = conv_macs(UNet(1, 1), _shape("paper"))
    assert macs["encoder"] == pytest.approx(0.27e9, rel=0.01)
    assert macs["decoder"] + macs["head"] == pytest.approx(0.49e9, rel=0.02)
    assert macs["total"] == pytest.approx(0.75e9, rel=0.01)


@pytest.mark.parametrize("kind", MODEL_KINDS)
@pytest.mark.parametrize("loss", ["l1", "mse"])
def test_one_adam_step_lowers_the_loss_on_a_fixed_batch(kind: str, loss: str) -> None:
    torch.manual_seed(0)
    model = build_model(kind, TINY, width=4, dropout=0.0)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    mix = torch.rand(4, 1, 64, 32)
    vocals = mix * torch.rand_like(mix)
    targets = torch.stack([vocals, mix - vocals], dim=1)

    def step() -> float:
        value, _ = separation_loss(model(mix), mix, targets, loss=loss)
        optimiser.zero_grad()
        value.backward()
        optimiser.step()
        return value.item()

    before = step()
    after, _ = separation_loss(model(mix), mix, targets, loss=loss)
    assert after.item() < before


def test_volume_balancing_weights_favour_the_quiet_source() -> None:
    targets = torch.stack([torch.full((2, 1, 4, 4), 0.1), torch.full((2, 1, 4, 4), 0.3)], dim=1)
    weights = volume_weights(targets)
    assert weights.tolist() == pytest.approx([1.5, 0.5], rel=1e-4)
    masks = torch.full((2, 2, 1, 4, 4), 0.5, requires_grad=True)
    mix = torch.full((2, 1, 4, 4), 0.4)
    plain, errors = separation_loss(masks, mix, targets)
    balanced, _ = separation_loss(masks, mix, targets, volume_balance=True)
    assert errors.tolist() == pytest.approx([0.1, 0.1])
    assert plain.item() == pytest.approx(0.2) and balanced.item() == pytest.approx(0.2)


def test_spec_round_trip_rebuilds_the_same_architecture() -> None:
    model = build_model("no-skip", TINY, width=3, dropout=0.25)
    rebuilt = model_from_spec(model.spec())
    assert rebuilt.kind == "no-skip" and rebuilt.preset == TINY
    assert rebuilt.parameter_count() == model.parameter_count()


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown model kind 'vnet'"):
        build_model("vnet", "paper")
    with pytest.raises(ValueError, match="unknown STFT preset"):
        build_model("unet", "cd")
