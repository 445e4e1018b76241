"""Mining processes keep freed song-sized buffers for reuse instead of mapping fresh pages."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vocalmine.flows.runtime import ALLOCATOR_ENV

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import ctypes, sys, threading
import numpy as np

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd",
        "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
mallinfo2.restype = MallInfo2
if sys.argv[1] == "main-tuned":
    from vocalmine.flows.runtime import keep_freed_memory
    assert keep_freed_memory()
seen = []
def one_song():
    song = np.ones((2, 10_000_000), dtype=np.float32)
    seen.append(mallinfo2().hblkhd)
    del song
    seen.append(mallinfo2().fordblks)
if sys.argv[1].startswith("thread"):
    worker = threading.Thread(target=one_song)
    worker.start()
    worker.join()
else:
    one_song()
print(*seen)
"""
DASK_DEFAULT = {"MALLOC_TRIM_THRESHOLD_": "65536"}
SONG = 80_000_000


def _after_one_song(mode: str, env: dict[str, str]) -> tuple[int, int]:
    """(bytes in private mappings while an 80 MB buffer lives, free heap bytes after it dies)."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **env},
    )
    mapped, kept = out.stdout.split()
    return int(mapped), int(kept)


pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")


def test_by_default_every_song_buffer_is_mapped_and_handed_back() -> None:
    for mode in ("main", "thread"):
        mapped, kept = _after_one_song(mode, DASK_DEFAULT)
        assert mapped >= SONG and kept < SONG


def test_the_flow_process_keeps_a_freed_song_buffer_once_tuned() -> None:
    mapped, kept = _after_one_song("main-tuned", DASK_DEFAULT)
    assert mapped < SONG and kept >= SONG


def test_a_worker_thread_keeps_it_under_the_worker_environment() -> None:
    mapped, kept = _after_one_song("thread", ALLOCATOR_ENV)
    assert mapped < SONG and kept >= SONG


def test_compose_workers_get_the_same_environment() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    literal = compose["x-env"]["DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON"]
    assert ast.literal_eval(literal) == ALLOCATOR_ENV


def _environ() -> dict[str, str]:
    return dict(os.environ)


def test_the_mine_flows_local_workers_start_with_that_environment() -> None:
    from distributed import Client

    from vocalmine.flows.cluster import local_cluster

    with (
        local_cluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as c,
        Client(c) as client,
    ):
        (environ,) = client.run(_environ).values()
    assert {k: environ.get(k) for k in ALLOCATOR_ENV} == ALLOCATOR_ENV
