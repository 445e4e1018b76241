"""The Dask task runner of the mining flow: a LocalCluster by default, a scheduler address for a
real cluster. Local workers start with the allocator settings of :mod:`.runtime` and report to the
flow's own Prefect API server."""

from __future__ import annotations

import logging
import os
from typing import Any

import dask
from distributed import LocalCluster
from prefect.settings import PREFECT_API_URL
from prefect_dask import DaskTaskRunner

from vocalmine.core.settings import Settings
from vocalmine.flows.api_server import temporary_server_url
from vocalmine.flows.runtime import ALLOCATOR_ENV

PRE_SPAWN_ENVIRON = "distributed.nanny.pre-spawn-environ"


class LocalAPIDaskTaskRunner(DaskTaskRunner):
    """A Dask runner whose LocalCluster workers report to the flow's own Prefect API.

    With no ``PREFECT_API_URL`` configured, the flow runs against Prefect's temporary local
    server, and every worker process that runs a task would start one more of its own (seconds
    of start-up per worker, task runs scattered over several servers). While the runner is
    open, ``PREFECT_API_URL`` names the flow's server, so the workers it spawns inherit it.
    """

    def __enter__(self) -> LocalAPIDaskTaskRunner:
        self._saved_api_url = os.environ.get("PREFECT_API_URL")
        if not PREFECT_API_URL.value():
            os.environ["PREFECT_API_URL"] = temporary_server_url()
        return super().__enter__()

    def __exit__(self, *args: Any) -> None:
        try:
            super().__exit__(*args)
        finally:
            if self._saved_api_url is None:
                os.environ.pop("PREFECT_API_URL", None)
            else:
                os.environ["PREFECT_API_URL"] = self._saved_api_url


def local_cluster(**kwargs: Any) -> LocalCluster:
    """A LocalCluster whose worker processes start with :data:`flows.runtime.ALLOCATOR_ENV`.

    glibc reads allocator settings only at process start, so they go in the nanny's
    ``pre-spawn-environ`` (its ``env`` is applied after the worker has started).
    """
    spawn_env = {**dask.config.get(PRE_SPAWN_ENVIRON, default={}), **ALLOCATOR_ENV}
    with dask.config.set({PRE_SPAWN_ENVIRON: spawn_env}):
        return LocalCluster(**kwargs)


def task_runner(settings: Settings) -> DaskTaskRunner:
    """A Dask runner: the configured scheduler address, else a LocalCluster of worker processes."""
    if settings.dask_address:
        return DaskTaskRunner(address=settings.dask_address)
    # Worker start/stop chatter drowns the flow's own progress lines; warnings still show.
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    logging.getLogger("distributed").setLevel(logging.WARNING)
    return LocalAPIDaskTaskRunner(
        cluster_class=local_cluster,
        cluster_kwargs={
            "n_workers": settings.dask_workers,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,
            "silence_logs": logging.ERROR,
        },
    )
