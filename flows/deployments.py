"""Scheduled deployments: ``vocalmine serve`` registers and serves them with Prefect's ``serve``.

- ``mine/mine-scheduled`` runs the mine flow on ``Settings.mine_schedule`` (cron) against the
  configured library. Mining is incremental, so each run reads only files added or changed since
  the last one (the scan compares size and mtime, then the content hash) and processes only pairs
  not yet in the shard manifest. The flow carries its Dask task runner (the configured scheduler
  address, else a LocalCluster).
- ``retrain/retrain-scheduled`` runs the retrain flow on ``Settings.retrain_schedule``: train on
  the current shards, promote only a model that beats the current one on the evaluation set.

Each deployment has a concurrency limit of one, so a slow run is never overlapped by the next
tick. The served process is a long-lived Prefect runner: it needs a Prefect server
(``vocalmine dashboard``, or ``PREFECT_API_URL`` naming one), since schedules live there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from prefect.deployments.runner import RunnerDeployment

from vocalmine.core.settings import Settings

MINE_DEPLOYMENT = "mine-scheduled"
RETRAIN_DEPLOYMENT = "retrain-scheduled"
Which = Literal["all", "mine", "retrain"]


def mine_deployment(settings: Settings, config: str | None = None) -> RunnerDeployment:
    """The scheduled mining deployment for ``settings.library_root``."""
    from vocalmine.flows.mine import configured_mine_flow

    if settings.library_root is None:
        raise ValueError(
            "no library to mine: set library_root (VOCALMINE_LIBRARY_ROOT) or --library"
        )
    parameters: dict[str, Any] = {
        "library": str(Path(settings.library_root).resolve()),
        "data_dir": str(settings.data_dir),
        "shard_root": settings.shard_root,
        "dataset": settings.dataset,
    }
    if config:
        parameters["config"] = config
    return configured_mine_flow(settings).to_deployment(
        name=MINE_DEPLOYMENT,
        cron=settings.mine_schedule,
        parameters=parameters,
        concurrency_limit=1,
        description="Mine new and changed library files into shards (incremental).",
        tags=["vocalmine", "mining"],
    )


def retrain_deployment(
    settings: Settings,
    config: str | None = None,
    *,
    name: str = "vocalmine",
    eval_dataset: str | None = None,
    eval_limit: int | None = None,
    options: dict[str, Any] | None = None,
) -> RunnerDeployment:
    """The scheduled retraining deployment (promotes only a better model)."""
    from vocalmine.flows.retrain import retrain_flow

    parameters: dict[str, Any] = {"name": name, "data_dir": str(settings.data_dir)}
    optional = {
        "config": config,
        "eval_dataset": eval_dataset,
        "eval_limit": eval_limit,
        "options": options,
    }
    parameters.update({k: v for k, v in optional.items() if v is not None})
    return retrain_flow.to_deployment(
        name=RETRAIN_DEPLOYMENT,
        cron=settings.retrain_schedule,
        parameters=parameters,
        concurrency_limit=1,
        description="Train on the current shards; promote only a model that beats the current.",
        tags=["vocalmine", "training"],
    )


def build_deployments(
    settings: Settings,
    which: Which = "all",
    config: str | None = None,
    **retrain: Any,
) -> list[RunnerDeployment]:
    """The deployments ``vocalmine serve`` serves."""
    deployments = []
    if which in ("all", "mine"):
        deployments.append(mine_deployment(settings, config))
    if which in ("all", "retrain"):
        deployments.append(retrain_deployment(settings, config, **retrain))
    return deployments
