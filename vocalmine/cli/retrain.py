"""``vocalmine retrain``: train on the current shards, promote only a better model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vocalmine.cli.common import ConfigOption, DataDirOption, fail, load_settings, require_shards
from vocalmine.training.config import TrainConfig

EVALUATION = "Evaluation"


def retrain_command(
    name: Annotated[str, typer.Option("--name", help="model name in the registry")] = (
        TrainConfig.name
    ),
    model: Annotated[str, typer.Option("--model", "-m", help="architecture")] = TrainConfig.model,
    force: Annotated[
        bool, typer.Option("--force", help="train even when the shards are unchanged")
    ] = False,
    max_steps: Annotated[int | None, typer.Option(min=1, help="training steps")] = None,
    init: Annotated[
        str | None,
        typer.Option(
            "--init",
            help="fine-tune from a registered NAME[:VERSION] (e.g. spleeter-2stems); while "
            "--name has no current version the candidate must beat that model",
        ),
    ] = None,
    freeze: Annotated[
        str, typer.Option(help="what to keep fixed (with --init): see train --help")
    ] = TrainConfig.freeze,
    lr: Annotated[float, typer.Option(help="Adam learning rate")] = TrainConfig.lr,
    nproc: Annotated[int | None, typer.Option(min=1, help="training processes")] = None,
    eval_dataset: Annotated[
        Path | None,
        typer.Option(
            "--eval-dataset",
            help="musdb folder, MIR-1K folder or library manifest",
            rich_help_panel=EVALUATION,
        ),
    ] = None,
    eval_limit: Annotated[
        int | None,
        typer.Option(min=1, help="score the first N tracks only", rich_help_panel=EVALUATION),
    ] = None,
    min_improvement: Annotated[
        float,
        typer.Option(
            help="dB the candidate must gain over the current", rich_help_panel=EVALUATION
        ),
    ] = 0.0,
    device: Annotated[
        str, typer.Option(help="evaluation device: cpu or cuda", rich_help_panel=EVALUATION)
    ] = "cpu",
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Retrain on the current shards; promote the new model only if it beats the current one."""
    from vocalmine.flows.retrain import retrain_flow

    require_shards(load_settings(config, data_dir=data_dir))
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
            init=init,
            options={"freeze": freeze, "lr": lr} | ({"max_steps": max_steps} if max_steps else {}),
            config=str(config) if config else None,
            data_dir=str(data_dir) if data_dir else None,
        )
    except (LookupError, ValueError, OSError) as exc:
        fail(exc)
    typer.echo(decision["reason"])
