"""Scale-out and crash-resume benchmark of the mine flow.

1. Wall time of ``vocalmine mine`` on one library with the default LocalCluster (2 worker
   processes) and with a real ``dask scheduler`` + 2 ``dask worker`` processes on loopback
   (``VOCALMINE_DASK_ADDRESS``), each on a fresh catalog, both reporting to one Prefect server.
2. Crash-resume: the run is SIGKILLed (whole process group) at observable points (tracks in the
   catalog, first fingerprint stored, first shard file written), then run again; the catalog and
   the shards must equal the uninterrupted run's (same rows, no duplicates, no partial files).

    .venv/bin/python bench/scale_out.py [--pairs 4]

Prints a table and writes bench/results/scale_out.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.ops_support import (  # noqa: E402
    MILESTONES,
    dask_cluster,
    kill_at,
    make_library,
    run_cli,
    snapshot,
)
from tests.pg import free_port  # noqa: E402
from vocalmine.core.atomic import atomic_write_text  # noqa: E402
from vocalmine.flows.dashboard import running_server  # noqa: E402

MIR1K = ROOT.parent / "shared" / "data" / "mir1k"


def mine(library: Path, data_dir: Path, env: dict[str, str]) -> tuple[float, dict]:
    """One ``vocalmine mine`` run on a data dir; wall seconds and its snapshot."""
    start = time.perf_counter()
    result = run_cli(["mine", str(library)], {**env, "VOCALMINE_DATA_DIR": str(data_dir)})
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"mine failed ({result.returncode}): {result.stderr[-2000:]}")
    return wall, snapshot(
        f"sqlite:///{data_dir / 'catalog.db'}", str(data_dir / "shards"), "default"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=4, help="good pairs in the library")
    parser.add_argument("--clips", type=int, default=3, help="MIR-1K clips per song")
    args = parser.parse_args()
    if not MIR1K.is_dir():
        raise SystemExit(f"{MIR1K}: MIR-1K clips are needed")
    work = Path(tempfile.mkdtemp(prefix="vocalmine-scale-"))
    os.environ["PREFECT_HOME"] = str(work / "prefect")
    library = make_library(work / "library", MIR1K, pairs=args.pairs, clips=args.clips)
    files = sum(1 for p in library.rglob("*") if p.is_file())
    results: dict = {
        "library": {"files": files, "pairs": args.pairs, "clips_per_song": args.clips},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "runs": [],
        "crash_resume": [],
    }
    try:
        with running_server(port=free_port(), log_path=work / "prefect.log") as api:
            env = {
                "PREFECT_API_URL": api,
                "PREFECT_LOGGING_LEVEL": "WARNING",
                "VOCALMINE_SEGMENT_SKIP_S": "0",
                "VOCALMINE_DASK_WORKERS": "2",
            }
            wall, reference = mine(library, work / "local", env)
            results["runs"].append({"cluster": "LocalCluster, 2 worker processes", "wall_s": wall})
            with dask_cluster(2, env={"PREFECT_API_URL": api}) as address:
                wall, remote = mine(
                    library, work / "remote", {**env, "VOCALMINE_DASK_ADDRESS": address}
                )
            results["runs"].append(
                {
                    "cluster": "dask scheduler + 2 dask worker processes",
                    "wall_s": wall,
                    "same_result": _comparable(remote, work / "remote")
                    == _comparable(reference, work / "local"),
                }
            )
            for milestone in MILESTONES:
                data_dir = work / f"crash-{milestone}"
                start = time.perf_counter()
                killed = kill_at(
                    milestone,
                    ["mine", str(library)],
                    {**env, "VOCALMINE_DATA_DIR": str(data_dir)},
                    data_dir,
                )
                killed_after = time.perf_counter() - start
                resume_wall, resumed = mine(library, data_dir, env)
                results["crash_resume"].append(
                    {
                        "killed_at": milestone,
                        "killed": killed,
                        "killed_after_s": killed_after,
                        "resume_wall_s": resume_wall,
                        "equal_to_uninterrupted": _comparable(resumed, data_dir)
                        == _comparable(reference, work / "local"),
                        "leftover_files": resumed["leftover_files"],
                    }
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(results)


def _comparable(snap: dict, data_dir: Path) -> dict:
    """A snapshot with the run's own folder replaced, so runs in different folders compare."""
    return json.loads(json.dumps(snap, default=str).replace(str(data_dir), "<data>"))


def report(results: dict) -> None:
    console = Console()
    table = Table(
        title=f"mining {results['library']['files']} files ({results['library']['pairs']} pairs)"
    )
    table.add_column("cluster")
    table.add_column("wall s", justify="right")
    for run in results["runs"]:
        table.add_row(run["cluster"], f"{run['wall_s']:.1f}")
    console.print(table)
    crash = Table(title="SIGKILL then re-run")
    for column in (
        "killed at",
        "killed",
        "killed after s",
        "resume s",
        "equal to uninterrupted",
        "leftovers",
    ):
        crash.add_column(column)
    for row in results["crash_resume"]:
        crash.add_row(
            row["killed_at"],
            str(row["killed"]),
            f"{row['killed_after_s']:.1f}",
            f"{row['resume_wall_s']:.1f}",
            str(row["equal_to_uninterrupted"]),
            str(len(row["leftover_files"])),
        )
    console.print(crash)
    out = ROOT / "bench" / "results" / "scale_out.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(results, indent=2))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
