"""Library scale: the on-disk fingerprint index and the discovery sweep on Dask, from 1,000 to
20,000 tracks.

For each size the library (``bench/scale_corpus.py``: rendered or decoded base songs, families
derived from them by hash-value bijections, planted pairs and copies) goes through what
``vocalmine mine`` does, without the audio stages:

1. **index**: 99 % of the tracks are written to a fresh on-disk index (objects + postings,
   appended in generations of :data:`flows.mine.APPEND_HASHES` hashes), as a first run would;
2. **full sweep**: every indexed recording is queried, in blocks, on a LocalCluster
   (``--workers`` processes, one thread each); the checks and swept marks go into a real SQLite
   catalog as the flow stores them;
3. **incremental**: the last 1 % arrive: appended, and only they are swept;
4. **no change**: what a run with nothing new costs: open the index, ask the catalog which
   recordings are not swept yet (none);
5. **decisions**: duplicates and discovered pairs from the stored checks, as the flow decides
   them, against the planted answer key: recall and precision.

CPU is the sum over the sweep tasks of their process time (measured inside each task). Peak
memory is the largest peak RSS of a worker process during one task (VmHWM, reset at the task's
start: Linux ``/proc/self/clear_refs``; the worker's own ~150 MB baseline included) and of
this process over the size (it builds the index, as the flow process does). Growth is the
slope of log CPU against log tracks between sizes.

    .venv/bin/python bench/scale.py --kind synthetic --sizes 1000,2000,5000,10000,20000 \\
        --json bench/results/scale-synthetic.json

Prints a table and writes the JSON to ``--json``, one row per size.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scale_corpus import KINDS, Corpus, base_material, derive_corpus  # noqa: E402

from vocalmine.core.atomic import atomic_write_text  # noqa: E402
from vocalmine.flows.mine import APPEND_HASHES  # noqa: E402
from vocalmine.mining.discovery import discover_pairs, find_duplicates  # noqa: E402
from vocalmine.mining.fingerprint_index import (  # noqa: E402
    DEFAULT_SWEEP,
    FingerprintIndex,
    SweepParams,
    open_index,
    sweep_blocks,
    sweep_index,
)
from vocalmine.mining.fingerprint_match import DEFAULT_THRESHOLDS  # noqa: E402
from vocalmine.mining.verification import checks_by_track  # noqa: E402
from vocalmine.storage import mining_store as store  # noqa: E402
from vocalmine.storage.catalog import open_catalog  # noqa: E402
from vocalmine.storage.fingerprint_store import FingerprintStore  # noqa: E402


def reset_peak() -> None:
    """Start this process's peak-RSS count afresh (Linux: ``clear_refs`` 5 resets VmHWM)."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_mb() -> float:
    """This process's peak RSS since the last :func:`reset_peak` (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sweep_block(root: str, contents: list[str], params: SweepParams) -> dict[str, Any]:
    """One sweep task on a worker: its checks, its CPU seconds and the worker process's peak
    RSS while it ran (the worker's own baseline included)."""
    from vocalmine.mining.fingerprint_index import open_index, sweep_store

    reset_peak()
    cpu = time.process_time()
    rows = sweep_store(open_index(root), contents, params)
    return {
        "rows": rows,
        "contents": contents,
        "cpu_s": time.process_time() - cpu,
        "peak_mb": peak_mb(),
        "pid": os.getpid(),
    }


def build_index(index: FingerprintStore, corpus: Corpus, names: list[str]) -> None:
    """Objects and postings of ``names``, appended in generations as the flow appends them."""
    pending: list[Any] = []
    held = 0

    def stored(name: str) -> tuple[str, Any]:
        fp = corpus.fingerprint(name)
        index.write_object(name, fp.to_bytes())  # zlib releases the GIL: two threads
        return name, fp

    with ThreadPoolExecutor(2) as pool:
        for start in range(0, len(names), 16):  # bounded: Executor.map would run far ahead
            for name, fp in pool.map(stored, names[start : start + 16]):
                pending.append((name, fp.hashes, fp.times, fp.n_frames))
                held += len(fp)
                if held >= APPEND_HASHES:
                    index.append(pending)
                    pending, held = [], 0
    index.append(pending)
    index.refresh()


def run_sweep(
    client: Any, catalog: Any, index: FingerprintStore, contents: list[str], args: Any
) -> dict[str, Any]:
    """Sweep ``contents`` on the cluster in blocks; checks and swept marks into the catalog."""
    entries = index.entries
    sizes = {entries[h].fp_id: entries[h].n_hashes for h in contents}
    by_id = {entries[h].fp_id: h for h in contents}
    spread = max(1, -(-sum(sizes.values()) // (2 * args.workers)))
    blocks = [
        [by_id[i] for i in block] for block in sweep_blocks(sizes, min(args.block_hashes, spread))
    ]
    params = replace(DEFAULT_SWEEP, postings_per_hash=args.postings_per_hash)
    start = time.perf_counter()
    futures = client.map(sweep_block, [index.root] * len(blocks), blocks, [params] * len(blocks))
    cpu, peak, rows = 0.0, 0.0, 0
    from distributed import as_completed

    for future in as_completed(futures):
        result = future.result()
        store.save_checks(catalog, index.key, result["rows"], result["contents"])
        cpu += result["cpu_s"]
        peak = max(peak, result["peak_mb"])
        rows += len(result["rows"])
        future.release()
    return {
        "wall_s": time.perf_counter() - start,
        "cpu_s": cpu,
        "worker_peak_mb": peak,
        "blocks": len(blocks),
        "checks": rows,
    }


def score(catalog: Any, index: FingerprintStore, corpus: Corpus, names: list[str]) -> dict:
    """Recall and precision of the planted relations among ``names``.

    Sweep level (``recall``, ``precision``): a relation is found when its stored exact check
    passes the discovery thresholds (``min_matches``, ``min_ratio``, ``min_coverage``); the
    planted relations are each family's (mix, instrumental), (copy, mix) and (copy,
    instrumental). Decision level (``decision_*``): what ``find_duplicates`` and
    ``discover_pairs`` then call a copy or a pair without any title (a pair whose vocals mask
    few accompaniment peaks agrees like a copy; the flow's title candidates prevent that).
    """
    number = {n: k for k, n in enumerate(names)}
    rows = store.load_checks(catalog, index.key, set(names))
    checks = checks_by_track(rows, {n: [k] for n, k in number.items()})
    t = DEFAULT_THRESHOLDS

    def passes(c: Any) -> bool:
        return (
            max(c.a_in_b.n_matches, c.b_in_a.n_matches) >= t.min_matches
            and max(c.a_in_b.ratio, c.b_in_a.ratio) >= t.min_ratio
            and max(c.a_in_b.coverage, c.b_in_a.coverage) >= t.min_coverage
        )

    def both(a: str, b: str) -> frozenset[int] | None:
        return frozenset((number[a], number[b])) if a in number and b in number else None

    inst_of = dict(corpus.pairs)
    planted_pairs = {both(a, b) for a, b in corpus.pairs} - {None}
    planted_copies = {both(a, b) for a, b in corpus.copies} - {None}
    copy_inst = {both(c, inst_of[m]) for c, m in corpus.copies if m in inst_of} - {None}
    planted = planted_pairs | planted_copies | copy_inst
    found = {frozenset((c.a, c.b)) for c in checks if passes(c)}
    entries = index.entries
    frame_s = corpus.fingerprint(names[0]).frame_s
    durations = {number[n]: entries[n].n_frames * frame_s for n in names}
    duplicates = find_duplicates(checks, durations=durations)
    copy_of = {d.track_id for d in duplicates}
    called_pairs = {
        frozenset((d.original_id, d.instrumental_id))
        for d in discover_pairs(checks)
        if d.original_id not in copy_of and d.instrumental_id not in copy_of
    }
    called_copies = {frozenset((d.track_id, d.duplicate_of)) for d in duplicates}

    def ratio(hit: int, total: int) -> float:
        return hit / total if total else 1.0

    return {
        "planted_pairs": len(planted_pairs),
        "planted_copies": len(planted_copies),
        "planted_relations": len(planted),
        "found_relations": len(found),
        "recall": ratio(len(found & planted), len(planted)),
        "precision": ratio(len(found & planted), len(found)),
        "decision_pair_recall": ratio(len(called_pairs & planted_pairs), len(planted_pairs)),
        "decision_pair_precision": ratio(len(called_pairs & planted), len(called_pairs)),
        "decision_copy_recall": ratio(len(called_copies & planted_copies), len(planted_copies)),
        "decision_copy_precision": ratio(len(called_copies & planted), len(called_copies)),
    }


def independent(bases: list[Any]) -> list[Any]:
    """The bases that share no audio with an earlier one (by an exact check passing the
    discovery thresholds between any of their parts): MIR-1K's singers sang the same karaoke
    songs, so two clips may hold one accompaniment, a real relation no answer key plants (at any
    offset and length: derived families get other lengths). With
    independent bases every relation in a derived library is a planted one."""
    fps = {}
    for k, base in enumerate(bases):
        for part, fp in enumerate((base.mix, base.inst, base.copy)):
            fps[3 * k + part] = fp
    t = DEFAULT_THRESHOLDS
    linked: dict[int, set[int]] = {}
    # no duration blocking: derived families get other lengths, so any two bases may meet
    for c in sweep_index(FingerprintIndex(fps), replace(DEFAULT_SWEEP, max_duration_diff_s=None)):
        a, b = c.a // 3, c.b // 3
        if a != b and (
            max(c.a_in_b.n_matches, c.b_in_a.n_matches) >= t.min_matches
            and max(c.a_in_b.ratio, c.b_in_a.ratio) >= t.min_ratio
            and max(c.a_in_b.coverage, c.b_in_a.coverage) >= t.min_coverage
        ):
            linked.setdefault(a, set()).add(b)
            linked.setdefault(b, set()).add(a)
    kept: list[int] = []
    for k in range(len(bases)):
        if not linked.get(k, set()) & set(kept):
            kept.append(k)
    return [bases[k] for k in kept]


def one_size(size: int, corpus: Corpus, work: Path, args: Any) -> dict[str, Any]:
    """Index, full sweep, incremental run, no-change run and scores of one library size."""
    from distributed import Client, LocalCluster

    folder = work / f"size-{size}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    names = corpus.names()
    arriving = max(1, math.ceil(size / 100))
    old, new = names[:-arriving], names[-arriving:]
    catalog = open_catalog(f"sqlite:///{folder / 'catalog.db'}")
    root = str(folder / "index")
    row: dict[str, Any] = {"tracks": size, "kind": corpus.kind, "bases": corpus.bases}
    reset_peak()
    start, cpu = time.perf_counter(), time.process_time()
    index = open_index(root)
    build_index(index, corpus, old)
    row["index_build_s"] = round(time.perf_counter() - start, 2)
    row["index_build_cpu_s"] = round(time.process_time() - cpu, 2)
    row["hashes"] = sum(e.n_hashes for e in index.entries.values())
    with (
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            memory_limit=0,
        ) as cluster,
        Client(cluster) as client,
    ):
        full = run_sweep(client, catalog, index, old, args)
        start, cpu = time.perf_counter(), time.process_time()
        index = open_index(root)
        build_index(index, corpus, new)
        append_s, append_cpu = time.perf_counter() - start, time.process_time() - cpu
        incremental = run_sweep(client, catalog, index, new, args)
    start, cpu = time.perf_counter(), time.process_time()
    index = open_index(root)
    todo = set(index.entries) - store.swept_contents(catalog, index.key, set(index.entries))
    no_change_s = time.perf_counter() - start
    no_change_cpu = time.process_time() - cpu
    assert not todo, f"{len(todo)} recordings left unswept"
    row.update(
        {
            "sweep_cpu_s": round(full["cpu_s"], 2),
            "sweep_wall_s": round(full["wall_s"], 2),
            "sweep_blocks": full["blocks"],
            "checks": full["checks"],
            "worker_peak_mb": round(full["worker_peak_mb"], 1),
            "incremental_tracks": len(new),
            "incremental_cpu_s": round(incremental["cpu_s"] + append_cpu, 2),
            "incremental_wall_s": round(incremental["wall_s"] + append_s, 2),
            "incremental_share": round(
                (incremental["cpu_s"] + append_cpu) / max(full["cpu_s"], 1e-9), 4
            ),
            "no_change_s": round(no_change_s, 3),
            "no_change_cpu_s": round(no_change_cpu, 3),
            "index_mb": round(index.disk_bytes() / 2**20, 1),
            "generations": len(index.manifest["generations"]),
        }
    )
    row.update({k: round(v, 4) for k, v in score(catalog, index, corpus, names).items()})
    row["main_peak_mb"] = round(peak_mb(), 1)
    row["peak_mb"] = max(row["main_peak_mb"], row["worker_peak_mb"])
    catalog.dispose()
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    return row


def growth(rows: list[dict[str, Any]]) -> None:
    """The exponent of sweep CPU against tracks from the previous size (and the first)."""
    for prev, row in zip(rows, rows[1:], strict=False):
        row["growth_vs_prev"] = round(
            math.log(row["sweep_cpu_s"] / prev["sweep_cpu_s"])
            / math.log(row["tracks"] / prev["tracks"]),
            3,
        )
        row["growth_vs_first"] = round(
            math.log(row["sweep_cpu_s"] / rows[0]["sweep_cpu_s"])
            / math.log(row["tracks"] / rows[0]["tracks"]),
            3,
        )


def table(rows: list[dict[str, Any]], kind: str) -> Table:
    """The rows as a rich table."""
    out = Table(title=f"Discovery at scale ({kind})")
    columns = [
        ("tracks", "tracks"),
        ("hashes", "hashes"),
        ("sweep_cpu_s", "sweep CPU s"),
        ("sweep_wall_s", "wall s"),
        ("growth_vs_prev", "N^"),
        ("peak_mb", "peak MB"),
        ("index_mb", "index MB"),
        ("incremental_share", "+1 % / full"),
        ("no_change_s", "no-change s"),
        ("recall", "recall"),
        ("precision", "precision"),
    ]
    for _, title in columns:
        out.add_column(title, justify="right")
    for row in rows:
        out.add_row(*(f"{row.get(key, '–')}" for key, _ in columns))
    return out


def main() -> None:
    """Parse the options, run every size, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,2000,5000,10000,20000")
    parser.add_argument("--kind", choices=KINDS, default="synthetic")
    parser.add_argument("--bases", type=int, default=40, help="base songs rendered/decoded")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/vocalmine-scale"))
    parser.add_argument(
        "--json", type=Path, help="results file (default bench/results/scale-<kind>.json)"
    )
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster processes")
    parser.add_argument("--postings-per-hash", type=float, default=DEFAULT_SWEEP.postings_per_hash)
    parser.add_argument("--block-hashes", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep each size's index")
    args = parser.parse_args()
    args.json = args.json or ROOT / "bench" / "results" / f"scale-{args.kind}.json"
    sizes = [int(s) for s in args.sizes.split(",") if s]
    rendered = base_material(args.kind, args.workdir / "bases", args.bases)
    bases = independent(rendered)
    rows = []
    console = Console(width=160)
    for size in sizes:
        corpus = derive_corpus(bases, size)
        rows.append(one_size(size, corpus, args.workdir, args))
        growth(rows)
        console.print(rows[-1])
        results = {
            "benchmark": "scale",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "load": os.getloadavg(),
            },
            "settings": {
                "kind": args.kind,
                "bases": len(bases),
                "bases_rendered": len(rendered),
                "workers": args.workers,
                "postings_per_hash": args.postings_per_hash,
                "block_hashes": args.block_hashes,
            },
            "rows": rows,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.json, json.dumps(results, indent=2) + "\n")
    console.print(table(rows, args.kind))


if __name__ == "__main__":
    main()
