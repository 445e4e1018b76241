"""The Dask task runner of the mining flow: a LocalCluster by default, a scheduler address for a
real cluster. Local workers start with the allocator settings of :mod:`.runtime`, report to the
flow's own Prefect API server, and leave Ctrl-C and SIGTERM to the command (see
:func:`local_cluster`)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import dask
from distributed import LocalCluster, Nanny
from prefect.settings import PREFECT_API_URL
from prefect_dask import DaskTaskRunner

from vocalmine.core.settings import Settings
from vocalmine.flows.api_server import temporary_server_url
from vocalmine.flows.runtime import ALLOCATOR_ENV

PRE_SPAWN_ENVIRON = "distributed.nanny.pre-spawn-environ"
PRELOAD = "distributed.worker.preload"
#: The module every local worker preloads (its ``dask_setup`` runs in the worker).
WORKER_PRELOAD = "vocalmine.flows.runtime"


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

    def __exit__(self, exc_type: type[BaseException] | None, *args: Any) -> None:
        try:
            if exc_type is not None and not issubclass(exc_type, Exception):
                self._stop_workers_now()  # Ctrl-C, SIGTERM: no time for a polite close
            super().__exit__(exc_type, *args)
        finally:
            if self._saved_api_url is None:
                os.environ.pop("PREFECT_API_URL", None)
            else:
                os.environ["PREFECT_API_URL"] = self._saved_api_url

    def _stop_workers_now(self, timeout_s: float = 1.0) -> None:
        """Stop the LocalCluster's worker processes within about ``timeout_s`` (the nanny's
        own close waits 4 s for a busy worker): they hold nothing the flow has not written."""
        cluster = getattr(self, "_cluster", None)
        if isinstance(cluster, LocalCluster):
            # "still alive after 0.8 seconds, killing", "cannot reschedule a cancelled task":
            # what the command asked for, not news
            logging.getLogger("distributed").setLevel(logging.ERROR)
            with suppress(Exception):
                cluster.sync(_kill_workers, cluster, timeout_s)


@contextmanager
def cancelled_on_exit(futures: list[Any]) -> Iterator[None]:
    """Cancel the Dask work behind Prefect ``futures`` if the block ends with an exception.

    Ctrl-C, SIGTERM or a failure in the flow leaves queued tasks that the cluster would
    otherwise start, one after the other, while it closes.
    """
    try:
        yield
    except BaseException:
        wrapped = [f.wrapped_future for f in futures if hasattr(f, "wrapped_future")]
        if wrapped:
            with suppress(Exception):  # a cluster already gone has nothing left to run
                wrapped[0].client.cancel(wrapped, force=True)
        raise


async def _kill_workers(cluster: LocalCluster, timeout_s: float) -> None:
    await asyncio.gather(
        *(w.kill(timeout=timeout_s) for w in cluster.workers.values() if isinstance(w, Nanny)),
        return_exceptions=True,
    )


def local_cluster(**kwargs: Any) -> LocalCluster:
    """A LocalCluster whose worker processes start with :data:`flows.runtime.ALLOCATOR_ENV` and
    leave SIGINT and SIGTERM to the command (:func:`flows.runtime.dask_setup`, a preload).

    glibc reads allocator settings only at process start, so they go in the nanny's
    ``pre-spawn-environ`` (its ``env`` is applied after the worker has started). A terminal's
    Ctrl-C reaches the whole process group: the command cancels the work and stops the
    workers, rather than each worker dying mid-task for its nanny to restart it.
    """
    spawn_env = {**dask.config.get(PRE_SPAWN_ENVIRON, default={}), **ALLOCATOR_ENV}
    preload = [*dask.config.get(PRELOAD, default=[]), WORKER_PRELOAD]
    with dask.config.set({PRE_SPAWN_ENVIRON: spawn_env, PRELOAD: preload}):
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
