"""Mining benchmark (issue 3): the mine flow end to end on built libraries, scored against truth.

For each source (``synthetic``, ``mir1k``, ``musdb``) the benchmark

1. builds a test library with :func:`vocalmine.testlib.builder.build_library` (cached in the
   work directory, so a re-run with the same ``--workdir`` reuses it; ``--profile`` picks the
   builder's profile) and reads the answer key ``<library>.truth/manifest.json``, converted to
   the truth format (:func:`bench.truth.truth_from_manifest`, written beside it as
   ``truth.json``);
2. runs ``vocalmine mine LIBRARY --config CFG`` in a fresh catalog (a subprocess, Prefect on a
   throw-away ``PREFECT_HOME``, a Dask LocalCluster of ``--workers`` processes) and times it;
3. scores what the catalog says against the truth:

   * **pairs and decoys** — :func:`bench.truth.score` (``docs/truth-format.md``): precision =
     mined pairs that are true pairs / mined pairs; recall = truth pairs (manifest
     ``expected == "pair"``) that were mined / all of them. A pair mined from a copy of its
     original (or instrumental) counts as the true pair once; a second mining of the same truth
     pair is a false positive. Every decoy and single passes or fails by what was mined, with
     the catalog's reasons about it next to the reasons expected.
   * **alignment** — ``Pair.offset_samples`` (decoded files, original's rate) minus the truth
     from the manifest with the codec delays taken into account:
     ``d = delay_orig − offset_s · sr_orig − delay_instr · sr_orig / sr_instr`` (lameenc MP3s
     decode ``codec_delay_samples`` = 1105 samples late, lossless files 0), rounded to the
     nearest sample. As a cross-check the offset is also *measured*: cross-correlation of the
     decoded instrumental against the true accompaniment stem (whitened, over the whole overlap).
   * **gain** — ``Pair.gain_db`` minus the oracle gain: the least-squares gain of the decoded
     instrumental, placed at the true offset, onto the true accompaniment as it sits in the
     decoded original (stem shifted by the original's codec delay and scaled by its codec gain).
   * **derived vocals** — SDR (plain ``10 log10(‖s‖² / ‖s − ŝ‖²)`` over the whole song, at the
     STFT preset's rate and channels) of the half-wave vocals with the mixture's phase
     (:func:`mining.vocals.derive` + :func:`mining.vocals.reconstruct_vocals`) against the true
     vocal stem, from the catalog's offset, polarity and gain, next to the same derivation from
     the same decoded instrumental at the true offset with the oracle gain, and from the clean
     accompaniment stem.
   * **throughput** — wall time of the ``mine`` command × cores used / mined pairs (cores =
     Dask worker processes, one thread each, at most the machine's cores), and the CPU seconds
     the command and all its children used per mined pair (less sensitive to a shared machine).
     By default the command starts its own LocalCluster and temporary Prefect server, as
     ``vocalmine mine`` does out of the box; ``--dask-address`` and ``--prefect-api-url`` run it
     on a standing cluster and server instead (the CPU figure is then left out: those
     processes are not the command's).
     Fingerprint speed: real-time factor of :func:`mining.landmarks.fingerprint` on decoded
     originals of the library, and of decode + fingerprint as the flow's task does it.
   * **where the time goes** — the flow's phases (scan, title matching and cluster start,
     fingerprint tasks, verification and discovery in the flow's process, pair tasks) from the
     task runs in the bench's own Prefect database, and the seconds per stage of
     :func:`mining.pair_pipeline.process_pair` on a few pairs run one at a time.

Each mine run's time is kept beside its catalog (``runs/<library>/run.json``), so
``--rescore`` scores the last run again without mining (for changes to the scoring only).

``--library DIR --truth FILE`` scores any existing library instead (nothing is built): the mine
flow runs on ``DIR`` and the catalog is scored against the answer key ``FILE`` (the truth format,
``docs/truth-format.md``). Alignment and gain errors come from the truth's optional ``offset_s``
and ``gain_db`` (the catalog's conventions); SDR needs the true stems, so it is measured only
when ``FILE`` is a library builder ``manifest.json`` (then everything above is measured).

Prints rich tables and writes ``bench/results/mining.json`` (``--results`` to change). Never
part of ``make test``: a full run (60 synthetic songs of 3–4 min, all MIR-1K songs, all 50
MUSDB18-7 previews) takes well over half an hour on two shared cores.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.mining_runs import (  # noqa: E402
    DATA,
    ensure_library,
    flow_timeline,
    library_key,
    read_catalog,
    run_mine,
)
from bench.mining_scores import (  # noqa: E402
    fingerprint_speed,
    measure_pairs,
    plain_pair_rows,
    score_decisions,
    stage_timing,
    summarise_pairs,
)
from bench.mining_tables import TARGETS, print_tables  # noqa: E402
from bench.truth import (  # noqa: E402
    is_manifest,
    load_truth,
    truth_from_manifest,
)
from vocalmine.core.atomic import atomic_write_text  # noqa: E402
from vocalmine.testlib.builder import total_minutes  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "mining.json"
SOURCES = ("synthetic", "mir1k", "musdb")
# Per source: default song count (None = every song the source has) and the segment skip.
DEFAULTS: dict[str, dict[str, Any]] = {
    "synthetic": {"count": 60, "segment_skip_s": 20.0},
    "mir1k": {"count": None, "segment_skip_s": 0.0},
    "musdb": {"count": None, "segment_skip_s": 0.0},
}
console = Console(width=200)


# --- one source ---------------------------------------------------------------------------------


def mine_and_score(
    library: Path,
    truth: dict[str, Any],
    built: dict[str, Any] | None,
    run_dir: Path,
    skip: float,
    args: argparse.Namespace,
    workdir: Path,
) -> dict[str, Any]:
    """Mine ``library`` (or take the last run with ``--rescore``), score it against ``truth``, and
    measure the mined true pairs: against the stems when ``built`` (a builder library: its
    ``manifest`` and ``truth`` directory) is given, else against the truth's own offsets and
    gains. The timing measurements follow."""
    if args.rescore and (run_dir / "run.json").is_file():
        console.log(f"re-scoring the last mine run in {run_dir} (not mining again)")
        mine = json.loads((run_dir / "run.json").read_text())
    else:
        console.log(f"mining {library} ({len(truth['pairs'])} truth pairs), {args.workers} workers")
        mine = run_mine(
            library,
            run_dir,
            skip,
            args.workers,
            args.preset,
            args.dask_address,
            args.prefect_api_url,
        )
    cat = read_catalog(Path(mine["config"]), library)
    timeline = flow_timeline(workdir / "prefect", cat["flow_run_id"])
    decisions = score_decisions(truth, cat)
    if built is not None:
        console.log(f"scoring {len(decisions['found'])} mined true pairs against the stems")
        rows = measure_pairs(built["manifest"], cat, decisions, built, args.preset, args.workers)
        originals = [s["original"]["path"] for s in built["manifest"]["songs"] if s["original"]]
    else:
        rows = plain_pair_rows(truth, cat, decisions)
        originals = [p["original"] for p in truth["pairs"]]
    cores = min(args.workers, os.cpu_count() or args.workers)
    mined = decisions["mined_pairs"]
    throughput = {
        "wall_s": mine["wall_s"],
        "flow_body_s": cat["flow_body_s"],
        "flow_timeline": timeline,
        "cpu_s": mine["cpu_s"],
        "standing_deployment": mine.get("standing_deployment"),
        "cores": cores,
        "mined_pairs": mined,
        "seconds_per_pair_core": mine["wall_s"] * cores / mined if mined else float("nan"),
        "cpu_seconds_per_pair": mine["cpu_s"] / mined
        if mined and mine["cpu_s"] is not None
        else float("nan"),
        "load_average": os.getloadavg(),
    }
    fp_speed = fingerprint_speed(originals, library, args.fingerprint_files)
    stages = stage_timing(cat, decisions, library, args.preset, skip, args.stage_pairs)
    files = sum(1 for p in library.rglob("*") if p.is_file())
    return {
        "library": str(library),
        "config": mine["config"],
        "files": files,
        "segment_skip_s": skip,
        "preset": args.preset,
        "decisions": decisions,
        "pairs": summarise_pairs(rows),
        "pair_rows": rows,
        "throughput": throughput,
        "fingerprint_speed": fp_speed,
        "pair_stages": stages,
    }


def _builder_facts(manifest: dict[str, Any]) -> dict[str, Any]:
    return {
        "songs": manifest["count"],
        "library_minutes": total_minutes(manifest),
        "song_minutes_median": float(
            np.median([s["content_duration_s"] for s in manifest["songs"]]) / 60
        ),
    }


def run_source(source: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Build (or reuse), mine, score: everything the tables and the JSON need for one source."""
    count = args.count if args.count is not None else DEFAULTS[source]["count"]
    skip = (
        DEFAULTS[source]["segment_skip_s"] if args.segment_skip_s is None else args.segment_skip_s
    )
    lib = ensure_library(source, count, args.seed, args.duration, workdir, args.profile)
    key = library_key(source, count, args.seed, args.duration, args.profile)
    result = mine_and_score(
        lib["library"], lib["truth_data"], lib, workdir / "runs" / key, skip, args, workdir
    )
    return {
        "source": source,
        "profile": args.profile,
        "truth_file": str(lib["truth"] / "truth.json"),
        **result,
        **_builder_facts(lib["manifest"]),
        "library_cached": lib["cached"],
        "library_build_s": lib["build_s"],
    }


def read_truth_arg(path: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``--truth``: a truth file, or a library builder ``manifest.json`` (converted; then also
    returned, so the pairs can be measured against its stems)."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        data = None  # load_truth says what is wrong
    try:
        if is_manifest(data):
            return truth_from_manifest(data), data
        return load_truth(path), None
    except ValueError as err:
        sys.exit(f"--truth: {err}")


def run_library(args: argparse.Namespace, workdir: Path) -> tuple[str, dict[str, Any]]:
    """``--library DIR --truth FILE``: mine an existing library and score it (nothing built)."""
    library = args.library.resolve()
    if not library.is_dir():
        sys.exit(f"--library {args.library}: not a directory")
    truth_path = args.truth.resolve()
    truth, manifest = read_truth_arg(truth_path)
    named = {p[k] for p in truth["pairs"] for k in ("original", "instrumental")}
    named |= {d["path"] for d in truth["decoys"]} | set(truth["singles"])
    missing = sorted(rel for rel in named if not (library / rel).is_file())
    if missing:
        console.log(
            f"[yellow]{len(missing)} file(s) of the truth are not in {library}, e.g. "
            f"{missing[0]!r}[/yellow]"
        )
    digest = hashlib.sha1(str(library).encode()).hexdigest()[:8]
    run_dir = workdir / "runs" / f"library-{library.name}-{digest}"
    skip = args.segment_skip_s
    if skip is None:
        from vocalmine.core.settings import Settings

        skip = float(Settings.model_fields["segment_skip_s"].default)
    built = {"library": library, "truth": truth_path.parent, "manifest": manifest}
    result = mine_and_score(
        library, truth, built if manifest else None, run_dir, skip, args, workdir
    )
    facts = (
        _builder_facts(manifest)
        if manifest
        else {"songs": None, "library_minutes": None, "song_minutes_median": None}
    )
    name = library.name
    return name, {
        "source": "library",
        "truth_file": str(truth_path),
        **result,
        **facts,
        "library_cached": True,
        "library_build_s": 0.0,
    }


# --- main ---------------------------------------------------------------------------------------


def _durations(text: str) -> tuple[float, float]:
    lo, _, hi = text.partition("-")
    return float(lo), float(hi or lo)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source",
        choices=(*SOURCES, "all"),
        default=None,
        help="built libraries to mine (default all; not with --library)",
    )
    parser.add_argument(
        "--library",
        type=Path,
        default=None,
        help="mine and score this existing library instead of building any (needs --truth)",
    )
    parser.add_argument(
        "--truth",
        type=Path,
        default=None,
        help="the answer key of --library: a truth file (docs/truth-format.md) or a library "
        "builder manifest.json",
    )
    parser.add_argument(
        "--profile",
        default="default",
        choices=("default", "alt"),
        help="library builder profile of the built libraries (part of their cache key)",
    )
    parser.add_argument(
        "--count",
        type=int,
        default=None,
        help="songs per library (default: 60 synthetic, every MIR-1K song, all 50 MUSDB previews)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--duration",
        type=_durations,
        default=(180.0, 240.0),
        help="synthetic song lengths MIN-MAX seconds (default 180-240)",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="libraries and runs (reused)")
    parser.add_argument("--workers", type=int, default=2, help="Dask workers and scoring processes")
    parser.add_argument("--preset", choices=("paper", "hq"), default="paper")
    parser.add_argument(
        "--segment-skip-s",
        type=float,
        default=None,
        help="override the skip (default 20 s synthetic, 0 for the short mir1k/musdb songs)",
    )
    parser.add_argument("--fingerprint-files", type=int, default=6)
    parser.add_argument(
        "--stage-pairs", type=int, default=4, help="pairs timed stage by stage (process_pair)"
    )
    parser.add_argument(
        "--dask-address",
        default=None,
        help="mine on this running Dask scheduler (its --workers workers are the cores counted)",
    )
    parser.add_argument(
        "--prefect-api-url",
        default=None,
        help="report to this running Prefect server (start it with PREFECT_HOME=WORKDIR/prefect "
        "so the flow's phases can be read)",
    )
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument(
        "--rescore",
        action="store_true",
        help="score the last mine run kept in --workdir again instead of mining (its times too)",
    )
    args = parser.parse_args()
    if args.library is not None or args.truth is not None:
        if args.library is None or args.truth is None:
            parser.error("--library and --truth go together")
        if args.source is not None:
            parser.error("--source builds libraries; not with --library")
        if args.profile != "default":
            parser.error("--profile applies to built libraries; not with --library")
    sources = (
        [] if args.library else list(SOURCES) if args.source in (None, "all") else [args.source]
    )
    if any(s != "synthetic" for s in sources) and not DATA.is_dir():
        sys.exit(
            f"shared data not found at {DATA} (see ../shared/data/README.md); "
            "use --source synthetic"
        )
    temp = None
    if args.workdir is None:
        temp = tempfile.TemporaryDirectory(prefix="vocalmine-bench-mining-")
        args.workdir = Path(temp.name)
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        results = {s: run_source(s, args, workdir) for s in sources}
        if args.library is not None:
            name, result = run_library(args, workdir)
            results[name] = result
    finally:
        if temp is not None:
            temp.cleanup()
    print_tables(results)
    payload = {
        "benchmark": "mining",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/mining.py " + " ".join(sys.argv[1:]),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
        },
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "targets": TARGETS,
        "sources": results,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.results, json.dumps(payload, indent=2, default=float))
    console.print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
