"""Prefect flow ``train`` and the ``vocalmine train`` command.

Thin composition: settings → a :class:`training.trainer.TrainConfig` written to the run folder
→ :func:`training.ddp.launch` (in-process for one CPU process, else ``torchrun`` with one
process per GPU or ``--nproc`` Gloo processes, on one node or several through the usual
rendezvous options) → the run's ``result.json`` → Prefect artifacts (validation table,
training curves). The trainer itself prints progress (steps/s, loss, ETA), writes TensorBoard
and the catalog's TrainingMetric rows, checkpoints, and registers the best model.

Re-running with the same ``--run-dir`` resumes from its last checkpoint.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from prefect import flow, get_run_logger
from prefect.context import FlowRunContext
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from vocalmine.flows.artifacts import publish_curves, publish_table
from vocalmine.storage.shards import ShardError, read_manifest, resolve_dataset
from vocalmine.training.ddp import default_nproc, launch
from vocalmine.training.models import MODEL_KINDS
from vocalmine.training.trainer import RESULT, TrainConfig

from vocalmine.core.settings import get_settings

console = Console(stderr=True, soft_wrap=True)
# Options a resumed run may change; the rest stay as the run started.
RESUMABLE = ("max_steps", "max_epochs", "patience", "log_every", "checkpoint_every", "promote")


def _run_id() -> str:
    context = FlowRunContext.get()
    if context is not None and context.flow_run is not None:
        return str(context.flow_run.id)[:12]
    return uuid.uuid4().hex[:12]


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
    """A TrainConfig from settings (data dir, catalog, model root, shard root) and options."""
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
        model_root=settings.model_root,
        catalog_url=settings.catalog_url,
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

    ``options`` are further :class:`TrainConfig` fields (width, lr, batch_size, max_steps, ...).
    """
    logger = get_run_logger()
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
        **(options or {}),
    )
    processes = nproc or default_nproc()
    folder = Path(config.run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "config.json"
    if not (folder / "checkpoints" / "last.pt").exists():
        config_path.write_text(json.dumps(config.to_dict(), indent=1))
    else:
        logger.info("resuming the run in %s", folder)
        saved = json.loads(config_path.read_text())
        saved.update({k: v for k, v in config.to_dict().items() if k in RESUMABLE})
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
    result = json.loads((folder / RESULT).read_text())
    result["run_dir"] = str(folder)
    _publish(result)
    return result


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


def train_tiny(
    shards: str,
    *,
    dataset: str | None = None,
    name: str = "tiny",
    model: str = "unet",
    width: int = 4,
    max_steps: int = 20,
    batch_size: int = 4,
    data_dir: str | None = None,
    catalog_url: str | None = None,
    run_dir: str | None = None,
    promote: bool = True,
) -> dict[str, Any]:
    """Train a narrow model for a few steps in this process and register it (demo, < 1 min).

    No Prefect, no torchrun: the same trainer, one CPU process, validation once at the end.
    """
    from vocalmine.training.trainer import train as run_training

    config = build_config(
        shards=shards,
        dataset=dataset,
        run_dir=run_dir,
        data_dir=data_dir,
        catalog_url=catalog_url,
        name=name,
        model=model,
        width=width,
        max_steps=max_steps,
        steps_per_epoch=max_steps,
        batch_size=batch_size,
        lr=1e-3,
        num_workers=0,
        log_every=max(1, max_steps // 5),
        checkpoint_every=max_steps,
        device="cpu",
        promote=promote,
    )
    return run_training(config)


def _augment(p: float, channel_swap: bool, gain: float, stretch: float, shift: float) -> dict:
    return {
        "p": p,
        "channel_swap": channel_swap,
        "gain": gain,
        "time_stretch": stretch,
        "pitch_shift": shift,
    }


def train_command(
    shards: Annotated[
        str | None,
        typer.Option(
            "--shards",
            help="shard dataset folder (holding manifest.json) or shard root with --dataset; "
            "default: the configured shard root and dataset",
        ),
    ] = None,
    dataset: Annotated[str | None, typer.Option(help="dataset name under the root")] = None,
    model: Annotated[
        str, typer.Option("--model", "-m", help=f"architecture: {', '.join(MODEL_KINDS)}")
    ] = "unet",
    preset: Annotated[
        str | None, typer.Option(help="paper or hq; must match the shards (default: theirs)")
    ] = None,
    name: Annotated[str, typer.Option(help="registry name of the trained model")] = "vocalmine",
    width: Annotated[int, typer.Option(help="first-layer channels (16 = paper)")] = 16,
    dropout: Annotated[float, typer.Option(help="decoder dropout (0.5 = paper)")] = 0.5,
    loss: Annotated[str, typer.Option(help="l1 (paper) or mse")] = "l1",
    volume_balance: Annotated[
        bool, typer.Option(help="volume-balancing loss (Spectrogram-Channels U-Net)")
    ] = False,
    lr: Annotated[float, typer.Option(help="Adam learning rate")] = 1e-4,
    batch_size: Annotated[int, typer.Option(help="global batch size (all processes)")] = 8,
    steps_per_epoch: Annotated[int, typer.Option(help="steps between validations")] = 800,
    max_epochs: Annotated[int, typer.Option(help="epoch budget")] = 500,
    max_steps: Annotated[int | None, typer.Option(help="step budget (overrides epochs)")] = None,
    patience: Annotated[int, typer.Option(help="epochs without improvement before stopping")] = 10,
    min_quality: Annotated[
        float | None, typer.Option(help="drop segments below this label quality")
    ] = None,
    aug_p: Annotated[float, typer.Option(help="probability of each augmentation")] = 0.5,
    channel_swap: Annotated[bool, typer.Option(help="swap stereo channels")] = False,
    gain: Annotated[float, typer.Option(help="gain range r: β in [1-r, 1+r]; 0 = off")] = 0.0,
    time_stretch: Annotated[float, typer.Option(help="time-stretch range r; 0 = off")] = 0.0,
    pitch_shift: Annotated[float, typer.Option(help="pitch-shift range r; 0 = off")] = 0.0,
    workers: Annotated[int, typer.Option(help="data loader workers per process")] = 2,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    checkpoint_every: Annotated[int, typer.Option(help="steps between checkpoints")] = 200,
    val_max_batches: Annotated[
        int | None, typer.Option(help="cap validation batches per process")
    ] = None,
    nproc: Annotated[
        int | None, typer.Option(help="processes per node (default: one per GPU, else 1)")
    ] = None,
    nnodes: Annotated[int, typer.Option(help="nodes (torchrun rendezvous)")] = 1,
    node_rank: Annotated[int, typer.Option(help="this node's rank")] = 0,
    rdzv_endpoint: Annotated[
        str | None, typer.Option(help="rendezvous host:port for several nodes")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    run_dir: Annotated[
        Path | None, typer.Option(help="run folder; an existing one is resumed")
    ] = None,
    promote: Annotated[bool, typer.Option(help="make the new version current")] = False,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="settings file")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="data folder")] = None,
    catalog_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL of the catalog")] = None,
) -> None:
    """Train a separation model on mined shards and register the best version.

    Runs one process per GPU (NCCL, bf16), or --nproc CPU processes (Gloo); prints steps/s,
    loss and ETA; validates every --steps-per-epoch steps with early stopping.
    """
    options = {
        "width": width,
        "dropout": dropout,
        "loss": loss,
        "volume_balance": volume_balance,
        "lr": lr,
        "batch_size": batch_size,
        "steps_per_epoch": steps_per_epoch,
        "max_epochs": max_epochs,
        "max_steps": max_steps,
        "patience": patience,
        "min_quality": min_quality,
        "augment": _augment(aug_p, channel_swap, gain, time_stretch, pitch_shift),
        "num_workers": workers,
        "seed": seed,
        "checkpoint_every": checkpoint_every,
        "val_max_batches": val_max_batches,
        "device": device,
        "promote": promote,
    }
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    try:
        result = train(
            shards=shards,
            dataset=dataset,
            model=model,
            preset=preset,
            name=name,
            nproc=nproc,
            nnodes=nnodes,
            node_rank=node_rank,
            rdzv_endpoint=rdzv_endpoint,
            run_dir=str(run_dir) if run_dir else None,
            config_file=str(config) if config else None,
            data_dir=str(data_dir) if data_dir else None,
            catalog_url=catalog_url,
            options={k: v for k, v in options.items() if v is not None},
        )
    except (ShardError, LookupError, ValueError, OSError, RuntimeError) as exc:
        console.print(f"[red]error:[/red] {escape(' '.join(str(exc).split()))}")
        raise typer.Exit(2) from exc
    print_result(result)


def print_result(result: dict[str, Any]) -> None:
    """The registered version and its best validation scores as a rich table."""
    if "validation" not in result:
        console.print(f"worker node finished; run folder {result['run_dir']}")
        return
    table = Table(
        "metric",
        "value",
        title=f"{result['name']} v{result['version']} — best of {result['steps']} steps "
        f"(step {result['best_step']}, {result['val_split']} split)",
    )
    for key, value in result["validation"].items():
        table.add_row(key, f"{value:.5f}" if isinstance(value, float) else str(value))
    Console().print(table)
    console.print(f"run folder: {result['run_dir']}")
