"""Prefect flow ``train`` (run by ``vocalmine train``, :mod:`vocalmine.cli.train`).

Thin composition: settings → a :class:`training.trainer.TrainConfig` written to the run folder
→ :func:`training.launch.launch` (in-process for one CPU process, else ``torchrun`` with one
process per GPU or ``--nproc`` Gloo processes, on one node or several through the usual
rendezvous options) → the files the trainer wrote (``result.json``, ``metrics.jsonl``, the best
checkpoint) → :func:`record_run`: the catalog's TrainingMetric rows and the registered (and
optionally promoted) model → Prefect artifacts (validation table, training curves). The
trainer prints progress (steps/s, loss, ETA) and writes files only.

Re-running with the same ``--run-dir`` resumes from its last checkpoint.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from vocalmine.core.settings import get_settings
from vocalmine.core.stft import preset_from_dict, same_geometry
from vocalmine.flows.artifacts import publish_curves, publish_table
from vocalmine.flows.runtime import flow_run_id
from vocalmine.storage.catalog import open_catalog
from vocalmine.storage.registry import ModelRegistry, open_registry, record_training_metrics
from vocalmine.storage.shard_schema import ShardError, read_manifest, resolve_dataset
from vocalmine.training.finetune import save_init_weights
from vocalmine.training.launch import default_nproc, launch
from vocalmine.training.models import SeparationModel
from vocalmine.training.registered import load_registered_model, trained_model
from vocalmine.training.runs import already_registered, registration_metrics, resumed_config
from vocalmine.training.trainer import RESULT, TrainConfig, read_metrics

#: The flow's marker of the version a run registered (beside the checkpoints).
REGISTERED = "registered.json"
#: The weights a run started from (``--init``), in the run folder.
INIT_WEIGHTS = "init.pt"


def _run_id() -> str:
    return (flow_run_id() or uuid.uuid4().hex)[:12]


def build_config(
    *,
    shards: str | None = None,
    dataset: str | None = None,
    run_dir: str | None = None,
    config_file: str | None = None,
    data_dir: str | None = None,
    catalog_url: str | None = None,
    run_id: str | None = None,
    **options: Any,
) -> TrainConfig:
    """A TrainConfig from settings (data dir, shard root) and options."""
    settings = get_settings(config_file, data_dir=data_dir, catalog_url=catalog_url)
    if shards:
        root, name = resolve_dataset(shards, dataset)
    else:
        root, name = settings.shard_root, dataset or settings.dataset
    manifest = read_manifest(root, name)
    preset = options.get("preset")
    if preset and preset != manifest["preset"]["name"]:
        raise ShardError(
            f"{root}/{name}: shards use preset {manifest['preset']['name']!r}, not {preset!r}"
        )
    run_id = run_id or uuid.uuid4().hex[:12]
    model_name = options.pop("name", None) or "vocalmine"
    folder = run_dir or str(Path(settings.data_dir).resolve() / "runs" / f"{model_name}-{run_id}")
    options.setdefault("min_quality", settings.min_segment_quality)
    return TrainConfig(
        shard_root=str(root),
        dataset=name,
        run_dir=folder,
        name=model_name,
        run_id=run_id,
        **{k: v for k, v in options.items() if v is not None},
    )


@flow(name="train", log_prints=True)
def train(
    shards: str | None = None,
    dataset: str | None = None,
    model: str = "unet",
    preset: str | None = None,
    name: str = "vocalmine",
    nproc: int | None = None,
    nnodes: int = 1,
    node_rank: int = 0,
    rdzv_endpoint: str | None = None,
    run_dir: str | None = None,
    config_file: str | None = None,
    data_dir: str | None = None,
    catalog_url: str | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train ``model`` on the shards, register the best version and publish its curves.

    ``options`` are further :class:`TrainConfig` fields (width, lr, batch_size, max_steps,
    freeze, ...), ``promote`` (make the registered version current) and ``init`` (a registered
    ``NAME[:VERSION]`` to start from: its kind, width and weights; the shards must have its
    geometry).
    """
    logger = get_run_logger()
    options = dict(options or {})
    promote = bool(options.pop("promote", False))
    options.pop("register", None)
    init = options.pop("init", None)
    settings = get_settings(config_file, data_dir=data_dir, catalog_url=catalog_url)
    start = None
    if init:
        start = initial_model(init, settings.model_root, settings.catalog_url)
        model = start.kind
        options.update(width=start.width)
    config = build_config(
        shards=shards,
        dataset=dataset,
        run_dir=run_dir,
        config_file=config_file,
        data_dir=data_dir,
        catalog_url=catalog_url,
        run_id=_run_id(),
        model=model,
        preset=preset,
        name=name,
        **options,
    )
    processes = nproc or default_nproc()
    folder = Path(config.run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "config.json"
    if not (folder / "checkpoints" / "last.pt").exists():
        if start is not None:
            check_geometry(start, config)
            config.init_from = str(save_init_weights(folder / INIT_WEIGHTS, start))
            logger.info("starting from %s (%s, width %d)", init, start.kind, start.width)
        config_path.write_text(json.dumps(config.to_dict(), indent=1))
    else:
        logger.info("resuming the run in %s", folder)
        saved = resumed_config(json.loads(config_path.read_text()), config.to_dict())
        config_path.write_text(json.dumps(saved, indent=1))
    logger.info(
        "training %s (%s, preset %s) on %s/%s with %d process(es) x %d node(s); run folder %s",
        config.name,
        config.model,
        read_manifest(config.shard_root, config.dataset)["preset"]["name"],
        config.shard_root,
        config.dataset,
        processes,
        nnodes,
        folder,
    )
    (folder / RESULT).unlink(missing_ok=True)
    code = launch(
        config_path,
        nproc=processes,
        nnodes=nnodes,
        node_rank=node_rank,
        rdzv_endpoint=rdzv_endpoint,
        rdzv_id=config.run_id or "vocalmine",
    )
    if code != 0:
        raise RuntimeError(f"{folder}: training processes exited with status {code}")
    if not (folder / RESULT).exists():
        return {"run_dir": str(folder), "node_rank": node_rank}  # a worker node's view
    result = record_run(
        folder,
        catalog_url=settings.catalog_url,
        model_root=settings.model_root,
        promote=promote,
    )
    _publish(result)
    return result


def initial_model(spec: str, model_root: str, catalog_url: str) -> SeparationModel:
    """The registered model ``NAME[:VERSION]`` a fine-tuning run starts from."""
    with open_registry(model_root, catalog_url) as registry:
        model, _ = load_registered_model(registry, spec)
    return model


def check_geometry(model: SeparationModel, config: TrainConfig) -> None:
    """Fail in one line when the shards were mined with another STFT geometry than ``model``'s
    (a model reads patches of its own rate, transform and size only)."""
    manifest = read_manifest(config.shard_root, config.dataset)
    shards = preset_from_dict(manifest["preset"])
    if not same_geometry(shards, model.preset):
        raise ShardError(
            f"{config.shard_root}/{config.dataset}: shards use preset {shards.name!r}, the "
            f"--init model {model.preset.name!r}; mine with VOCALMINE_STFT_PRESET="
            f"{model.preset.name} (or stft_preset in the config) first"
        )


def record_run(
    folder: str | Path, *, catalog_url: str, model_root: str, promote: bool = False
) -> dict[str, Any]:
    """Record a finished run's files in the catalog: its ``metrics.jsonl`` as TrainingMetric
    rows (replacing the run's earlier rows, so a resumed run never duplicates one) and its best
    checkpoint as the next version in the registry, made current when ``promote``.

    A finished run recorded again registers nothing new: it reports the version it made.
    Returns the run's result with ``version`` and ``run_dir``, also written to ``result.json``.
    """
    folder = Path(folder)
    result = json.loads((folder / RESULT).read_text())
    marker_path = folder / "checkpoints" / REGISTERED
    marker = json.loads(marker_path.read_text()) if marker_path.exists() else None
    catalog = open_catalog(catalog_url)
    try:
        record_training_metrics(catalog, result["name"], result["run_id"], read_metrics(folder))
        version = already_registered(marker, result)
        if version is None:
            registry = ModelRegistry(model_root, catalog)
            version = registry.register(
                trained_model(result),
                name=result["name"],
                config=_trained_config(folder),
                manifest=result["manifest"],
                metrics=registration_metrics(result),
            )
            if promote:
                registry.promote(result["name"], version)
            marker_path.write_text(json.dumps({"step": result["steps"], "version": version}))
            print(f"registered model {result['name']!r} version {version}", flush=True)
    finally:
        catalog.dispose()
    result.update(version=version, run_dir=str(folder))
    (folder / RESULT).write_text(json.dumps(result, indent=1))
    return result


def _trained_config(folder: Path) -> Mapping[str, Any]:
    """The config the run trained with (``config.json``, as the trainer reads it)."""
    return TrainConfig.from_dict(json.loads((folder / "config.json").read_text())).to_dict()


def _publish(result: dict[str, Any]) -> None:
    rows = [
        {"metric": key, "value": value}
        for key, value in result["validation"].items()
        if isinstance(value, int | float)
    ]
    publish_table(
        "train-validation",
        rows,
        description=f"{result['name']} v{result['version']}: best {result['val_split']} scores "
        f"(step {result['best_step']} of {result['steps']})",
    )
    publish_curves(
        "train-curves",
        {
            "train loss": list(enumerate(result["losses"], start=1)),
            f"{result['val_split']} loss": [(v["step"], v["l1"]) for v in result["validations"]],
        },
        title=f"{result['name']} training curves",
    )
