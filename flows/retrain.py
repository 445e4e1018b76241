"""Prefect flow ``retrain``: train on the current shards, promote only a better model.

Composition of the ``train`` and ``evaluate`` flows with the model registry:

1. If the current model was trained on exactly the shards there are now (same manifest SHA-256)
   nothing is trained: the run records "no new shards" (``force`` trains anyway).
2. ``train`` registers a candidate version without promoting it.
3. ``evaluate`` scores the candidate and the current version on the same evaluation set (the
   current one is scored again, so a changed evaluation set never compares unlike numbers).
4. The candidate is promoted only when its score (median SDR of the vocals by default) beats
   the current one by more than ``min_improvement``; a rejected candidate stays registered, not
   current. Both scores and the decision go into the candidate's catalog record
   (``metrics["promotion"]``), each model's score into its ``metrics["evaluations"]``, and the
   decision onto the dashboard as an artifact.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from prefect import flow, get_run_logger
from prefect.context import FlowRunContext
from rich.console import Console
from rich.markup import escape
from sqlalchemy import select
from vocalmine.flows.artifacts import publish_decision
from vocalmine.flows.evaluate import evaluate
from vocalmine.flows.train import train
from vocalmine.storage.catalog import Catalog, ModelRecord, open_catalog
from vocalmine.storage.registry import ModelRegistry
from vocalmine.storage.shards import manifest_summary, read_manifest

from vocalmine.core.settings import get_settings

console = Console(stderr=True, soft_wrap=True)


def model_score(summary: dict[str, Any], metric: str = "SDR", source: str = "vocals") -> float:
    """The model's median ``metric`` for ``source`` from an ``evaluate`` summary (NaN if none)."""
    value = summary.get("scores", {}).get("model", {}).get(source, {}).get(metric, {}).get("median")
    return float("nan") if value is None else float(value)


def should_promote(candidate: float, current: float | None, min_improvement: float = 0.0) -> bool:
    """Promote a scored candidate over no model, or over one it beats by ``min_improvement``."""
    if math.isnan(candidate):
        return False
    if current is None or math.isnan(current):
        return True
    return candidate > current + min_improvement


def record_metrics(catalog: Catalog, name: str, version: int, **entries: Any) -> None:
    """Merge ``entries`` into a model's ``metrics``; a list entry ``evaluations`` is appended to."""
    with catalog.session() as session:
        record = session.scalar(
            select(ModelRecord).where(ModelRecord.name == name, ModelRecord.version == version)
        )
        if record is None:
            raise LookupError(f"model {name!r} version {version} is not registered")
        metrics = dict(record.metrics or {})
        for key, value in entries.items():
            if key == "evaluations":
                metrics["evaluations"] = [*metrics.get("evaluations", []), value]
            else:
                metrics[key] = value
        record.metrics = metrics


def _flow_run_id() -> str | None:
    context = FlowRunContext.get()
    return str(context.flow_run.id) if context and context.flow_run else None


@flow(name="retrain", log_prints=True)
def retrain_flow(
    name: str = "vocalmine",
    model: str = "unet",
    eval_dataset: str | None = None,
    eval_limit: int | None = None,
    metric: str = "SDR",
    source: str = "vocals",
    min_improvement: float = 0.0,
    force: bool = False,
    nproc: int | None = None,
    device: str = "cpu",
    options: dict[str, Any] | None = None,
    config: str | None = None,
    data_dir: str | None = None,
) -> dict[str, Any]:
    """Train ``name`` on the current shards; promote the new version only if it scores better.

    ``eval_dataset`` is a musdb folder, MIR-1K folder or library manifest (default: MUSDB18-7
    test beside the project); ``options`` are further training settings (max_steps, width, ...).
    """
    logger = get_run_logger()
    settings = get_settings(config, data_dir=data_dir)
    manifest = read_manifest(settings.shard_root, settings.dataset)
    shards_sha = manifest_summary(manifest)["sha256"]
    catalog = open_catalog(settings.catalog_url)
    try:
        registry = ModelRegistry(settings.model_root, catalog)
        current = registry.current(name)
        decision: dict[str, Any] = {
            "name": name,
            "dataset": f"{settings.shard_root}/{settings.dataset}",
            "shards_sha256": shards_sha[:16],
            "current_version": current["version"] if current else None,
            "flow_run": _flow_run_id(),
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
            options={**(options or {}), "promote": False},
        )
        version = int(trained["version"])

        def score(which: int) -> tuple[float, str]:
            summary = evaluate(
                dataset=eval_dataset,
                model=f"{name}:{which}",
                limit=eval_limit,
                device=device,
                baselines=False,
                config=config,
                data_dir=data_dir,
            )
            value = model_score(summary, metric, source)
            record_metrics(
                catalog,
                name,
                which,
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

        candidate_score, evaluated_on = score(version)
        current_score = score(current["version"])[0] if current else None
        promoted = should_promote(candidate_score, current_score, min_improvement)
        label = f"median {metric} of {source} on {evaluated_on}"
        if current is None:
            reason = f"first model of {name!r}: promoted ({label} {candidate_score:.2f} dB)"
        else:
            verdict = "beats" if promoted else "does not beat"
            reason = (
                f"v{version} {verdict} current v{current['version']} by more than "
                f"{min_improvement:g} dB: {candidate_score:.2f} vs {current_score:.2f} ({label})"
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
            min_improvement=min_improvement,
            reason=reason,
        )
        record_metrics(catalog, name, version, promotion=decision)
    finally:
        catalog.dispose()
    logger.info(decision["reason"])
    publish_decision("promotion-decision", decision)
    return decision


def retrain_command(
    name: Annotated[str, typer.Option("--name", help="model name in the registry")] = "vocalmine",
    model: Annotated[str, typer.Option("--model", "-m", help="architecture")] = "unet",
    eval_dataset: Annotated[
        Path | None,
        typer.Option(
            "--eval-dataset", help="musdb folder, MIR-1K folder or library manifest to score on"
        ),
    ] = None,
    eval_limit: Annotated[int | None, typer.Option(help="score the first N tracks only")] = None,
    min_improvement: Annotated[
        float, typer.Option(help="dB the candidate must gain over the current model")
    ] = 0.0,
    force: Annotated[bool, typer.Option(help="train even when the shards are unchanged")] = False,
    max_steps: Annotated[int | None, typer.Option(help="training steps")] = None,
    nproc: Annotated[int | None, typer.Option(help="training processes")] = None,
    device: Annotated[str, typer.Option(help="evaluation device: cpu or cuda")] = "cpu",
    config: Annotated[Path | None, typer.Option("--config", "-c", help="settings file")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="data folder")] = None,
) -> None:
    """Retrain on the current shards; promote the new model only if it beats the current one."""
    try:
        decision = retrain_flow(
            name=name,
            model=model,
            eval_dataset=str(eval_dataset) if eval_dataset else None,
            eval_limit=eval_limit,
            min_improvement=min_improvement,
            force=force,
            nproc=nproc,
            device=device,
            options={"max_steps": max_steps} if max_steps else None,
            config=str(config) if config else None,
            data_dir=str(data_dir) if data_dir else None,
        )
    except (FileNotFoundError, LookupError, ValueError, OSError) as exc:
        console.print(f"[red]error:[/red] {escape(' '.join(str(exc).split()))}")
        raise typer.Exit(2) from exc
    typer.echo(decision["reason"])
