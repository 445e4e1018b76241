"""Crash safety and bad input, end to end through the ``vocalmine`` CLI and the mine flow.

- A mining run SIGKILLed (its whole process group: the flow and its Dask workers) at observable
  points, then run again, leaves exactly what an uninterrupted run leaves: the same tracks, pairs,
  rejections and shard rows, no duplicates, no partial files, every shard's checksum valid.
- Two mining runs started at once on one library and one PostgreSQL catalog end with that same
  catalog (the run lock in storage/locks.py serialises them; the second finds the work done).
- A library of broken things (zero-byte, not audio, truncated, symlink loop, broken symlink, a
  folder and a file the scanning user may not read, a file growing during the scan, odd names)
  is scanned and mined to the end with each problem recorded. We run as root, and root ignores
  permission bits, so the scans run with CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH dropped from
  the capability bounding set (util-linux ``setpriv``): root is then refused like any user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from tests.ops_support import (
    MILESTONES,
    ROOT,
    kill_at,
    make_library,
    run_cli,
    snapshot,
    spawn_cli,
    stop_group,
)
from tests.pg import PostgresServer, free_port
from vocalmine.core.audio import save_audio
from vocalmine.flows.dashboard import running_server
from vocalmine.storage.catalog import Track, open_catalog
from vocalmine.storage.shard_reader import ShardReader

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One Prefect server for the module: flows and their Dask workers report there."""
    log = tmp_path_factory.mktemp("prefect") / "server.log"
    with running_server(port=free_port(), log_path=log) as api:
        yield api


@pytest.fixture(scope="module")
def library(mir1k_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_library(tmp_path_factory.mktemp("crash") / "library", mir1k_dir, pairs=2, clips=2)


def _env(api: str, data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        "PREFECT_API_URL": api,
        "VOCALMINE_DATA_DIR": str(data_dir),
        "VOCALMINE_SEGMENT_SKIP_S": "0",
        "VOCALMINE_DASK_WORKERS": "1",
        **extra,
    }


def _mine(library: Path, env: dict[str, str], wrap: list[str] | None = None) -> str:
    result = run_cli(["mine", str(library)], env, timeout=900, wrap=wrap)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def _sqlite_snapshot(data_dir: Path) -> dict:
    return snapshot(f"sqlite:///{data_dir / 'catalog.db'}", str(data_dir / "shards"), "default")


@pytest.fixture(scope="module")
def uninterrupted(
    library: Path, prefect_api: str, tmp_path_factory: pytest.TempPathFactory
) -> dict:
    data_dir = tmp_path_factory.mktemp("uninterrupted") / "data"
    _mine(library, _env(prefect_api, data_dir))
    result = _sqlite_snapshot(data_dir)
    assert [p[2] for p in result["pairs"]] == ["mined", "mined"]
    assert result["shard_rows"] and not result["leftover_files"]
    return result


@pytest.mark.parametrize("milestone", MILESTONES)
def test_a_run_killed_at_any_point_resumes_to_the_uninterrupted_result(
    milestone: str, library: Path, prefect_api: str, uninterrupted: dict, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    env = _env(prefect_api, data_dir)
    assert kill_at(milestone, ["mine", str(library)], env, data_dir), "the run ended first"
    _mine(library, env)
    assert _sqlite_snapshot(data_dir) == uninterrupted
    assert ShardReader(str(data_dir / "shards"), "default").verify() == []


@pytest.mark.postgres
def test_two_concurrent_runs_leave_one_consistent_catalog(
    postgres_server: PostgresServer,
    library: Path,
    prefect_api: str,
    uninterrupted: dict,
    tmp_path: Path,
) -> None:
    catalog_url = postgres_server.create_database("crash_concurrent")
    open_catalog(catalog_url).dispose()
    env = _env(
        prefect_api,
        tmp_path / "data",
        VOCALMINE_CATALOG_URL=catalog_url,
        VOCALMINE_SHARD_ROOT=str(tmp_path / "shards"),
    )
    runs = [spawn_cli(["mine", str(library)], env, tmp_path / f"run-{i}.log") for i in (1, 2)]
    try:
        codes = [run.wait(timeout=1200) for run in runs]
    finally:
        for run in runs:
            stop_group(run)
    logs = "\n".join((tmp_path / f"run-{i}.log").read_text()[-2000:] for i in (1, 2))
    assert codes == [0, 0], logs
    assert snapshot(catalog_url, str(tmp_path / "shards"), "default") == uninterrupted


@pytest.mark.postgres
def test_concurrent_first_opens_of_a_fresh_catalog_all_succeed(
    postgres_server: PostgresServer,
) -> None:
    catalog_url = postgres_server.create_database("crash_fresh_schema")
    opener = (
        "from vocalmine.storage.catalog import open_catalog; "
        f"open_catalog({catalog_url!r}).dispose()"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", opener], cwd=ROOT, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    failures = [p.communicate(timeout=300)[1][-500:] for p in processes if p.wait(timeout=300)]
    assert failures == []


def _without_dac_override() -> list[str]:
    """Run a command as root that permission bits still apply to (see the module docstring)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to drop root's permission override")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


ODD_NAMES = [
    "new\nline.wav",
    "tab\there.wav",
    "emoji 🎵 ñ.wav",
    'quote\'s "double".wav',
    "-leading dash.wav",
    "100% back\\slash.wav",
    "x" * 200 + ".wav",
]


def _tone(seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]


def _bad_library(root: Path, mir1k: Path) -> dict[str, set[str]]:
    """A library with one good pair and every kind of trouble; expected reasons by path."""
    make_library(root, mir1k, pairs=1, clips=1)
    bad = root / "bad"
    bad.mkdir()
    expected: dict[str, set[str]] = {}
    (bad / "empty.mp3").write_bytes(b"")
    expected["bad/empty.mp3"] = {"zero_length"}
    (bad / "notes.flac").write_text("these are liner notes, not audio\n" * 20)
    expected["bad/notes.flac"] = {"not_audio", "decode_error"}
    save_audio(bad / "cut.flac", _tone(4.0), 16000)
    data = (bad / "cut.flac").read_bytes()
    (bad / "cut.flac").write_bytes(data[: len(data) // 3])
    expected["bad/cut.flac"] = {"truncated", "decode_error"}
    os.symlink(bad, bad / "loop")
    expected["bad/loop"] = {"symlink_loop"}
    os.symlink(root / "nowhere.mp3", bad / "dangling.mp3")
    expected["bad/dangling.mp3"] = {"broken_symlink"}
    save_audio(bad / "secret.wav", _tone(), 16000)
    (bad / "secret.wav").chmod(0)
    expected["bad/secret.wav"] = {"permission_denied"}
    locked = root / "locked"
    save_audio(locked / "hidden.flac", _tone(), 16000)
    locked.chmod(0)
    expected["locked"] = {"permission_denied"}
    save_audio(bad / "growing.wav", _tone(4.0), 16000)
    expected["bad/growing.wav"] = {"changed_during_scan"}
    for name in ODD_NAMES:
        save_audio(root / "odd" / name, _tone(), 16000)
        expected[f"odd/{name}"] = {"ok"}
    return expected


class Grower:
    """Appends to a file every millisecond while a scan runs: a download still in progress.

    It grows for as long as the scan runs, however slow a loaded machine makes the run's
    start: past 64 MiB it is cut back to its first size and grows again (the size keeps
    changing, the disk use stays bounded).
    """

    def __init__(self, path: Path) -> None:
        self.path, self.stop = path, threading.Event()
        self.thread = threading.Thread(target=self._grow, daemon=True)

    def _grow(self) -> None:
        start = self.path.stat().st_size
        with open(self.path, "r+b") as handle:
            handle.seek(0, os.SEEK_END)
            while not self.stop.is_set():
                if handle.tell() >= 64 * 2**20:
                    handle.truncate(start)
                    handle.seek(start)
                handle.write(b"\0" * 4096)
                handle.flush()
                time.sleep(0.001)

    def __enter__(self) -> Grower:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()


def _outcomes(data_dir: Path, root: Path) -> dict[str, str]:
    catalog = open_catalog(f"sqlite:///{data_dir / 'catalog.db'}")
    with catalog.session() as session:
        tracks = session.execute(select(Track)).scalars().all()
    catalog.dispose()
    return {
        os.path.relpath(t.path, root.resolve()): t.error_reason if t.status == "error" else t.status
        for t in tracks
    }


def _check(outcomes: dict[str, str], expected: dict[str, set[str]]) -> None:
    for path, reasons in expected.items():
        assert outcomes.get(path) in reasons, (path, outcomes.get(path), sorted(outcomes))


@pytest.fixture
def bad_library(mir1k_dir: Path, tmp_path: Path) -> Iterator[tuple[Path, dict[str, set[str]]]]:
    root = tmp_path / "library"
    expected = _bad_library(root, mir1k_dir)
    yield root, expected
    (root / "locked").chmod(0o755)


def test_a_scan_of_a_broken_library_records_every_problem(
    bad_library: tuple[Path, dict[str, set[str]]], tmp_path: Path
) -> None:
    root, expected = bad_library
    data_dir = tmp_path / "data"
    with Grower(root / "bad" / "growing.wav"):
        result = run_cli(
            ["scan", str(root), "--data-dir", str(data_dir)],
            {},
            timeout=600,
            wrap=_without_dac_override(),
        )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    _check(_outcomes(data_dir, root), expected)


def test_the_mine_flow_finishes_a_broken_library_and_mines_its_good_pair(
    bad_library: tuple[Path, dict[str, set[str]]], prefect_api: str, tmp_path: Path
) -> None:
    root, expected = bad_library
    data_dir = tmp_path / "data"
    with Grower(root / "bad" / "growing.wav"):
        _mine(root, _env(prefect_api, data_dir), wrap=_without_dac_override())
    _check(_outcomes(data_dir, root), expected)
    mined = _sqlite_snapshot(data_dir)
    assert [p[2] for p in mined["pairs"]] == ["mined"]
    assert mined["shard_rows"] and not mined["leftover_files"]


def test_a_file_name_that_is_not_utf8_is_recorded_not_fatal(tmp_path: Path) -> None:
    root = tmp_path / "library"
    save_audio(root / "fine.wav", _tone(), 16000)
    os.rename(root / "fine.wav", os.fsencode(root) + b"/caf\xe9.wav")
    save_audio(root / "other.wav", _tone(), 16000)
    result = run_cli(["scan", str(root), "--data-dir", str(tmp_path / "data")], {}, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(_outcomes(tmp_path / "data", root)) == 2
