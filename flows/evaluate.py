"""Prefect flow ``evaluate`` (run by ``vocalmine evaluate``, :mod:`vocalmine.cli.evaluate`).

Thin composition of :mod:`separation.eval_datasets`, :mod:`separation.oracles`,
:mod:`separation.scoring` (museval) and
:mod:`separation.report` (table, box plots): the model (once per post-processing variant) and
the MIX / IRM1 baselines are scored on a musdb folder, a MIR-1K folder or a test library's
ground-truth manifest; results go to ``summary.json``, ``tracks.parquet``, ``frames.parquet`` and
``report.md`` with PNG box plots, and to the Prefect UI as table, markdown and image artifacts.

Each track's scores are stored in the output folder as they come (:class:`ScoreStore`), so a run
that is stopped (SIGTERM, Ctrl-C, a crash) resumes when run again with the same folder: tracks
already scored are read back, not scored again, and the result is the one an uninterrupted run
gives. The default folder is a function of the dataset, the model and the post-processing
variants (:func:`default_out_dir`), so the same command resumes by itself.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from prefect import artifacts, flow, get_run_logger

from vocalmine.core.markdown import image_data_url
from vocalmine.core.settings import get_settings
from vocalmine.flows.artifacts import artifact_key, publish_markdown, publish_table
from vocalmine.separation.eval_datasets import default_dataset, open_dataset
from vocalmine.separation.oracles import baseline_systems, separator_identity, separator_system
from vocalmine.separation.postprocess import parse_variant
from vocalmine.separation.report import (
    PLOT_METRICS,
    inline_report,
    render_report,
    summary_table,
)
from vocalmine.separation.scoring import EvaluationResult, ScoreStore, slug
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
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # the same random weights every run, so a run can resume
            untrained = build_model("unet", preset)
        return untrained, f"UNTRAINED unet/{preset} (random weights, seed 0)"
    settings = get_settings(**settings_kwargs)
    with open_registry(settings.model_root, settings.catalog_url) as registry:
        loaded, record = load_registered_model(registry, model)
    return loaded, f"{record['name']} v{record['version']} ({loaded.kind}/{loaded.preset.name})"


def default_out_dir(
    data_dir: str | Path,
    dataset: str | Path,
    model: str | None,
    variants: list[str],
    baselines: bool = True,
    irm_n_fft: int = 4096,
    irm_hop: int = 1024,
) -> Path:
    """``<data_dir>/evaluations/<dataset>_<model>_<key>``: one folder per dataset, model (as
    named), post-processing variants and baseline settings, so running the same command again
    resumes it, and a different one gets its own folder. ``key`` hashes all of them (the dataset
    by kind and resolved path, the variants as parsed)."""
    data = open_dataset(dataset)
    setup = {
        "dataset": data.key,
        "model": model,
        "variants": sorted(parse_variant(v).label for v in variants) if model else [],
        "baselines": [irm_n_fft, irm_hop] if baselines else None,
    }
    key = hashlib.sha256(json.dumps(setup, sort_keys=True).encode()).hexdigest()[:10]
    name = f"{slug(data.label)}_{slug(model or 'baselines')}"
    return Path(data_dir) / "evaluations" / f"{name}_{key}"


def score_all(
    dataset: str,
    model: SeparationModel | None,
    model_label: str,
    variants: list[str],
    limit: int | None,
    device: str,
    baselines: bool,
    irm: tuple[int, int],
    out_dir: str,
) -> EvaluationResult:
    """Separate and score every track with every system, scores stored in ``out_dir`` as they
    come and read back from it when an earlier run stored them.

    A plain function, not a task: the flow run's log shows each track as it is scored, and a
    signal stops the flow with no task-run crash line beside the command's own.
    """
    data = open_dataset(dataset, limit)
    systems, descriptions = baseline_systems(*irm) if baselines else ({}, {})
    identities = dict(descriptions)  # a baseline's description names its settings
    if model is not None:
        for variant in variants:
            post = parse_variant(variant)
            name = "model" if post.label == "none" else f"model+{post.label}"
            separator = Separator(model, device=device, post=post)
            systems[name] = separator_system(separator)
            descriptions[name] = f"{model_label}, post-processing: {post.label}"
            identities[name] = separator_identity(separator)
    if not systems:
        raise ValueError("nothing to evaluate: no model and no baselines")
    logger = get_run_logger()
    store = ScoreStore(out_dir, data.key, identities)
    return run_evaluation(
        data.entries,
        systems,
        dataset=data.label,
        descriptions=descriptions,
        decoding=data.decoding,
        on_track=lambda name: logger.info("scored %s", name),
        store=store,
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
    settings such as ``none``, ``binarize=10``, ``gate``, ``wiener``, ``zero-above``.
    ``out_dir`` defaults to :func:`default_out_dir`; scores already stored there are reused.
    """
    settings_kwargs = {"config_file": config, "data_dir": data_dir}
    settings = get_settings(**settings_kwargs)
    source = dataset or default_dataset()
    if source is None:
        raise FileNotFoundError("no dataset given and ../shared/data/musdb18-7/test is absent")
    variants = variants or ["none"]
    irm = (irm_n_fft, irm_hop)
    out = Path(
        out_dir or default_out_dir(settings.data_dir, source, model, variants, baselines, *irm)
    )
    loaded, model_label = resolve_model(model, settings_kwargs)
    result = score_all(
        str(source), loaded, model_label, variants, limit, device, baselines, irm, str(out)
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
