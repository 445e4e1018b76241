"""Prefect flow ``retrain``: train on the current shards, promote only a better model.

Composition of the ``train`` and ``evaluate`` flows with the model registry:

1. If the current model was trained on exactly the shards there are now (same manifest SHA-256)
   nothing is trained: the run records "no new shards" (``force`` trains anyway).
2. ``train`` registers a candidate version without promoting it.
3. ``evaluate`` scores the candidate and the current version on the same evaluation set (the
   current one is scored again, so a changed evaluation set never compares unlike numbers).
4. The candidate is promoted only when its score (median SDR of the vocals by default) beats
   the current one by more than ``min_improvement``. A candidate fine-tuned from another
   registered model (``init``, e.g. the pretrained ``spleeter-2stems``) while ``name`` has no
   current version must beat that starting model instead: fine-tuning never replaces a model
   with a worse one; a rejected candidate stays registered, not
   current. Both scores and the decision go into the candidate's catalog record
   (``metrics["promotion"]``), each model's score into its ``metrics["evaluations"]``, and the
   decision onto the dashboard as an artifact.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger

from vocalmine.core.settings import get_settings
from vocalmine.flows.artifacts import publish_decision
from vocalmine.flows.evaluate import evaluate
from vocalmine.flows.runtime import flow_run_id
from vocalmine.flows.train import train
from vocalmine.storage.catalog import open_catalog
from vocalmine.storage.registry import ModelRegistry
from vocalmine.storage.shard_schema import manifest_summary, read_manifest
from vocalmine.training.promotion import model_score, promotion_reason, should_promote


@flow(name="retrain", log_prints=True)
def retrain_flow(
    name: str = "vocalmine",
    model: str = "unet",
    eval_dataset: str | None = None,
    eval_limit: int | None = None,
    metric: str = "SDR",
    source: str = "vocals",
    min_improvement: float = 0.0,
    init: str | None = None,
    force: bool = False,
    nproc: int | None = None,
    device: str = "cpu",
    options: dict[str, Any] | None = None,
    config: str | None = None,
    data_dir: str | None = None,
) -> dict[str, Any]:
    """Train ``name`` on the current shards; promote the new version only if it scores better.

    ``eval_dataset`` is a musdb folder, MIR-1K folder or library manifest (default: MUSDB18-7
    test beside the project); ``init`` a registered ``NAME[:VERSION]`` to fine-tune from;
    ``options`` are further training settings (max_steps, width, freeze, ...).
    """
    logger = get_run_logger()
    settings = get_settings(config, data_dir=data_dir)
    manifest = read_manifest(settings.shard_root, settings.dataset)
    shards_sha = manifest_summary(manifest)["sha256"]
    catalog = open_catalog(settings.catalog_url)
    try:
        registry = ModelRegistry(settings.model_root, catalog)
        current = registry.current(name)
        start = registry.find(init) if init else None
        incumbent = current or start
        decision: dict[str, Any] = {
            "name": name,
            "dataset": f"{settings.shard_root}/{settings.dataset}",
            "shards_sha256": shards_sha[:16],
            "current_version": current["version"] if current else None,
            "flow_run": flow_run_id(),
            "decided_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        trained_on = ((current or {}).get("manifest") or {}).get("sha256")
        if current and not force and trained_on == shards_sha:
            decision.update(
                version=current["version"],
                promoted=False,
                trained=False,
                reason=f"no new shards since v{current['version']} was trained: nothing to do",
            )
            logger.info(decision["reason"])
            publish_decision("promotion-decision", decision)
            return decision

        trained = train(
            model=model,
            name=name,
            nproc=nproc,
            config_file=config,
            data_dir=data_dir,
            options={**(options or {}), "init": init, "promote": False},
        )
        version = int(trained["version"])

        def score(record: dict[str, Any]) -> tuple[float, str]:
            which = (record["name"], record["version"])
            summary = evaluate(
                dataset=eval_dataset,
                model=f"{which[0]}:{which[1]}",
                limit=eval_limit,
                device=device,
                baselines=False,
                config=config,
                data_dir=data_dir,
            )
            value = model_score(summary, metric, source)
            registry.record_metrics(
                *which,
                evaluations={
                    "dataset": summary["dataset"],
                    "metric": metric,
                    "source": source,
                    "median": value,
                    "flow_run": decision["flow_run"],
                    "at": datetime.now(UTC).isoformat(timespec="seconds"),
                },
            )
            return value, summary["dataset"]

        candidate_score, evaluated_on = score({"name": name, "version": version})
        current_score = score(incumbent)[0] if incumbent else None
        promoted = should_promote(candidate_score, current_score, min_improvement)
        reason = promotion_reason(
            name,
            version,
            current["version"] if current else None,
            candidate_score,
            current_score,
            promoted,
            min_improvement,
            f"median {metric} of {source} on {evaluated_on}",
            None if current or not start else f"{start['name']} v{start['version']}",
        )
        if promoted:
            registry.promote(name, version)
        decision.update(
            version=version,
            trained=True,
            promoted=promoted,
            metric=metric,
            source=source,
            evaluation_set=evaluated_on,
            candidate_score=candidate_score,
            current_score=current_score,
            compared_with=f"{incumbent['name']} v{incumbent['version']}" if incumbent else None,
            min_improvement=min_improvement,
            reason=reason,
        )
        registry.record_metrics(name, version, promotion=decision)
    finally:
        catalog.dispose()
    logger.info(decision["reason"])
    publish_decision("promotion-decision", decision)
    return decision
