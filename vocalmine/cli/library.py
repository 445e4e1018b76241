"""``vocalmine library build``: write a realistic test library and its ground-truth answer key."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from vocalmine.cli.common import fail

#: testlib.sources.SOURCES and testlib.profiles.PROFILES, named here for the help without importing
#: the builder (a second of imports); the builder rejects anything else, and tests/test_cli.py
#: checks the two lists agree.
SOURCES = ("musdb", "mir1k", "synthetic")
PROFILES = ("default", "alt")

library_app = typer.Typer(
    help="Build realistic test libraries with ground truth.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def library_build_command(
    source: Annotated[
        str, typer.Option("--from", help=f"song source: {', '.join(SOURCES)}", show_default=False)
    ],
    out: Annotated[Path, typer.Option("--out", help="library folder to create (empty)")],
    count: Annotated[
        int | None,
        typer.Option("--count", min=1, help="number of songs (default: all; synthetic 20)"),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="same seed, same bytes")] = 0,
    duration: Annotated[
        str, typer.Option("--duration", help="MIN-MAX song seconds (synthetic only)")
    ] = "120-360",
    truth: Annotated[
        Path | None,
        typer.Option("--truth", help="answer-key folder (default: <out>.truth beside it)"),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="shared data folder with mir1k/ and musdb18-7/"),
    ] = None,
    profile: Annotated[
        str,
        typer.Option(
            "--profile",
            help=f"library style: {', '.join(PROFILES)} (alt: other markers, layouts, "
            "ffmpeg codecs MP3/AAC/Vorbis, offsets, gains and rates)",
        ),
    ] = PROFILES[0],
) -> None:
    """Build a music library of (original, instrumental) files with decoys and a manifest."""
    from vocalmine.testlib.builder import (
        build_library,
        default_truth_dir,
        library_stats,
        parse_duration_range,
        total_minutes,
    )
    from vocalmine.testlib.sources import LibraryBuildError

    start = time.perf_counter()
    try:
        manifest = build_library(
            source,
            out,
            count=count,
            seed=seed,
            duration_range=parse_duration_range(duration),
            truth=truth,
            data_root=data,
            progress=typer.echo,
            profile=profile,
        )
    except LibraryBuildError as exc:
        fail(exc)
    stats = library_stats(out)
    typer.echo(
        f"built {manifest['count']} songs ({profile} profile): {stats['files']} files, "
        f"{total_minutes(manifest):.1f} min, {stats['mb']:.1f} MB in "
        f"{time.perf_counter() - start:.1f} s; truth in {truth or default_truth_dir(out)}"
    )
