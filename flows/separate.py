"""``vocalmine separate``: songs in, vocals and accompaniment out (see separation/separate.py).

A thin command: it loads the model once, expands files/folders/globs, and runs the separator on
each file with a progress bar. A bad file prints one line naming it and the reason and the batch
goes on; the exit status is 1 when any file failed. Existing stems are skipped unless
``--overwrite``.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from vocalmine.separation.chunking import ChunkSettings
from vocalmine.separation.postprocess import GateSettings, PostProcessing
from vocalmine.separation.separate import (
    SOURCES,
    OutputExistsError,
    Separator,
    expand_inputs,
    load_registered_model,
    output_dir_for,
)

from vocalmine.core.audio import AudioError, probe
from vocalmine.core.settings import get_settings

console = Console(stderr=True, soft_wrap=True)


class Format(StrEnum):
    """Output file formats."""

    wav = "wav"
    flac = "flac"
    mp3 = "mp3"


class Device(StrEnum):
    """Where the model runs."""

    cpu = "cpu"
    cuda = "cuda"


def parse_stems(value: str) -> list[str]:
    """``"vocals,accompaniment"`` → the list, validated against the model's sources."""
    stems = [s.strip() for s in value.split(",") if s.strip()]
    unknown = [s for s in stems if s not in SOURCES]
    if not stems or unknown:
        raise typer.BadParameter(f"choose from {', '.join(SOURCES)} (got {value!r})")
    return list(dict.fromkeys(stems))


def separate_command(
    inputs: Annotated[
        list[str], typer.Argument(help="audio files, folders (searched recursively) or globs")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="output folder")],
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="registered model NAME[:VERSION] (default: vocalmine)"),
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="output format")] = Format.wav,
    stems: Annotated[
        str, typer.Option("--stems", help="comma-separated stems to write")
    ] = "vocals,accompaniment",
    device: Annotated[Device, typer.Option("--device", help="run the model on")] = Device.cpu,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace existing stems")] = False,
    binarize: Annotated[
        float | None,
        typer.Option("--binarize", metavar="ALPHA", help="mask binarisation slope (thesis: 10)"),
    ] = None,
    wiener: Annotated[
        int, typer.Option("--wiener", metavar="N", help="multichannel Wiener EM iterations")
    ] = 0,
    gate: Annotated[bool, typer.Option("--gate", help="silence vocal-free stretches")] = False,
    gate_threshold: Annotated[
        float, typer.Option("--gate-threshold", help="b: energy ratio to the maximum")
    ] = 0.2,
    gate_min_silence: Annotated[
        float, typer.Option("--gate-min-silence", help="a: shortest silence, seconds")
    ] = 1.0,
    patch_overlap: Annotated[
        float, typer.Option("--patch-overlap", min=0.0, max=0.9, help="share of a model patch")
    ] = 0.0,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, help="blocks separated at once (default: one per core)"),
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="settings file")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="data folder")] = None,
) -> None:
    """Separate songs into vocals and accompaniment: OUTPUT/<song>/<stem>.<format>.

    Stems keep the input's rate, channels, exact length and full bandwidth, and sum to it.
    """
    wanted = parse_stems(stems)
    try:
        settings = get_settings(config, data_dir=data_dir)
        loaded, record = load_registered_model(model, settings.model_root, settings.catalog_url)
    except (LookupError, ValueError, OSError) as exc:
        console.print(f"[red]error:[/red] {escape(' '.join(str(exc).split()))}")
        raise typer.Exit(2) from exc
    post = PostProcessing(
        binarize_alpha=binarize,
        wiener_iterations=wiener,
        gate=GateSettings(gate_threshold, gate_min_silence) if gate else None,
    )
    try:
        separator = Separator(
            loaded,
            device=device.value,
            post=post,
            chunks=ChunkSettings(patch_overlap=patch_overlap),
            workers=workers,
        )
    except (RuntimeError, AssertionError) as exc:
        message = f"--device {device.value}: {' '.join(str(exc).split())}"
        console.print(f"[red]error:[/red] {escape(message)}")
        raise typer.Exit(2) from exc
    console.print(
        f"model {record.get('name')} v{record.get('version')} "
        f"({loaded.kind}, {loaded.preset.name}), post-processing: {post.label}"
    )
    files, errors = expand_inputs(inputs)
    for message in errors:
        console.print(f"[red]error:[/red] {escape(message)}")
    failed = len(errors) + run_batch(separator, files, output, wanted, fmt.value, overwrite)
    if failed:
        raise typer.Exit(1)


def run_batch(
    separator: Separator,
    files: list[Path],
    output: Path,
    stems: list[str],
    fmt: str,
    overwrite: bool,
) -> int:
    """Separate ``files`` one after the other; returns how many failed."""
    failed = 0
    used: dict[Path, Path] = {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        overall = bar.add_task("files", total=len(files))
        for path in files:
            target = output_dir_for(path, output)
            if target in used:
                message = f"{path}: output folder {target} is already used by {used[target]}"
                console.print(f"[red]error:[/red] {escape(message)}; rename one of them")
                failed += 1
                bar.advance(overall)
                continue
            used[target] = path
            try:
                duration = probe(path).duration_s
            except AudioError:
                duration = None
            task = bar.add_task(path.name, total=duration)
            try:
                written = separator.separate_file(
                    path,
                    target,
                    stems=stems,
                    fmt=fmt,
                    overwrite=overwrite,
                    progress=lambda seconds, task=task: bar.advance(task, seconds),
                )
                bar.update(task, completed=duration or 0, total=duration)
                console.print(escape(f"{path} → {', '.join(str(p) for p in written.values())}"))
            except OutputExistsError as exc:
                console.print(f"[yellow]skip:[/yellow] {escape(str(exc))}")
            except (AudioError, ValueError, RuntimeError, OSError) as exc:
                console.print(f"[red]error:[/red] {escape(_one_line(exc, path))}")
                failed += 1
            finally:
                bar.remove_task(task)
                bar.advance(overall)
    return failed


def _one_line(exc: Exception, path: Path) -> str:
    text = " ".join(str(exc).split())
    return text if text.startswith(str(path)) else f"{path}: {text}"
