"""Separation models built from stored weights: registry versions and a run's best checkpoint.

The registry (:mod:`storage.registry`) stores and returns weights with the model's spec; the
models are built here, one layer above it, so storage never imports training.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from vocalmine.storage.registry import ModelRegistry
from vocalmine.training.models import SeparationModel, model_from_spec
from vocalmine.training.trainer import checkpoint_weights


def model_from_weights(
    spec: dict[str, Any],
    state: Mapping[str, torch.Tensor],
    *,
    device: str | torch.device = "cpu",
) -> SeparationModel:
    """The model ``spec`` describes with ``state`` loaded, on ``device``, in eval mode."""
    model = model_from_spec(spec)
    model.load_state_dict(state)
    return model.to(device).eval()


def load_model(
    registry: ModelRegistry,
    name: str,
    version: int | None = None,
    *,
    device: str | torch.device = "cpu",
) -> tuple[SeparationModel, dict[str, Any]]:
    """A registered version as a model (eval mode) and its record; ``None`` = current/latest."""
    state, record = registry.load_weights(name, version)
    return model_from_weights(record["card"]["model"], state, device=device), record


def load_registered_model(
    registry: ModelRegistry, spec: str | None, *, device: str | torch.device = "cpu"
) -> tuple[SeparationModel, dict[str, Any]]:
    """The registry's model for ``NAME[:VERSION]`` (the default model's current for None). The
    caller opens (and closes) the catalog behind ``registry``: training never does."""
    state, record = registry.resolve(spec)
    return model_from_weights(record["card"]["model"], state, device=device), record


def trained_model(result: Mapping[str, Any]) -> SeparationModel:
    """The best model of a finished training run, from its ``result.json`` (CPU, eval mode)."""
    return model_from_weights(result["model"], checkpoint_weights(Path(result["best_checkpoint"])))
