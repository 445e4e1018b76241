"""What every verb shares: the stderr console, the one error exit, settings, options, tables.

Cheap to import (typer, rich's console): every verb module imports its heavy needs (torch,
Prefect, pyarrow, pandas, Dask, the flows) inside its command function, so ``vocalmine --help``
registers every verb without them.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import click
import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand

if TYPE_CHECKING:
    from rich.progress import Progress

    from vocalmine.core.settings import Settings

#: Messages, progress and errors go to stderr; results (tables, JSON) to stdout.
console = Console(stderr=True, soft_wrap=True)

SETTINGS_PANEL = "Settings"

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="TOML/YAML settings file (VOCALMINE_CONFIG)",
        rich_help_panel="Settings",
    ),
]
DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="catalog, shards, models (VOCALMINE_DATA_DIR)",
        rich_help_panel="Settings",
    ),
]
CatalogOption = Annotated[
    str | None,
    typer.Option(
        "--catalog-url", help="SQLAlchemy URL (VOCALMINE_CATALOG_URL)", rich_help_panel="Settings"
    ),
]


def one_line(text: object) -> str:
    """``text`` with every run of whitespace (newlines included) as one space."""
    return " ".join(str(text).split())


def error(message: object) -> None:
    """Print ``error: MESSAGE`` as one line on stderr (a batch goes on after it)."""
    console.print(f"[red]error:[/red] {escape(one_line(message))}")


def fail(message: object, code: int = 2) -> NoReturn:
    """Print ``error: MESSAGE`` as one line on stderr and end the command with exit ``code``."""
    error(message)
    raise typer.Exit(code)


def load_settings(config: Path | None = None, **overrides: object) -> Settings:
    """Settings for a command; a bad config file or value is a one-line error, not a traceback,
    and a ``VOCALMINE_*`` variable that is no setting a one-line warning."""
    from vocalmine.core.settings import env_warnings, get_settings

    for line in env_warnings():
        console.print(f"[yellow]warning:[/yellow] {escape(line)}")
    try:
        return get_settings(config, **overrides)
    except ValueError as exc:  # a SettingsError names the file or variable and the key
        fail(exc)


def check_catalog(url: str) -> None:
    """Open (creating or upgrading) the catalog at ``url`` once, before any work starts; a
    malformed URL or an unreachable database is one line."""
    from vocalmine.storage.catalog import CatalogError, open_catalog

    try:
        open_catalog(url).dispose()
    except CatalogError as exc:
        fail(exc)


def start_flow_server(module: str) -> None:
    """Start Prefect's temporary server (unless ``PREFECT_API_URL`` names one) while the flow
    ``module`` is imported, and wait for it; a failed start is one line and exit code 1."""
    import importlib
    import sys

    from vocalmine.flows.api_server import ServerStartError, start_early

    server_ready = start_early()
    importlib.import_module(module)
    try:
        server_ready()
    except ServerStartError as exc:
        print(f"vocalmine: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


def require_shards(
    settings: Settings, shards: str | None = None, dataset: str | None = None
) -> None:
    """Fail in one line, before any flow runs, when the shard dataset a verb trains on is missing:
    ``shards`` (a dataset folder, or a root with ``dataset``) or the configured root and dataset."""
    from vocalmine.storage.shard_schema import ShardError, read_manifest, resolve_dataset

    try:
        if shards:
            read_manifest(*resolve_dataset(shards, dataset))
        else:
            read_manifest(settings.shard_root, dataset or settings.dataset)
    except (ShardError, OSError) as exc:
        fail(exc)


def defaults(config: type) -> dict[str, Any]:
    """The declared defaults of a dataclass's fields (factories called), by name."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(config):
        if field.default is not dataclasses.MISSING:
            values[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            values[field.name] = field.default_factory()
    return values


def progress_bar() -> Progress:
    """The progress bar every long verb shows (on stderr)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def print_counts(title: str, counts: dict[str, object]) -> None:
    """A two-column table of counts on stdout, nested dicts flattened as ``key: sub``."""
    from rich.table import Table

    table = Table("what", "count", title=title)
    for key, value in counts.items():
        if isinstance(value, dict):
            for sub, count in sorted(value.items()):
                table.add_row(f"{key}: {sub}", str(count))
        else:
            table.add_row(key, str(value))
    Console().print(table)


class VerbCommand(TyperCommand):
    """Click's plain help (no ``<bool>`` type after flags, wraps at the terminal's width) with
    the options grouped under the headings their ``rich_help_panel`` names."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        arguments: list[tuple[str, str]] = []
        sections: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                arguments.append(record)
            else:
                panel = getattr(param, "rich_help_panel", None) or "Options"
                sections.setdefault(panel, []).append(record)
        if arguments:
            with formatter.section("Arguments"):
                formatter.write_dl(arguments)
        # "Options" first, "Settings" (config file, data folder, catalog) last
        order = sorted(sections, key=lambda t: (t != "Options", t == SETTINGS_PANEL))
        for title in order:
            with formatter.section(title):
                formatter.write_dl(sections[title])


# --- Prefect's own output --------------------------------------------------------------------

#: Prefect settings for a quiet command line. Set in the environment before Prefect is imported
#: (Prefect reads them at import, and the temporary server and Dask workers inherit them); a
#: value already in the environment wins.
QUIET_PREFECT = {
    # client-side SDK analytics (prefect/_internal/analytics: DO_NOT_TRACK) and the temporary
    # server's telemetry heartbeat (prefect/server/services/telemetry.py): nothing offline tries
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # Prefect's loggers at WARNING: hides "Starting temporary server ... running a dedicated
    # Prefect server" (logger "prefect"), the Dask dashboard link that dies with the command
    # (prefect.task_runner.*), the engine's "Created flow run"; task-run state lines too
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL": "WARNING",
    # the flows' own progress lines ("pair 3/7: mined", the trainer's steps/s) stay
    "PREFECT_LOGGING_LOGGERS_PREFECT_FLOW_RUNS_LEVEL": "INFO",
}
VERBOSE_PREFECT = {
    **QUIET_PREFECT,
    "PREFECT_LOGGING_LEVEL": "INFO",
    "PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL": "INFO",
}


#: How Prefect's engine logs a flow stopped by Ctrl-C or SIGTERM (at ERROR); the command says
#: it in its own line (``interrupted by SIGINT; ...``), so this one is dropped unless verbose.
SIGNAL_CRASH = ("Crash detected! Execution was aborted by a", "signal.")


class PrefectChatter(logging.Filter):
    """Drops the INFO records that Prefect's own code logs on a run logger ("Beginning flow run",
    "View at http://…" of a server that stops with the command, "Finished in state
    Completed()"), and its "Crash detected!" line for a signal; what a flow logs or prints
    passes, as do other warnings and errors."""

    def __init__(self, package_dir: str) -> None:
        super().__init__()
        self.package_dir = package_dir

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.pathname.startswith(self.package_dir):
            return True
        if record.levelno < logging.WARNING:
            return False
        message = str(record.msg)
        return not (message.startswith(SIGNAL_CRASH[0]) and message.endswith(SIGNAL_CRASH[1]))


def configure_prefect_output(verbose: bool = False) -> None:
    """Quiet Prefect (:data:`QUIET_PREFECT`) unless ``verbose``; call before importing Prefect."""
    for key, value in (VERBOSE_PREFECT if verbose else QUIET_PREFECT).items():
        os.environ.setdefault(key, value)
    if verbose or os.environ["PREFECT_LOGGING_LOGGERS_PREFECT_FLOW_RUNS_LEVEL"] != "INFO":
        return
    spec = importlib.util.find_spec("prefect")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return
    chatter = PrefectChatter(os.path.join(list(spec.submodule_search_locations)[0], ""))
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logger = logging.getLogger(name)  # dictConfig keeps a logger's filters
        if not any(isinstance(f, PrefectChatter) for f in logger.filters):
            logger.addFilter(chatter)
