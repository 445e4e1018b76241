"""``vocalmine train``: the train flow on mined shards; registers the best version.

Every default is the field's default in :class:`training.config.TrainConfig` (or
:class:`training.config.AugmentConfig`), read from the dataclasses, never restated here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from vocalmine.cli.common import (
    CatalogOption,
    ConfigOption,
    DataDirOption,
    console,
    defaults,
    fail,
    load_settings,
    require_shards,
)
from vocalmine.training.config import FREEZE_PARTS, MODEL_KINDS, AugmentConfig, TrainConfig

TRAIN = defaults(TrainConfig)
AUGMENT = defaults(AugmentConfig)

MODEL = "Model"
SCHEDULE = "Schedule"
AUG = "Augmentation"
PROCESSES = "Processes"


def train_command(
    shards: Annotated[
        str | None,
        typer.Option(
            "--shards",
            help="shard dataset folder (with manifest.json), or shard root with --dataset "
            "(default: the configured shards)",
        ),
    ] = None,
    dataset: Annotated[str | None, typer.Option(help="dataset name under the root")] = None,
    name: Annotated[str, typer.Option(help="registry name of the model")] = TRAIN["name"],
    promote: Annotated[
        bool, typer.Option("--promote", help="make the new version current")
    ] = False,
    run_dir: Annotated[
        Path | None, typer.Option(help="run folder; an existing one is resumed")
    ] = None,
    model: Annotated[
        str,
        typer.Option("--model", "-m", help=", ".join(MODEL_KINDS), rich_help_panel=MODEL),
    ] = TRAIN["model"],
    init: Annotated[
        str | None,
        typer.Option(
            "--init",
            help="start from a registered NAME[:VERSION] (its kind, width and weights), "
            "e.g. spleeter-2stems; the shards must have its preset",
            rich_help_panel=MODEL,
        ),
    ] = None,
    freeze: Annotated[
        str,
        typer.Option(
            help=f"none, or what to keep fixed, +-joined: {', '.join(FREEZE_PARTS)}",
            rich_help_panel=MODEL,
        ),
    ] = TRAIN["freeze"],
    preset: Annotated[
        str | None,
        typer.Option(help="paper, hq or spleeter (default: the shards')", rich_help_panel=MODEL),
    ] = TRAIN["preset"],
    width: Annotated[
        int, typer.Option(help="first-layer channels (16 = paper)", rich_help_panel=MODEL)
    ] = TRAIN["width"],
    dropout: Annotated[
        float, typer.Option(help="decoder dropout (0.5 = paper)", rich_help_panel=MODEL)
    ] = TRAIN["dropout"],
    loss: Annotated[str, typer.Option(help="l1 (paper) or mse", rich_help_panel=MODEL)] = TRAIN[
        "loss"
    ],
    volume_balance: Annotated[
        bool,
        typer.Option(
            "--volume-balance",
            help="volume-balancing loss (Spectrogram-Channels)",
            rich_help_panel=MODEL,
        ),
    ] = TRAIN["volume_balance"],
    lr: Annotated[float, typer.Option(help="Adam learning rate", rich_help_panel=SCHEDULE)] = TRAIN[
        "lr"
    ],
    batch_size: Annotated[
        int, typer.Option(help="global batch (all processes)", rich_help_panel=SCHEDULE)
    ] = TRAIN["batch_size"],
    steps_per_epoch: Annotated[
        int, typer.Option(help="steps between validations", rich_help_panel=SCHEDULE)
    ] = TRAIN["steps_per_epoch"],
    max_epochs: Annotated[int, typer.Option(help="epoch budget", rich_help_panel=SCHEDULE)] = TRAIN[
        "max_epochs"
    ],
    max_steps: Annotated[
        int | None, typer.Option(help="step budget (overrides epochs)", rich_help_panel=SCHEDULE)
    ] = TRAIN["max_steps"],
    patience: Annotated[
        int,
        typer.Option(help="epochs without improvement before stopping", rich_help_panel=SCHEDULE),
    ] = TRAIN["patience"],
    min_quality: Annotated[
        float | None,
        typer.Option(
            help="drop segments of lower label quality (default: the settings')",
            rich_help_panel=SCHEDULE,
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="random seed", rich_help_panel=SCHEDULE)] = TRAIN[
        "seed"
    ],
    checkpoint_every: Annotated[
        int, typer.Option(help="steps between checkpoints", rich_help_panel=SCHEDULE)
    ] = TRAIN["checkpoint_every"],
    val_max_batches: Annotated[
        int | None,
        typer.Option(help="cap validation batches per process", rich_help_panel=SCHEDULE),
    ] = TRAIN["val_max_batches"],
    aug_p: Annotated[
        float, typer.Option(help="probability of each augmentation", rich_help_panel=AUG)
    ] = AUGMENT["p"],
    channel_swap: Annotated[
        bool, typer.Option("--channel-swap", help="swap stereo channels", rich_help_panel=AUG)
    ] = AUGMENT["channel_swap"],
    gain: Annotated[
        float, typer.Option(help="gain range r: β in [1-r, 1+r]; 0 = off", rich_help_panel=AUG)
    ] = AUGMENT["gain"],
    time_stretch: Annotated[
        float, typer.Option(help="time-stretch range r; 0 = off", rich_help_panel=AUG)
    ] = AUGMENT["time_stretch"],
    pitch_shift: Annotated[
        float, typer.Option(help="pitch-shift range r; 0 = off", rich_help_panel=AUG)
    ] = AUGMENT["pitch_shift"],
    device: Annotated[
        str, typer.Option(help="auto, cpu or cuda", rich_help_panel=PROCESSES)
    ] = TRAIN["device"],
    workers: Annotated[
        int, typer.Option(help="data loader workers per process", rich_help_panel=PROCESSES)
    ] = TRAIN["num_workers"],
    nproc: Annotated[
        int | None,
        typer.Option(
            help="processes per node (default: one per GPU, else 1)", rich_help_panel=PROCESSES
        ),
    ] = None,
    nnodes: Annotated[
        int, typer.Option(min=1, help="nodes (torchrun rendezvous)", rich_help_panel=PROCESSES)
    ] = 1,
    node_rank: Annotated[
        int, typer.Option(min=0, help="this node's rank", rich_help_panel=PROCESSES)
    ] = 0,
    rdzv_endpoint: Annotated[
        str | None,
        typer.Option(help="rendezvous host:port for several nodes", rich_help_panel=PROCESSES),
    ] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    catalog_url: CatalogOption = None,
) -> None:
    """Train a separation model on mined shards and register the best version.

    One process per GPU (NCCL, bf16), or --nproc CPU processes (Gloo); prints steps/s, loss
    and ETA; validates every --steps-per-epoch steps with early stopping.
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
        "augment": {
            "p": aug_p,
            "channel_swap": channel_swap,
            "gain": gain,
            "time_stretch": time_stretch,
            "pitch_shift": pitch_shift,
        },
        "num_workers": workers,
        "seed": seed,
        "checkpoint_every": checkpoint_every,
        "val_max_batches": val_max_batches,
        "device": device,
        "promote": promote,
        "freeze": freeze,
        "init": init,
    }
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    from vocalmine.flows.train import train
    from vocalmine.storage.shard_schema import ShardError

    settings = load_settings(config, data_dir=data_dir, catalog_url=catalog_url)
    require_shards(settings, shards, dataset)
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
        fail(exc)
    print_result(result)


def print_result(result: dict[str, Any]) -> None:
    """The registered version and its best validation scores as a table (stdout)."""
    from rich.console import Console
    from rich.table import Table

    if "validation" not in result:
        console.print(f"worker node finished; run folder {result['run_dir']}", highlight=False)
        return
    table = Table(
        "metric",
        "value",
        title=f"{result['name']} v{result['version']} — best of {result['steps']} steps "
        f"(step {result['best_step']}, {result['val_split']} split)",
    )
    for key, value in result["validation"].items():
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    Console().print(table)
    console.print(f"run folder: {result['run_dir']}", highlight=False)
