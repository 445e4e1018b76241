"""Model registry: versions, cards, catalog rows, promotion, loading by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from sqlalchemy import select

from tests.test_shards import TINY
from vocalmine.storage.catalog import Catalog, TrainingMetric
from vocalmine.storage.registry import (
    ModelRegistry,
    RegistryError,
    parse_model_spec,
    record_training_metrics,
)
from vocalmine.training.models import build_model
from vocalmine.training.registered import load_model


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
    loaded, record = load_model(registry, "voc")
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
    assert registry.load_weights("m")[1]["version"] == 3
    assert registry.current("m") is None
    registry.promote("m", 2)
    model, record = load_model(registry, "m")
    assert record["version"] == 2 and record["is_current"] and model.width == 2
    registry.promote("m", 1)
    assert [r["is_current"] for r in registry.list("m")] == [True, False, False]
    assert registry.current("m")["version"] == 1
    assert load_model(registry, "m", 3)[0].width == 3


def test_unknown_names_and_versions_are_clear_errors(registry: ModelRegistry) -> None:
    with pytest.raises(RegistryError, match="no model named 'nope'"):
        registry.load_weights("nope")
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
        registry.load_weights("a")


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


def test_weights_come_back_with_the_spec_to_rebuild_the_model(registry: ModelRegistry) -> None:
    model = build_model("no-skip", TINY, width=2)
    registry.register(model, name="w", config={}, manifest=None, metrics={})
    state, record = registry.resolve("w:1")
    assert record["card"]["model"] == model.spec()
    assert set(state) == set(model.state_dict())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert registry.resolve("w")[1]["version"] == 1
    with pytest.raises(RegistryError, match="no model named 'vocalmine'"):
        registry.resolve(None)


def test_model_specs_name_a_version_or_the_current_one() -> None:
    assert parse_model_spec("voice:3") == ("voice", 3)
    assert parse_model_spec("voice:v2") == ("voice", 2)
    assert parse_model_spec(None) == ("vocalmine", None)
    with pytest.raises(ValueError, match="version must be a number"):
        parse_model_spec("voice:latest")


def test_recorded_metrics_merge_and_evaluations_accumulate(registry: ModelRegistry) -> None:
    registry.register(
        build_model("unet", TINY, width=1), name="r", config={}, manifest=None, metrics={"a": 1}
    )
    registry.record_metrics("r", 1, evaluations={"median": 1.0}, promotion={"promoted": True})
    registry.record_metrics("r", 1, evaluations={"median": 2.0})
    metrics = registry.list("r")[0]["metrics"]
    assert metrics["a"] == 1 and metrics["promotion"] == {"promoted": True}
    assert [e["median"] for e in metrics["evaluations"]] == [1.0, 2.0]
    with pytest.raises(RegistryError, match="version 7 is not registered"):
        registry.record_metrics("r", 7, promotion={})


def test_training_metrics_of_a_run_are_replaced_not_duplicated(registry: ModelRegistry) -> None:
    rows = [
        {"split": "train", "name": "l1", "value": 0.5, "step": 1, "epoch": 0},
        {"split": "valid", "name": "l1", "value": 0.4, "step": 2, "epoch": 1},
    ]
    catalog = registry.catalog
    assert record_training_metrics(catalog, "m", "run1", rows[:1]) == 1
    assert record_training_metrics(catalog, "m", "run1", rows) == 2  # the resumed run's file
    record_training_metrics(catalog, "m", "run2", rows[:1])
    with catalog.session() as session:
        stored = session.scalars(select(TrainingMetric).order_by(TrainingMetric.id)).all()
        seen = [(r.run_id, r.split, r.step, r.value) for r in stored]
    assert sorted(seen) == [
        ("run1", "train", 1, 0.5),
        ("run1", "valid", 2, 0.4),
        ("run2", "train", 1, 0.5),
    ]
