"""The launcher of training runs: in this process, or through ``torchrun``.

One process on one node trains in this process (:func:`training.trainer.run_config_file`);
anything else runs ``python -m torch.distributed.run ... -m vocalmine.training.trainer
CONFIG.json``, one process per GPU or ``nproc`` Gloo processes, on one node or several through
the usual rendezvous options. Either way the processes write files only (checkpoints,
``metrics.jsonl``, ``result.json``), which the caller reads once they have finished.

A stop signal to the command alone (``kill``, SIGTERM) must not orphan torchrun's workers:
torchrun runs in a process group of its own, the signal is forwarded to it (its agent stops
the workers), and the command waits for it and them to end before it exits
(:func:`stop_process_group`). torchrun's stderr is copied to the command's line by line until
then; what torchrun and the workers print while they are stopped (a ``SignalException``
traceback per process) is dropped, so an interrupted command says one line.

Kept apart from :mod:`training.ddp` so the imports go one way: launch → trainer → ddp.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import torch

from vocalmine.training.trainer import run_config_file


def default_nproc() -> int:
    """One process per visible GPU, or one on a CPU-only machine."""
    return max(1, torch.cuda.device_count()) if torch.cuda.is_available() else 1


#: Seconds torchrun gets to stop its workers after the forwarded signal, before SIGKILL.
STOP_GRACE_S = 10.0


def _descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (Linux ``/proc``; empty elsewhere). torchrun starts each
    worker in a session of its own, so its process group does not hold them."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = entry.read_text().rsplit(")", 1)[1].split()
            parents.setdefault(int(fields[1]), []).append(int(entry.parent.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def stop_process_group(process: subprocess.Popen[bytes], signum: int) -> None:
    """Send ``signum`` to ``process`` (a group leader), wait up to :data:`STOP_GRACE_S` for it,
    then SIGKILL whatever is left of it, its group and its descendants, and reap it."""
    below = _descendants(process.pid)
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signum)
    deadline = time.monotonic() + STOP_GRACE_S
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    for pid in below:  # workers torchrun did not stop in time (not reused pids: just seen)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    process.wait()


def _copy_lines(pipe: IO[bytes], muted: threading.Event) -> None:
    """Copy ``pipe`` to this process's stderr line by line, dropping lines once ``muted``."""
    with pipe:
        for line in iter(pipe.readline, b""):
            if not muted.is_set():
                sys.stderr.write(line.decode(errors="replace"))
                sys.stderr.flush()


def torchrun_command(
    config_path: str | Path,
    *,
    nproc: int,
    nnodes: int = 1,
    node_rank: int = 0,
    rdzv_endpoint: str | None = None,
    rdzv_id: str = "vocalmine",
) -> list[str]:
    """The ``torch.distributed.run`` command line that trains ``config_path`` on every node."""
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}"]
    if nnodes == 1 and rdzv_endpoint is None:
        command.append("--standalone")
    else:
        if rdzv_endpoint is None:
            raise ValueError("several nodes need a rendezvous endpoint (host:port)")
        command += [
            f"--nnodes={nnodes}",
            f"--node-rank={node_rank}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={rdzv_endpoint}",
            f"--rdzv-id={rdzv_id}",
        ]
    return [*command, "-m", "vocalmine.training.trainer", str(config_path)]


def launch(
    config_path: str | Path,
    *,
    nproc: int = 1,
    nnodes: int = 1,
    node_rank: int = 0,
    rdzv_endpoint: str | None = None,
    rdzv_id: str = "vocalmine",
) -> int:
    """Run the training job described by ``config_path``; returns the exit status.

    One process on one node runs in this process; anything else goes through torchrun, whose
    output streams to this process's terminal. When this process is stopped, torchrun and its
    workers are stopped before it goes on (:func:`stop_process_group`).
    """
    if nproc == 1 and nnodes == 1 and rdzv_endpoint is None:
        run_config_file(config_path)
        return 0
    command = torchrun_command(
        config_path,
        nproc=nproc,
        nnodes=nnodes,
        node_rank=node_rank,
        rdzv_endpoint=rdzv_endpoint,
        rdzv_id=rdzv_id,
    )
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    # Its own group: a terminal's Ctrl-C reaches this process only, which forwards it once.
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, process_group=0)
    assert process.stderr is not None
    muted = threading.Event()
    copier = threading.Thread(target=_copy_lines, args=(process.stderr, muted), daemon=True)
    copier.start()
    try:
        code = process.wait()
    except BaseException as exc:  # Ctrl-C, SIGTERM (a SystemExit), or any other way out
        muted.set()
        stop_process_group(
            process, signal.SIGINT if isinstance(exc, KeyboardInterrupt) else signal.SIGTERM
        )
        raise
    finally:
        copier.join(timeout=5)
    return code
