"""The ``vocalmine`` command line: one verb per job, each with --help and sensible defaults."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from vocalmine.core.settings import Settings, get_settings
from vocalmine.flows.api_server import FLOW_VERBS, ServerStartError, exit_on_sigterm, start_early

app = typer.Typer(
    help="Mine (original, instrumental) pairs from a music library, train a U-Net, separate songs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Show the effective configuration.", no_args_is_help=True)
library_app = typer.Typer(
    help="Build realistic test libraries with ground truth.", no_args_is_help=True
)
app.add_typer(config_app, name="config")
app.add_typer(library_app, name="library")

console = Console(stderr=True)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML/YAML settings file (VOCALMINE_CONFIG)")
]
DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="catalog, shards and models (VOCALMINE_DATA_DIR)")
]
CatalogOption = Annotated[
    str | None, typer.Option("--catalog-url", help="SQLAlchemy URL (VOCALMINE_CATALOG_URL)")
]


def load_settings(config: Path | None = None, **overrides: object) -> Settings:
    """Settings for a command; a bad config file is a one-line error, not a traceback."""
    try:
        return get_settings(config, **overrides)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {' '.join(str(exc).split())}")
        raise typer.Exit(2) from exc


def progress_bar() -> Progress:
    """The progress bar every long verb shows."""
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


@config_app.command("show")
def config_show(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Print the effective settings (defaults < file < VOCALMINE_* env < options)."""
    settings = load_settings(config, data_dir=data_dir)
    values = settings.public_dict()
    if as_json:
        typer.echo(json.dumps(values, indent=2))
        return
    table = Table("setting", "value", title="vocalmine settings")
    for key, value in values.items():
        table.add_row(key, str(value))
    Console().print(table)


@app.command("scan")
def scan_command(
    library: Annotated[Path, typer.Argument(help="library folder to scan")],
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    catalog_url: CatalogOption = None,
    workers: Annotated[int, typer.Option(help="files read in parallel")] = 4,
) -> None:
    """Scan LIBRARY into the catalog: tags, headers, content hashes; incremental."""
    from vocalmine.mining.scan import scan_library
    from vocalmine.storage.catalog import open_catalog

    settings = load_settings(config, data_dir=data_dir, catalog_url=catalog_url)
    if not library.is_dir():
        console.print(f"[red]error:[/red] {library}: library folder does not exist")
        raise typer.Exit(2)
    catalog = open_catalog(settings.catalog_url)
    with progress_bar() as bar:
        task = bar.add_task("scanning", total=None)

        def report(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = scan_library(
            library, catalog, hash_bytes=settings.hash_bytes, workers=workers, progress=report
        )
    print_counts("scan", result.as_dict())


def print_counts(title: str, counts: dict[str, object]) -> None:
    """A two-column table of counts, nested dicts flattened as ``key.sub``."""
    table = Table("what", "count", title=title)
    for key, value in counts.items():
        if isinstance(value, dict):
            for sub, count in sorted(value.items()):
                table.add_row(f"{key}: {sub}", str(count))
        else:
            table.add_row(key, str(value))
    Console().print(table)


#: Verbs that live with their flows: name → (module, function). Importing all of them costs
#: seconds (torch, museval, matplotlib, the Prefect server), so :func:`main` imports only the
#: verb it runs, and every verb only for help or an unknown word. ``library`` is ``library build``.
VERBS: dict[str, tuple[str, str]] = {
    "mine": ("vocalmine.flows.mine", "mine_command"),
    "pairs": ("vocalmine.flows.mine", "pairs_command"),
    "train": ("vocalmine.flows.train", "train_command"),
    "separate": ("vocalmine.flows.separate", "separate_command"),
    "evaluate": ("vocalmine.flows.evaluate", "evaluate_command"),
    "retrain": ("vocalmine.flows.retrain", "retrain_command"),
    "dashboard": ("vocalmine.flows.dashboard", "dashboard_command"),
    "serve": ("vocalmine.flows.deployments", "serve_command"),
    "library": ("vocalmine.flows.library", "library_build_command"),
}
_registered: set[str] = set()


def register(names: Iterable[str] | None = None) -> typer.Typer:
    """Attach the verbs ``names`` (default: all of :data:`VERBS`) to :data:`app`; returns it."""
    for name in VERBS if names is None else names:
        if name in _registered:
            continue
        module, function = VERBS[name]
        command = getattr(importlib.import_module(module), function)
        if name == "library":
            library_app.command("build")(command)
        else:
            app.command(name)(command)
        _registered.add(name)
    return app


def main() -> None:
    """Console-script entry point: registers the verb being run (or all of them), then runs.

    A verb that runs a flow gets Prefect's temporary server started before its imports
    (:mod:`flows.api_server`); if it does not start, that is one line and exit code 1. SIGTERM
    and SIGINT end any verb with exit code 143 or 130 after its cleanup, the server stopped last.
    """
    exit_on_sigterm()
    try:
        words = [arg for arg in sys.argv[1:] if not arg.startswith("-")]
        verb = words[0] if words else None
        own = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
        server_ready = (
            start_early() if verb in FLOW_VERBS and "--help" not in sys.argv else lambda: None
        )
        if verb in VERBS:
            register([verb])
        elif verb not in own:
            register()
        try:
            server_ready()
        except ServerStartError as exc:
            print(f"vocalmine: {exc}", file=sys.stderr)
            raise SystemExit(1) from None
        app()
    except KeyboardInterrupt:  # before the verb runs (typer turns one inside it into exit 130)
        raise SystemExit(130) from None
