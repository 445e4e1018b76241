"""The launcher of training runs: in this process, or through ``torchrun``.

One process on one node trains in this process (:func:`training.trainer.run_config_file`);
anything else runs ``python -m torch.distributed.run ... -m vocalmine.training.trainer
CONFIG.json``, one process per GPU or ``nproc`` Gloo processes, on one node or several through
the usual rendezvous options. Either way the processes write files only (checkpoints,
``metrics.jsonl``, ``result.json``), which the caller reads once they have finished.

Kept apart from :mod:`training.ddp` so the imports go one way: launch → trainer → ddp.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from vocalmine.training.trainer import run_config_file


def default_nproc() -> int:
    """One process per visible GPU, or one on a CPU-only machine."""
    return max(1, torch.cuda.device_count()) if torch.cuda.is_available() else 1


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
    output streams to this process's terminal.
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
    return subprocess.run(command, env=env, check=False).returncode
