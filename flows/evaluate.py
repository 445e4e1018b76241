"""Prefect flow ``evaluate`` (run by ``vocalmine evaluate``, :mod:`vocalmine.cli.evaluate`).

Thin composition of :mod:`separation.eval_datasets`, :mod:`separation.oracles`,
:mod:`separation.scoring` (museval) and
:mod:`separation.report` (table, box plots): the model (once per post-processing variant) and
the MIX / IRM1 baselines are scored on a musdb folder, a MIR-1K folder or a test library's
ground-truth manifest; results go to ``summary.json``, ``tracks.parquet``, ``frames.parquet`` and
``report.md`` with PNG box plots, and to the Prefect UI as table, markdown and image artifacts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import artifacts, flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from vocalmine.core.markdown import image_data_url
from vocalmine.core.settings import get_settings
from vocalmine.flows.artifacts import artifact_key, publish_markdown, publish_table
from vocalmine.separation.eval_datasets import default_dataset, open_dataset
from vocalmine.separation.oracles import baseline_systems, separator_system
from vocalmine.separation.postprocess import parse_variant
from vocalmine.separation.report import (
    PLOT_METRICS,
    inline_report,
    render_report,
    summary_table,
)
from vocalmine.separation.scoring import EvaluationResult
from vocalmine.separation.scoring import evaluate as run_evaluation
from vocalmine.separation.separate import Separator
from vocalmine.storage.registry import open_registry
from vocalmine.training.models import SeparationModel, build_model
from vocalmine.training.registered import load_registered_model

UNTRAINED = "untrained"


def resolve_model(
    model: str | None, settings_kwargs: dict[str, Any]
) -> tuple[SeparationModel | None, str]:
    """The model to score and its label: a registered ``NAME[:VERSION]`` (the registry resolves
    it, :meth:`storage.registry.ModelRegistry.resolve`), or ``"untrained[:PRESET]"`` for fresh
    weights."""
    if model is None:
        return None, ""
    if model.split(":")[0] == UNTRAINED:
        preset = model.partition(":")[2] or "paper"
        return build_model("unet", preset), f"UNTRAINED unet/{preset} (random weights)"
    settings = get_settings(**settings_kwargs)
    with open_registry(settings.model_root, settings.catalog_url) as registry:
        loaded, record = load_registered_model(registry, model)
    return loaded, f"{record['name']} v{record['version']} ({loaded.kind}/{loaded.preset.name})"


@task(name="score", cache_policy=NO_CACHE)
def score_task(
    dataset: str,
    model: SeparationModel | None,
    model_label: str,
    variants: list[str],
    limit: int | None,
    device: str,
    baselines: bool,
    irm: tuple[int, int] = (4096, 1024),
) -> EvaluationResult:
    """Separate and score every track with every system."""
    data = open_dataset(dataset, limit)
    systems, descriptions = baseline_systems(*irm) if baselines else ({}, {})
    if model is not None:
        for variant in variants:
            post = parse_variant(variant)
            name = "model" if post.label == "none" else f"model+{post.label}"
            systems[name] = separator_system(Separator(model, device=device, post=post))
            descriptions[name] = f"{model_label}, post-processing: {post.label}"
    if not systems:
        raise ValueError("nothing to evaluate: no model and no baselines")
    logger = get_run_logger()
    return run_evaluation(
        data.tracks,
        systems,
        dataset=data.label,
        descriptions=descriptions,
        decoding=data.decoding,
        on_track=lambda name: logger.info("scored %s", name),
    )


@flow(name="evaluate", log_prints=True)
def evaluate(
    dataset: str | None = None,
    model: str | None = None,
    variants: list[str] | None = None,
    out_dir: str | None = None,
    limit: int | None = None,
    device: str = "cpu",
    baselines: bool = True,
    irm_n_fft: int = 4096,
    irm_hop: int = 1024,
    config: str | None = None,
    data_dir: str | None = None,
) -> dict[str, Any]:
    """Score a model (and the MIX / IRM1 baselines) with museval; save and publish a report.

    ``dataset`` defaults to ``../shared/data/musdb18-7/test`` when present; ``model`` is a
    registered ``NAME[:VERSION]`` or ``untrained[:PRESET]``; ``variants`` are post-processing
    settings such as ``none``, ``binarize=10``, ``gate``, ``wiener``.
    """
    settings_kwargs = {"config_file": config, "data_dir": data_dir}
    settings = get_settings(**settings_kwargs)
    source = dataset or default_dataset()
    if source is None:
        raise FileNotFoundError("no dataset given and ../shared/data/musdb18-7/test is absent")
    loaded, model_label = resolve_model(model, settings_kwargs)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    out = Path(out_dir) if out_dir else Path(settings.data_dir) / "evaluations" / stamp
    result = score_task(
        str(source),
        loaded,
        model_label,
        variants or ["none"],
        limit,
        device,
        baselines,
        (irm_n_fft, irm_hop),
    )
    paths = result.save(out)
    report = render_report(result, out)
    publish(result, report)
    summary = result.to_json()
    summary["files"] = {k: str(v) for k, v in {**paths, "report": report}.items()}
    return summary


def publish(result: EvaluationResult, report: Path) -> None:
    """Table, report (plots inline) and one image artifact per metric; no-op outside a run."""
    rows = summary_table(result).round(3).to_dict(orient="records")
    publish_table("evaluation-scores", rows, description=f"{result.dataset}: median over tracks")
    publish_markdown("evaluation-report", inline_report(report), description=result.dataset)
    for metric in PLOT_METRICS:
        png = report.parent / f"{metric.lower()}_boxplot.png"
        try:
            artifacts.create_image_artifact(
                image_data_url(png),
                key=artifact_key(f"evaluation-{metric}"),
                description=f"{result.dataset}: {metric} per track",
            )
        except Exception as exc:  # noqa: BLE001 - the dashboard must never fail an evaluation
            get_run_logger().warning("could not publish %s plot: %s", metric, exc)
