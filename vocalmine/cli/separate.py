"""``vocalmine separate``: songs in, vocals and accompaniment out (see separation/separate.py).

A thin command. Everything that can fail early is checked before anything is written or opened:
the output folder, every input (it exists and decodes: a file that does not is one line naming
it and the reason, and the batch goes on without it), the catalog (read, never created) and the
model (an unknown name lists the registered ones). Then the model is loaded once and each file
separated with a progress bar; the exit status is 1 when any file failed. Existing stems are
skipped unless ``--overwrite``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from vocalmine.cli.common import (
    ConfigOption,
    DataDirOption,
    console,
    defaults,
    error,
    fail,
    load_settings,
    one_line,
)
from vocalmine.separation.settings import ChunkSettings, GateSettings, PostProcessing

if TYPE_CHECKING:
    from vocalmine.separation.separate import Separator

POST = "Post-processing"
RUN = "Speed"
#: The defaults of separation's GateSettings, PostProcessing and ChunkSettings.
GATE = defaults(GateSettings)
POSTPROCESSING = defaults(PostProcessing)
CHUNKS = defaults(ChunkSettings)


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
    from vocalmine.separation.separate import SOURCES

    stems = [s.strip() for s in value.split(",") if s.strip()]
    unknown = [s for s in stems if s not in SOURCES]
    if not stems or unknown:
        raise typer.BadParameter(
            f"choose from {', '.join(SOURCES)} (got {value!r})", param_hint="--stems"
        )
    return list(dict.fromkeys(stems))


def separate_command(
    inputs: Annotated[
        list[str], typer.Argument(help="audio files, folders (searched recursively) or globs")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="output folder")],
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="registered NAME[:VERSION] (default: vocalmine)"),
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="output format")] = Format.wav,
    stems: Annotated[
        str, typer.Option("--stems", help="comma-separated stems to write")
    ] = "vocals,accompaniment",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace existing stems")] = False,
    binarize: Annotated[
        float | None,
        typer.Option(
            "--binarize",
            metavar="ALPHA",
            help="mask binarisation slope (thesis: 10)",
            rich_help_panel=POST,
        ),
    ] = POSTPROCESSING["binarize_alpha"],
    wiener: Annotated[
        int,
        typer.Option(
            "--wiener", metavar="N", help="multichannel Wiener EM iterations", rich_help_panel=POST
        ),
    ] = POSTPROCESSING["wiener_iterations"],
    gate: Annotated[
        bool, typer.Option("--gate", help="silence vocal-free stretches", rich_help_panel=POST)
    ] = False,
    gate_threshold: Annotated[
        float,
        typer.Option(
            "--gate-threshold", help="gate: energy ratio to the maximum", rich_help_panel=POST
        ),
    ] = GATE["threshold"],
    gate_min_silence: Annotated[
        float,
        typer.Option(
            "--gate-min-silence", help="gate: shortest silence, seconds", rich_help_panel=POST
        ),
    ] = GATE["min_silence_s"],
    device: Annotated[
        Device, typer.Option("--device", help="run the model on", rich_help_panel=RUN)
    ] = Device.cpu,
    patch_overlap: Annotated[
        float,
        typer.Option(
            "--patch-overlap", min=0.0, max=0.9, help="share of a model patch", rich_help_panel=RUN
        ),
    ] = CHUNKS["patch_overlap"],
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="blocks separated at once (default: one per core)",
            rich_help_panel=RUN,
        ),
    ] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Separate songs into vocals and accompaniment: OUTPUT/<song>/<stem>.<format>.

    Stems keep the input's rate, channels, exact length and full bandwidth, and sum to it.
    """
    settings = load_settings(config, data_dir=data_dir)
    check_output(output)
    wanted = parse_stems(stems)
    from vocalmine.separation.separate import expand_inputs

    files, errors = expand_inputs(inputs)
    for path in files:
        reason = undecodable(path)
        if reason is not None:
            errors.append(reason)
    files = [p for p in files if not any(m.startswith(f"{p}: ") for m in errors)]
    for message in errors:
        error(message)
    if not files:
        raise typer.Exit(1)
    loaded, record = load_model(model, settings.model_root, settings.catalog_url)

    post = PostProcessing(
        binarize_alpha=binarize,
        wiener_iterations=wiener,
        gate=GateSettings(threshold=gate_threshold, min_silence_s=gate_min_silence)
        if gate
        else None,
    )
    from vocalmine.separation.separate import Separator

    try:
        separator = Separator(
            loaded,
            device=device.value,
            post=post,
            chunks=ChunkSettings(patch_overlap=patch_overlap),
            workers=workers,
        )
    except (RuntimeError, AssertionError) as exc:
        fail(f"--device {device.value}: {exc}")
    console.print(
        f"model {record.get('name')} v{record.get('version')} "
        f"({loaded.kind}, {loaded.preset.name}), post-processing: {post.label}",
        highlight=False,
    )
    failed = len(errors) + run_batch(separator, files, output, wanted, fmt.value, overwrite)
    if failed:
        raise typer.Exit(1)


def check_output(output: Path) -> None:
    """Fail in one line, naming the path, when the output folder cannot be a folder."""
    for folder in (output, *output.parents):
        if folder.exists() or folder.is_symlink():
            if folder == output and not folder.is_dir():
                fail(f"{output}: output folder is a file")
            if not folder.is_dir():
                fail(f"{output}: output folder cannot be made: {folder} is a file")
            return


@contextmanager
def _quiet_c_stderr() -> Iterator[None]:
    """Mute file descriptor 2 for C decoders that print there (libsndfile's MP3 decoder says
    "Note: Illegal Audio-MPEG-Header" about a text file), so a bad file stays one line."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def undecodable(path: Path) -> str | None:
    """``"PATH: reason"`` when ``path`` cannot be opened for decoding, else None."""
    from vocalmine.core.audio import AudioError
    from vocalmine.separation.streams import AudioStream

    try:
        with _quiet_c_stderr(), AudioStream(path):
            return None
    except AudioError as exc:
        return str(exc)
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"


NO_MODEL_HINT = (
    "run `vocalmine models import spleeter-2stems` for the pretrained model, "
    "or train one with `vocalmine train`"
)


def _named(spec: str | None) -> str:
    return f"--model {spec}: " if spec else ""


def load_model(spec: str | None, model_root: str, catalog_url: str) -> tuple:
    """The registered model ``spec`` and its record; one-line failures that never create a
    catalog, and an unknown name lists the registered models."""
    from vocalmine.cli.catalogs import (
        existing_catalog,
        model_names,
        registered_models,
        sqlite_file,
    )
    from vocalmine.storage.registry import ModelRegistry, parse_model_spec
    from vocalmine.training.registered import load_registered_model

    try:
        name, version = parse_model_spec(spec)
    except ValueError as exc:
        fail(exc)
    catalog = existing_catalog(catalog_url)
    if catalog is None:
        where = sqlite_file(catalog_url) or catalog_url
        fail(f"{_named(spec)}no model registered (no catalog at {where}); {NO_MODEL_HINT}")
    try:  # one catalog connection checks the name and loads the weights
        registry = ModelRegistry(model_root, catalog)
        known = registered_models(model_root, catalog)
        if not known:
            fail(f"{_named(spec)}no model registered in {model_root}; {NO_MODEL_HINT}")
        if spec is None:
            name = registry.default_name()
        if not any(r["name"] == name and version in (None, r["version"]) for r in known):
            which = f"{name} v{version}" if version is not None else name
            listed = model_names(known)
            fail(f"--model {spec or name}: no model {which} is registered; there are: {listed}")
        return load_registered_model(registry, spec)
    except (LookupError, ValueError, OSError) as exc:
        fail(exc)
    finally:
        catalog.dispose()


def run_batch(
    separator: Separator,
    files: list[Path],
    output: Path,
    stems: list[str],
    fmt: str,
    overwrite: bool,
) -> int:
    """Separate ``files`` one after the other; returns how many failed.

    Partial files live in one :class:`~vocalmine.core.atomic.RunFolder` under ``output``
    (removed however the run ends; a killed run's is removed by the next one).
    """
    import warnings

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    from vocalmine.core.atomic import RunFolder
    from vocalmine.core.audio import AudioError, probe
    from vocalmine.separation.separate import ClippingWarning, OutputExistsError, output_dir_for

    failed = 0
    used: dict[Path, Path] = {}
    try:
        run = RunFolder(output)
    except OSError as exc:
        fail(os_error_line(output, exc))
    with (
        run,
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
        ) as bar,
    ):
        overall = bar.add_task("files", total=len(files))
        for path in files:
            target = output_dir_for(path, output)
            if target in used:
                error(f"{path}: output folder {target} is already used by {used[target]}")
                failed += 1
                bar.advance(overall)
                continue
            used[target] = path
            try:
                duration = probe(path).duration_s
            except (AudioError, OSError):
                duration = None
            task = bar.add_task(path.name, total=duration)
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", ClippingWarning)
                    written = separator.separate_file(
                        path,
                        target,
                        stems=stems,
                        fmt=fmt,
                        overwrite=overwrite,
                        progress=lambda seconds, task=task: bar.advance(task, seconds),
                        work_dir=run.path,
                    )
                bar.update(task, completed=duration or 0, total=duration)
                console.print(
                    escape(f"{path} → {', '.join(str(p) for p in written.values())}"),
                    highlight=False,
                )
                for warning in caught:
                    if issubclass(warning.category, ClippingWarning):
                        text = escape(one_line(warning.message))
                        console.print(f"[yellow]warning:[/yellow] {text}")
            except OutputExistsError as exc:
                console.print(f"[yellow]skip:[/yellow] {escape(one_line(exc))}")
            except OSError as exc:
                error(_one_line(os_error_line(path, exc), path))
                failed += 1
            except (AudioError, ValueError, RuntimeError) as exc:
                error(_one_line(exc, path))
                failed += 1
            finally:
                bar.remove_task(task)
                bar.advance(overall)
    return failed


def os_error_line(path: Path, exc: OSError) -> str:
    """``FILE: cause`` in words: the file the system names (else ``path``) and its reason, with
    ENOSPC said as "disk full"."""
    import errno

    if exc.strerror is None:
        return one_line(exc)
    cause = "disk full (no space left on device)" if exc.errno == errno.ENOSPC else exc.strerror
    return f"{exc.filename or path}: {cause}"


def _one_line(exc: object, path: Path) -> str:
    text = one_line(exc)
    return text if text.startswith(str(path)) else f"{path}: {text}"
