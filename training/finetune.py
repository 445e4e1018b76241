"""Fine-tuning: starting a run from saved weights, and keeping parts of the model fixed.

An *init weights* file is a torch file holding ``{"spec": SeparationModel.spec(), "state":
state_dict}``; :func:`save_init_weights` writes one (the command line does it for a registered
model), :func:`init_model` loads one into a freshly built model after checking that it was made
for the same architecture (kind, STFT preset fields, width).

:func:`freeze` stops training what :attr:`TrainConfig.freeze` names: ``"norm"`` every batch norm
(its affine parameters, and its running statistics: the layer stays in eval mode), ``"encoder"``
every module called ``encoder`` (convolutions and batch norms, the latter in eval mode). Since
``model.train()`` would put those batch norms back in training mode, the trainer switches modes
with :func:`set_training`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from vocalmine.core.atomic import atomic_path
from vocalmine.core.stft import STFTPreset, same_geometry
from vocalmine.training.config import FREEZE_PARTS
from vocalmine.training.models import SeparationModel, spec_preset


def save_init_weights(path: str | Path, model: SeparationModel) -> Path:
    """Write ``model``'s spec and weights (on the CPU) to ``path`` atomically; returns the path."""
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"spec": model.spec(), "state": state}, tmp)
    return Path(path)


def load_init_weights(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(spec, state_dict)`` of an init weights file, loaded on the CPU (tensors only)."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(saved, dict) or not {"spec", "state"} <= saved.keys():
        raise ValueError(f"{path}: not an init weights file (a dict with 'spec' and 'state')")
    return saved["spec"], saved["state"]


def _describe_preset(preset: STFTPreset) -> str:
    return (
        f"{preset.name} ({preset.sample_rate} Hz, {preset.channels} ch, n_fft {preset.n_fft}, "
        f"hop {preset.hop}, {preset.bins}×{preset.patch_frames})"
    )


def spec_mismatch(spec: dict[str, Any], model: SeparationModel) -> str | None:
    """How a saved spec differs from ``model`` in kind, preset fields (not the name) or width,
    as one line; None when it fits."""
    saved_preset = spec_preset(spec)
    differences = []
    if spec["kind"] != model.kind:
        differences.append(f"kind {spec['kind']!r} (run: {model.kind!r})")
    if not same_geometry(saved_preset, model.preset):
        differences.append(
            f"preset {_describe_preset(saved_preset)} (run: {_describe_preset(model.preset)})"
        )
    if spec["width"] != model.width:
        differences.append(f"width {spec['width']} (run: {model.width})")
    return "; ".join(differences) or None


def init_model(model: SeparationModel, path: str | Path) -> None:
    """Load the init weights at ``path`` into ``model`` (strictly); a file made for another
    architecture is a one-line :class:`ValueError`."""
    spec, state = load_init_weights(path)
    mismatch = spec_mismatch(spec, model)
    if mismatch:
        raise ValueError(f"init weights {path} do not fit this run's model: {mismatch}")
    expected = model.state_dict()
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    shared = expected.keys() & state.keys()
    reshaped = sorted(k for k in shared if expected[k].shape != state[k].shape)
    if missing or unexpected or reshaped:
        raise ValueError(
            f"init weights {path}: {len(missing)} missing, {len(unexpected)} unexpected and "
            f"{len(reshaped)} reshaped tensors (first: {(missing + unexpected + reshaped)[0]})"
        )
    model.load_state_dict(state, strict=True)


def freeze(model: nn.Module, mode: str) -> list[nn.Module]:
    """Stop gradients for what ``mode`` freezes: ``"none"``, or a ``+``-joined list of
    :data:`FREEZE_PARTS` (``"norm"`` every batch norm, ``"encoder"`` every module named encoder,
    ``"vocals"``/``"accompaniment"`` that source's whole network in a one-network-per-source
    model); returns the batch-norm layers to keep in eval mode (see :func:`set_training`)."""
    frozen: list[nn.Module] = []
    for part in [] if mode == "none" else mode.split("+"):
        if part == "norm":
            frozen += [m for m in model.modules() if isinstance(m, _BatchNorm)]
        elif part == "encoder":
            found = [m for name, m in model.named_modules() if name.rsplit(".", 1)[-1] == "encoder"]
            if not found:
                raise ValueError(f"{type(model).__name__} has no module named 'encoder' to freeze")
            frozen += found
        elif part in FREEZE_PARTS:
            nets = getattr(model, "nets", None)
            if not isinstance(nets, nn.ModuleDict) or part not in nets:
                raise ValueError(f"{type(model).__name__} has no {part} network to freeze")
            frozen.append(nets[part])
        else:
            raise ValueError(f"unknown freeze {part!r}; choose none or {'+'.join(FREEZE_PARTS)}")
    for module in frozen:
        module.requires_grad_(False)
    norms = (m for module in frozen for m in module.modules() if isinstance(m, _BatchNorm))
    return list(dict.fromkeys(norms))


def set_training(model: nn.Module, frozen_norms: list[nn.Module]) -> None:
    """``model.train()``, with the frozen batch norms left in eval mode."""
    model.train()
    for norm in frozen_norms:
        norm.eval()


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters the optimiser updates (those :func:`freeze` left trainable)."""
    return [p for p in model.parameters() if p.requires_grad]
