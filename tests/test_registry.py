"""Model registry: versions, cards, catalog rows, promotion, loading by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from vocalmine.storage.catalog import Catalog
from vocalmine.storage.registry import ModelRegistry, RegistryError
from vocalmine.training.models import build_model

from tests.test_shards import TINY


@pytest.fixture
def registry(tmp_path: Path, catalog_url: str) -> ModelRegistry:
    catalog = Catalog(catalog_url)
    catalog.upgrade()
    return ModelRegistry(str(tmp_path / "models"), catalog)


def test_register_then_load_gives_the_same_model(registry: ModelRegistry, tmp_path: Path) -> None:
    model = build_model("unet", TINY, width=2)
    manifest = {"schema_version": 1, "dataset": "ds", "counts": {"rows": 10}}
    version = registry.register(
        model, name="voc", config={"lr": 1e-3}, manifest=manifest, metrics={"val_l1": 0.1}
    )
    assert version == 1
    card = json.loads((tmp_path / "models" / "voc" / "v1" / "card.json").read_text())
    assert card["model"]["kind"] == "unet" and card["model"]["width"] == 2
    assert card["manifest"] == manifest and card["metrics"] == {"val_l1": 0.1}
    loaded, record = registry.load("voc")
    assert record["version"] == 1 and record["kind"] == "unet" and record["preset"] == "tiny"
    assert not loaded.training
    x = torch.rand(2, 1, 64, 32)
    model.eval()
    assert torch.equal(loaded(x), model(x))


def test_load_without_version_prefers_current_then_latest(registry: ModelRegistry) -> None:
    for width in (1, 2, 3):
        registry.register(
            build_model("no-skip", TINY, width=width),
            name="m",
            config={},
            manifest=None,
            metrics={"width": width},
        )
    assert registry.load("m")[1]["version"] == 3
    assert registry.current("m") is None
    registry.promote("m", 2)
    model, record = registry.load("m")
    assert record["version"] == 2 and record["is_current"] and model.width == 2
    registry.promote("m", 1)
    assert [r["is_current"] for r in registry.list("m")] == [True, False, False]
    assert registry.current("m")["version"] == 1
    assert registry.load("m", 3)[0].width == 3


def test_unknown_names_and_versions_are_clear_errors(registry: ModelRegistry) -> None:
    with pytest.raises(RegistryError, match="no model named 'nope'"):
        registry.load("nope")
    registry.register(
        build_model("unet", TINY, width=1), name="a", config={}, manifest=None, metrics={}
    )
    with pytest.raises(RegistryError, match="no version 5 of model named 'a'"):
        registry.promote("a", 5)


def test_damaged_weights_are_refused(registry: ModelRegistry, tmp_path: Path) -> None:
    registry.register(
        build_model("unet", TINY, width=1), name="a", config={}, manifest=None, metrics={}
    )
    weights = tmp_path / "models" / "a" / "v1" / "model.pt"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(RegistryError, match="checksum mismatch"):
        registry.load("a")


def test_list_spans_names(registry: ModelRegistry) -> None:
    for name in ("b", "a", "b"):
        registry.register(
            build_model("spectrogram-channels", TINY, width=1),
            name=name,
            config={},
            manifest=None,
            metrics={},
        )
    assert [(r["name"], r["version"]) for r in registry.list()] == [("a", 1), ("b", 1), ("b", 2)]
