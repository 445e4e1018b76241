"""Command-line start-up: how long ``vocalmine --help`` and every ``vocalmine VERB --help`` take.

Each command runs ``--repeat`` times as a fresh process (the installed console script) and the
median wall time is reported; ``--baseline DIR`` times the same help of an older checkout
(``from flows.cli import main`` with ``PYTHONPATH=DIR``, the layout before the ``vocalmine``
package) in the same run, for comparison. Prints a table and writes
``bench/results/cli_startup.json``.

    .venv/bin/python bench/cli_startup.py [--repeat 5] [--baseline /tmp/wt-old]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vocalmine.core.atomic import atomic_write_text  # noqa: E402

VERBS = [
    [],
    ["scan"],
    ["mine"],
    ["pairs"],
    ["train"],
    ["separate"],
    ["evaluate"],
    ["retrain"],
    ["dashboard"],
    ["serve"],
    ["config", "show"],
    ["library", "build"],
]


def median_seconds(
    command: list[str], repeat: int, env: dict[str, str] | None = None, cwd: Path | None = None
) -> float:
    """Median wall time of ``command`` over ``repeat`` fresh processes (output discarded); a
    command that fails is an error, never a time."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, env=env, cwd=cwd, check=False)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
            raise SystemExit(f"{' '.join(command)}: exit {done.returncode} {tail}")
    return statistics.median(times)


def main() -> None:
    """Time every verb's help, now and optionally in a baseline checkout."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="older checkout (flows/cli.py layout)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "cli_startup.json")
    args = parser.parse_args()
    script = str(Path(sys.executable).with_name("vocalmine"))
    rows = []
    for verb in VERBS:
        row = {"command": " ".join(["vocalmine", *verb, "--help"])}
        row["seconds"] = median_seconds([script, *verb, "--help"], args.repeat)
        if args.baseline:
            code = "import sys; from flows.cli import main; main()"
            env = {**os.environ, "PYTHONPATH": str(args.baseline)}
            old = [sys.executable, "-c", code, *verb, "--help"]
            row["baseline_seconds"] = median_seconds(old, args.repeat, env, cwd=args.baseline)
        rows.append(row)
    table = Table(title=f"CLI start-up, median of {args.repeat} (s)")
    table.add_column("command")
    table.add_column("now", justify="right")
    if args.baseline:
        table.add_column("baseline", justify="right")
    for row in rows:
        cells = [row["command"], f"{row['seconds']:.2f}"]
        if args.baseline:
            cells.append(f"{row['baseline_seconds']:.2f}")
        table.add_row(*cells)
    Console().print(table)
    result = {
        "benchmark": "cli_startup",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "repeat": args.repeat,
        "baseline": str(args.baseline) if args.baseline else None,
        "rows": rows,
    }
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
