"""Scan throughput: files per second for a first scan and for an incremental re-scan.

By default the library is the 415 MIR-1K clips (FLAC) copied into a temp folder; ``--library``
scans any folder instead (e.g. one written by ``vocalmine library build``). Prints a table and
writes ``bench/results/scan.json``.

    .venv/bin/python bench/scan.py [--library DIR] [--workers 4]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vocalmine.mining.scan import scan_library  # noqa: E402
from vocalmine.storage.catalog import open_catalog  # noqa: E402

MIR1K = ROOT.parent / "shared" / "data" / "mir1k"


def main() -> None:
    """Build or take a library, scan it twice, report files per second."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--library", type=Path, help="library to scan (default: MIR-1K copy)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scan.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vocalmine-scan-") as tmp:
        library = args.library
        if library is None:
            if not MIR1K.is_dir():
                sys.exit(f"{MIR1K}: MIR-1K clips not found; pass --library DIR")
            library = Path(tmp) / "library"
            shutil.copytree(MIR1K, library)
        files = [p for p in library.rglob("*") if p.is_file()]
        size_mb = sum(p.stat().st_size for p in files) / 2**20
        catalog = open_catalog(f"sqlite:///{tmp}/catalog.db")
        rows = []
        for label in ("first scan", "re-scan (unchanged)"):
            start = time.perf_counter()
            result = scan_library(library, catalog, workers=args.workers)
            seconds = time.perf_counter() - start
            rows.append(
                {
                    "scan": label,
                    "files": result.seen,
                    "seconds": round(seconds, 3),
                    "files_per_s": round(result.seen / seconds, 1),
                    "new": result.new,
                    "unchanged": result.unchanged,
                    "errors": sum(result.errors.values()),
                }
            )
        catalog.dispose()
    table = Table(title=f"scan throughput: {library} ({len(files)} files, {size_mb:.0f} MB)")
    for column in rows[0]:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    Console().print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"library": str(library), "files": len(files), "megabytes": size_mb, "runs": rows},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
