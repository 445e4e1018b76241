"""``vocalmine serve``: register and serve the scheduled mining and retraining deployments."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vocalmine.cli.common import ConfigOption, DataDirOption, console, fail, load_settings
from vocalmine.training.config import TrainConfig

SCHEDULES = "Schedules"
PROMOTION = "Retraining"


def serve_command(
    only: Annotated[
        str, typer.Option("--only", help="serve all deployments, or only mine or retrain")
    ] = "all",
    library: Annotated[
        Path | None, typer.Option(help="library to mine (VOCALMINE_LIBRARY_ROOT)")
    ] = None,
    dask_address: Annotated[
        str | None, typer.Option(help="Dask scheduler for mining (default: a LocalCluster)")
    ] = None,
    mine_schedule: Annotated[
        str | None,
        typer.Option(help="cron of mining (VOCALMINE_MINE_SCHEDULE)", rich_help_panel=SCHEDULES),
    ] = None,
    retrain_schedule: Annotated[
        str | None,
        typer.Option(
            help="cron of retraining (VOCALMINE_RETRAIN_SCHEDULE)", rich_help_panel=SCHEDULES
        ),
    ] = None,
    model_name: Annotated[
        str, typer.Option(help="registry name of the retrained model", rich_help_panel=PROMOTION)
    ] = TrainConfig.name,
    eval_dataset: Annotated[
        Path | None,
        typer.Option(
            help="evaluation set for promotion (default: MUSDB18-7 test)",
            rich_help_panel=PROMOTION,
        ),
    ] = None,
    eval_limit: Annotated[
        int | None,
        typer.Option(min=1, help="score the first N tracks only", rich_help_panel=PROMOTION),
    ] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Register and serve the scheduled mining and retraining deployments (Ctrl-C stops)."""
    if only not in ("all", "mine", "retrain"):
        raise typer.BadParameter(f"{only}: expected all, mine or retrain", param_hint="--only")
    settings = load_settings(
        config,
        library_root=library,
        data_dir=data_dir,
        dask_address=dask_address,
        mine_schedule=mine_schedule,
        retrain_schedule=retrain_schedule,
    )
    from prefect import serve

    from vocalmine.flows.deployments import build_deployments

    try:
        deployments = build_deployments(
            settings,
            only,  # type: ignore[arg-type]
            str(config.resolve()) if config else None,
            name=model_name,
            eval_dataset=str(eval_dataset.resolve()) if eval_dataset else None,
            eval_limit=eval_limit,
        )
    except ValueError as exc:
        fail(exc)
    for deployment in deployments:
        cron = deployment.schedules[0].schedule.cron if deployment.schedules else "-"
        console.print(
            f"serving {deployment.flow_name}/{deployment.name} on cron '{cron}'", highlight=False
        )
    serve(*deployments, print_starting_message=False)
