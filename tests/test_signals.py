"""SIGINT and SIGTERM stop every long verb cleanly, through the real ``vocalmine`` entry point.

Each command runs in a session of its own, and the signal goes to the whole process group, as a
terminal's Ctrl-C does (and to the command alone for SIGTERM, as ``kill`` does). Every case
checks: the exit code (130/143), the time from signal to exit, one line saying what was
interrupted and that a re-run resumes, no traceback, no process left (the Dask workers and the
temporary Prefect server included), no partial file left, and that the re-run gives the
uninterrupted result. Each case prints ``SIGNAL-CASE verb signal seconds left`` for the table.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil
import pytest
import soundfile as sf
import torch

from tests.ops_support import CLI, ROOT, make_library, milestone_reached, snapshot
from vocalmine.storage.catalog import open_catalog
from vocalmine.storage.registry import ModelRegistry
from vocalmine.training.models import build_model

pytestmark = pytest.mark.slow

#: Seconds a command may take from the signal to its exit on a loaded 2-core machine.
EXIT_WITHIN_S = 30.0
CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Run:
    """``vocalmine ARGS`` in its own session; its descendants recorded while it runs."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        environ = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | env
        self.process = subprocess.Popen(
            [*CLI, *args],
            cwd=ROOT,
            env=environ,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.seen: dict[int, psutil.Process] = {}

    def record(self) -> None:
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.process.pid).children(recursive=True):
                self.seen.setdefault(child.pid, child)

    def wait_until(self, ready: Callable[[], bool], timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            assert self.process.poll() is None, self.process.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the command never reached the point"
            self.record()
            time.sleep(0.05)

    def stop(self, signum: int, group: bool = True) -> tuple[int, float, str]:
        """Send ``signum``; returns exit code, seconds to exit, stderr."""
        self.record()
        start = time.monotonic()
        if group:
            os.killpg(self.process.pid, signum)
        else:
            self.process.send_signal(signum)
        try:
            _, stderr = self.process.communicate(timeout=300)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.returncode, time.monotonic() - start, stderr

    def left_behind(self, timeout: float = 10) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            alive = []
            for process in self.seen.values():
                with contextlib.suppress(psutil.Error):
                    if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                        alive.append(f"{process.pid} {' '.join(process.cmdline())[:80]}")
            if not alive or time.monotonic() > deadline:
                return alive
            time.sleep(0.2)


def _check(verb: str, signum: int, code: int, seconds: float, stderr: str, left: list[str]) -> None:
    name = signal.Signals(signum).name
    print(f"SIGNAL-CASE {verb} {name} {seconds:.1f}s left={left or 'nothing'}")
    assert code == CODES[signum], stderr[-3000:]
    assert seconds < EXIT_WITHIN_S, stderr[-3000:]
    assert "Traceback" not in stderr and "Error logging to API" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if "interrupted by" in line]
    assert lines == [f"vocalmine {verb}: " + lines[0].split(": ", 1)[1]], stderr[-2000:]
    assert f"interrupted by {name};" in lines[0] and "run it again" in lines[0]
    assert left == []


# --- mine ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def library(mir1k_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_library(tmp_path_factory.mktemp("signals") / "library", mir1k_dir, 2, 2)


def _mine_env(data_dir: Path) -> dict[str, str]:
    return {
        "VOCALMINE_DATA_DIR": str(data_dir),
        "VOCALMINE_SEGMENT_SKIP_S": "0",
        "VOCALMINE_DASK_WORKERS": "1",
    }


def _sqlite(data_dir: Path) -> dict:
    return snapshot(f"sqlite:///{data_dir / 'catalog.db'}", str(data_dir / "shards"), "default")


def _mine(library: Path, data_dir: Path) -> dict:
    result = subprocess.run(
        [*CLI, "mine", str(library)],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | _mine_env(data_dir),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return _sqlite(data_dir)


@pytest.fixture(scope="module")
def uninterrupted(library: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    result = _mine(library, tmp_path_factory.mktemp("whole") / "data")
    assert [p[2] for p in result["pairs"]] == ["mined", "mined"]
    return result


def _claims_match_the_manifest(data_dir: Path) -> None:
    """No pair is ``mined`` in the catalog unless the manifest lists its part file."""
    state = _sqlite(data_dir)
    mined = {p[:2] for p in state["pairs"] if p[2] == "mined"}
    sharded = {row[0] for row in state["shard_rows"]}
    assert mined <= sharded, (mined, sharded)
    assert state["leftover_files"] == []


@pytest.mark.parametrize(
    ("signum", "milestone", "group"),
    [
        (signal.SIGINT, "fingerprinted", True),
        (signal.SIGTERM, "fingerprinted", False),
        (signal.SIGTERM, "fingerprinted", True),
    ],
    ids=["SIGINT-group", "SIGTERM-command", "SIGTERM-group"],
)
def test_mine_stops_cleanly_and_resumes(
    signum: int,
    milestone: str,
    group: bool,
    library: Path,
    uninterrupted: dict,
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    run = Run(["mine", str(library)], _mine_env(data_dir))
    run.wait_until(lambda: milestone_reached(milestone, data_dir))
    code, seconds, stderr = run.stop(signum, group=group)
    _check("mine", signum, code, seconds, stderr, run.left_behind())
    _claims_match_the_manifest(data_dir)
    assert _mine(library, data_dir) == uninterrupted


# --- scan ------------------------------------------------------------------------------------


def test_scan_stops_within_seconds_not_after_the_whole_library(tmp_path: Path) -> None:
    """Sparse 1 GB files take a second each to hash: a scan that finished its queue first
    would take a minute."""
    library = tmp_path / "library"
    library.mkdir()
    for index in range(48):
        with open(library / f"big-{index:02d}.wav", "wb") as handle:
            handle.truncate(2**30)
    data_dir = tmp_path / "data"
    for signum in (signal.SIGINT, signal.SIGTERM):
        run = Run(["scan", str(library), "--data-dir", str(data_dir)], {})
        time.sleep(6)  # imports, catalog, the first files
        code, seconds, stderr = run.stop(signum)
        _check("scan", signum, code, seconds, stderr, run.left_behind())


# --- separate --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    data = tmp_path_factory.mktemp("model") / "data"
    catalog = open_catalog(f"sqlite:///{data / 'catalog.db'}")
    ModelRegistry(str(data / "models"), catalog).register(
        build_model("unet", "paper", width=4),
        name="vocalmine",
        config={},
        manifest=None,
        metrics={},
    )
    catalog.dispose()
    return data


def _songs(folder: Path, seconds: float = 240.0, rate: int = 22050) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(3)
    for name in ("a", "b"):
        audio = (0.1 * rng.standard_normal((int(seconds * rate), 2))).astype(np.float32)
        sf.write(folder / f"{name}.wav", audio, rate, subtype="FLOAT")
    return folder


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("gate", [False, True], ids=["plain", "gate"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_separate_stops_cleanly_and_a_rerun_finishes(
    signum: int, gate: bool, registered: Path, tmp_path: Path
) -> None:
    songs = _songs(tmp_path / "songs")
    out = tmp_path / "out"
    args = ["separate", str(songs), "-o", str(out), "--data-dir", str(registered), "--workers", "1"]
    args += ["--gate"] if gate else []
    run = Run(args, {})
    run.wait_until(lambda: (out / ".vocalmine-tmp").is_dir() and any(out.rglob("*.part*")))
    code, seconds, stderr = run.stop(signum)
    _check("separate", signum, code, seconds, stderr, run.left_behind())
    assert _files(out) == [] or all(
        set(_files(out / song)) == {"vocals.wav", "accompaniment.wav"} for song in os.listdir(out)
    ), _files(out)
    # a run killed outright leaves its temporary folder; the next run removes it
    killed = Run(args, {})
    killed.wait_until(lambda: any(out.rglob("*.part*")))
    os.killpg(killed.process.pid, signal.SIGKILL)
    killed.process.wait()
    assert any(out.rglob("*.part*"))
    rerun = subprocess.run([*CLI, *args], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert _files(out) == [
        "a",
        "a/accompaniment.wav",
        "a/vocals.wav",
        "b",
        "b/accompaniment.wav",
        "b/vocals.wav",
    ]
    for song in ("a", "b"):
        mix, _ = sf.read(songs / f"{song}.wav", dtype="float32")
        total = sf.read(out / song / "vocals.wav")[0] + sf.read(out / song / "accompaniment.wav")[0]
        np.testing.assert_allclose(total, mix, atol=1e-5)


def test_a_scan_skips_the_temporary_files_of_a_run(tmp_path: Path) -> None:
    from vocalmine.mining.scan import walk_library

    (tmp_path / ".vocalmine-tmp" / "run-1-x" / "song-y").mkdir(parents=True)
    (tmp_path / ".vocalmine-tmp" / "run-1-x" / "song-y" / ".vm-vocals.staged.wav").write_bytes(
        b"RIFF"
    )
    (tmp_path / ".vm-abc.part.wav").write_bytes(b"RIFF")
    (tmp_path / "song.wav").write_bytes(b"RIFF")
    assert [Path(p).name for p, _, _ in walk_library(tmp_path)] == ["song.wav"]


# --- train -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_shards(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The trainer tests' shards: 24 train rows and 4 valid rows of 64×32 patches."""
    from tests.test_shards import TINY, make_segments
    from vocalmine.storage.shard_writer import ShardWriter

    root = tmp_path_factory.mktemp("shards")
    with ShardWriter(str(root), "ds", TINY, rows_per_shard=8, rows_per_group=4) as writer:
        for pair in range(12):
            writer.write_pair(pair, make_segments(pair, 2))
        writer.write_pair(99, make_segments(99, 4, split="valid"))
    return f"{root}/ds"


def _train_args(shards: str, data: Path, run_dir: Path, nproc: int, steps: int) -> list[str]:
    return [
        "train",
        *("--shards", shards, "--data-dir", str(data), "--run-dir", str(run_dir)),
        *("--width", "4", "--batch-size", "4", "--workers", "0", "--device", "cpu"),
        *("--max-steps", str(steps), "--steps-per-epoch", "10", "--val-max-batches", "1"),
        *("--checkpoint-every", "10", "--patience", "1000000", "--nproc", str(nproc)),
    ]


@pytest.mark.parametrize(
    ("signum", "group", "nproc"),
    [
        (signal.SIGINT, True, 1),
        (signal.SIGTERM, False, 1),
        (signal.SIGINT, True, 2),
        (signal.SIGTERM, False, 2),
    ],
    ids=[
        "SIGINT-group-1proc",
        "SIGTERM-command-1proc",
        "SIGINT-group-2proc",
        "SIGTERM-command-2proc",
    ],
)
def test_train_stops_cleanly_and_resumes_from_its_checkpoint(
    signum: int, group: bool, nproc: int, tiny_shards: str, tmp_path: Path
) -> None:
    """With ``--nproc 2`` torchrun and its two Gloo workers must end too, also when SIGTERM
    reaches the command alone (``kill PID``), not the group."""
    data, run_dir = tmp_path / "data", tmp_path / "run"
    steps = 100000  # never reached: the run is stopped, then resumed with a small budget
    run = Run(_train_args(tiny_shards, data, run_dir, nproc, steps), {})
    run.wait_until(lambda: (run_dir / "checkpoints" / "last.pt").exists())
    if nproc > 1:  # torchrun and both workers are up
        run.wait_until(lambda: len(run.seen) >= 3)
    code, seconds, stderr = run.stop(signum, group=group)
    _check("train", signum, code, seconds, stderr, run.left_behind())
    step = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)["state"]["step"]
    assert step >= 10
    rerun = subprocess.run(
        [*CLI, *_train_args(tiny_shards, data, run_dir, nproc, step + 10)],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"at step {step}" in rerun.stdout + rerun.stderr, rerun.stdout[-2000:]
    assert json.loads((run_dir / "result.json").read_text())["steps"] == step + 10
