"""Retraining: a new model is promoted only when it beats the current one; both scores are kept."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.test_shards import make_segments
from vocalmine.core.settings import get_settings
from vocalmine.core.stft import PRESETS
from vocalmine.flows.retrain import retrain_flow
from vocalmine.storage.catalog import open_catalog
from vocalmine.storage.registry import ModelRegistry
from vocalmine.storage.shard_writer import ShardWriter
from vocalmine.training.promotion import model_score, promotion_reason, should_promote

PAPER = PRESETS["paper"]  # the separator's chunking needs real-sized patches

TINY_TRAINING = {
    "width": 4,
    "batch_size": 4,
    "lr": 1e-3,
    "steps_per_epoch": 4,
    "max_steps": 4,
    "log_every": 1,
    "checkpoint_every": 4,
    "num_workers": 0,
    "shuffle_buffer": 8,
    "tensorboard": False,
    "device": "cpu",
}


def test_a_candidate_is_promoted_only_when_it_scores_higher() -> None:
    assert should_promote(3.0, None)
    assert should_promote(3.0, 2.0)
    assert not should_promote(2.0, 3.0)
    assert not should_promote(3.0, 2.5, min_improvement=1.0)
    assert not should_promote(float("nan"), 2.0)
    assert should_promote(1.0, float("nan"))


def test_the_score_is_the_models_median_for_one_source_and_metric() -> None:
    summary = {"scores": {"model": {"vocals": {"SDR": {"median": 4.5}}}, "MIX": {}}}
    assert model_score(summary) == 4.5
    assert math.isnan(model_score(summary, source="accompaniment"))


def test_the_promotion_reason_names_both_scores_or_the_first_model() -> None:
    first = promotion_reason("ops", 1, None, 3.25, None, True, 0.0, "median SDR")
    assert first == "first model of 'ops': promoted (median SDR 3.25 dB)"
    worse = promotion_reason("ops", 3, 2, 1.0, 2.5, False, 0.5, "median SDR")
    assert worse == "v3 does not beat current v2 by more than 0.5 dB: 1.00 vs 2.50 (median SDR)"


def _write_shards(data_dir: Path, pairs: range) -> None:
    settings = get_settings(data_dir=data_dir)
    with ShardWriter(settings.shard_root, settings.dataset, PAPER, rows_per_shard=8) as writer:
        for pair in pairs:
            writer.write_pair(pair, make_segments(pair, 2, PAPER))
        writer.write_pair(
            1000 + pairs.start, make_segments(1000 + pairs.start, 2, PAPER, split="valid")
        )


@pytest.mark.slow
def test_retraining_promotes_better_models_and_keeps_rejected_ones(
    tmp_path: Path, mir1k_dir: Path
) -> None:
    _write_shards(tmp_path, range(0, 6))
    common = {
        "name": "ops",
        "eval_dataset": str(mir1k_dir),
        "eval_limit": 1,
        "nproc": 1,
        "options": TINY_TRAINING,
        "data_dir": str(tmp_path),
    }
    first = retrain_flow(**common)
    assert (first["version"], first["promoted"], first["current_score"]) == (1, True, None)

    unchanged = retrain_flow(**common)
    assert (unchanged["trained"], unchanged["promoted"]) == (False, False)
    assert "no new shards" in unchanged["reason"]

    _write_shards(tmp_path, range(6, 10))  # the mining deployment added shards
    rejected = retrain_flow(**common, min_improvement=1000.0)
    assert (rejected["version"], rejected["promoted"]) == (2, False)
    assert not math.isnan(rejected["candidate_score"])
    assert not math.isnan(rejected["current_score"])

    promoted = retrain_flow(**common, force=True, min_improvement=-1000.0)
    assert (promoted["version"], promoted["promoted"]) == (3, True)

    settings = get_settings(data_dir=tmp_path)
    catalog = open_catalog(settings.catalog_url)
    registry = ModelRegistry(settings.model_root, catalog)
    versions = {r["version"]: r for r in registry.list("ops")}
    catalog.dispose()
    assert sorted(versions) == [1, 2, 3]
    assert [v for v, r in versions.items() if r["is_current"]] == [3]
    kept = versions[2]["metrics"]["promotion"]
    assert kept["promoted"] is False
    assert (kept["candidate_score"], kept["current_score"]) == (
        rejected["candidate_score"],
        rejected["current_score"],
    )
    assert len(versions[1]["metrics"]["evaluations"]) == 3  # as candidate, then twice as current


@pytest.mark.slow
def test_a_fine_tuned_candidate_must_beat_the_model_it_started_from(
    tmp_path: Path, mir1k_dir: Path
) -> None:
    _write_shards(tmp_path, range(0, 6))
    common = {
        "eval_dataset": str(mir1k_dir),
        "eval_limit": 1,
        "nproc": 1,
        "options": TINY_TRAINING,
        "data_dir": str(tmp_path),
    }
    base = retrain_flow(name="base", **common)
    assert base["promoted"]

    worse = retrain_flow(name="tuned", init="base", min_improvement=1000.0, **common)
    assert (worse["version"], worse["promoted"], worse["compared_with"]) == (1, False, "base v1")
    assert worse["reason"].startswith("v1 does not beat base v1 by more than 1000 dB")
    assert worse["current_score"] == pytest.approx(base["candidate_score"])

    better = retrain_flow(name="tuned", init="base", force=True, min_improvement=-1000.0, **common)
    assert (better["version"], better["promoted"], better["compared_with"]) == (2, True, "base v1")

    settings = get_settings(data_dir=tmp_path)
    catalog = open_catalog(settings.catalog_url)
    tuned = {r["version"]: r for r in ModelRegistry(settings.model_root, catalog).list("tuned")}
    catalog.dispose()
    assert [v for v, r in tuned.items() if r["is_current"]] == [2]
    assert tuned[1]["config"]["init_from"].endswith("init.pt")
