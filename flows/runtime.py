"""Allocator settings for the processes that crunch whole songs (mining workers, the flow).

Hand-written because no library sets them: glibc's allocator gives every block above its mmap
threshold (at most 32 MB by default; Dask's nanny also sets ``MALLOC_TRIM_THRESHOLD_`` to
64 KiB) back to the kernel when it is freed, and the next allocation faults fresh pages in
again. A pair allocates a few dozen arrays of 40–150 MB (a 4-minute 48 kHz stereo song is
80 MB in float32), so about a third of its CPU time was the kernel zeroing pages: 1.57 s per
pair of which 0.43 s system time, 1.93 s under Dask's setting, 1.18 s (0.02 s system) with
:data:`ALLOCATOR_ENV`. A task runs in a worker thread, and a thread's own arena cannot hold a
block over 64 MB, so one arena (``MALLOC_ARENA_MAX=1``) is part of the fix, and glibc reads
these only when a process starts: Dask workers get them through the nanny's
``pre-spawn-environ`` (its ``env`` is applied too late). The cost is that a process keeps up
to :data:`KEEP_BYTES` of freed memory for reuse.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import signal
from functools import cache
from typing import Any

from prefect.context import FlowRunContext

#: Freed memory a process keeps for reuse, and the size from which blocks get their own mapping.
KEEP_BYTES = 1 << 30

#: Environment for Dask worker processes (it replaces the nanny's ``pre-spawn-environ``, so it
#: also carries that default's one-thread BLAS settings). README "Scaling out" shows it for
#: ``dask worker`` on other machines.
ALLOCATOR_ENV: dict[str, str] = {
    "MALLOC_ARENA_MAX": "1",
    "MALLOC_MMAP_THRESHOLD_": str(KEEP_BYTES),
    "MALLOC_TRIM_THRESHOLD_": str(KEEP_BYTES),
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
}

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


@cache
def keep_freed_memory() -> bool:
    """The same thresholds for the running process (its main thread's arena), once.

    Returns False where the C library has no ``mallopt`` (macOS, musl): nothing changes there.
    """
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_MMAP_THRESHOLD, KEEP_BYTES) and mallopt(_M_TRIM_THRESHOLD, KEEP_BYTES))


def flow_run_id() -> str | None:
    """The id of the Prefect flow run this code runs in; None outside a flow run."""
    context = FlowRunContext.get()
    return str(context.flow_run.id) if context is not None and context.flow_run else None


def dask_setup(worker: Any) -> None:
    """Dask preload hook of the local workers (:func:`flows.cluster.local_cluster`): SIGINT and
    SIGTERM are ignored, because a terminal's Ctrl-C reaches the whole process group and the
    command that owns the cluster stops the workers itself (killed mid-task, a worker would be
    restarted by its nanny and print a traceback)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
