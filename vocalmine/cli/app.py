"""The ``vocalmine`` typer app: every verb from its module, ``--version``, ``--verbose``, main().

Registering every verb is cheap (each module imports torch, Prefect, Dask, pyarrow, pandas and
the flows inside its command function), so ``vocalmine --help`` and ``vocalmine VERB --help``
answer without them. Help is click's plain layout (:class:`common.VerbCommand`): flags show no
``<bool>`` type and lines wrap at the terminal's width.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Annotated

import typer

from vocalmine.cli.common import (
    VerbCommand,
    configure_prefect_output,
    console,
    error,
    start_flow_server,
)
from vocalmine.cli.config import config_app, config_show
from vocalmine.cli.dashboard import dashboard_command
from vocalmine.cli.evaluate import evaluate_command
from vocalmine.cli.library import library_app, library_build_command
from vocalmine.cli.mine import mine_command, pairs_command
from vocalmine.cli.models import models_app, models_import_command, models_list_command
from vocalmine.cli.retrain import retrain_command
from vocalmine.cli.scan import scan_command
from vocalmine.cli.separate import separate_command
from vocalmine.cli.serve import serve_command
from vocalmine.cli.train import train_command
from vocalmine.core.errors import OneLineError
from vocalmine.flows.api_server import FLOW_VERBS, exit_on_signals, received_signal

app = typer.Typer(
    help="Mine (original, instrumental) pairs from a music library, train a U-Net, separate songs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(config_app, name="config")
app.add_typer(library_app, name="library")
app.add_typer(models_app, name="models")

#: Verb → its command function; ``library`` is ``library build``, ``config`` ``config show``,
#: and the ``models`` group has two.
VERBS: dict[str, Callable[..., None]] = {
    "scan": scan_command,
    "mine": mine_command,
    "pairs": pairs_command,
    "train": train_command,
    "separate": separate_command,
    "evaluate": evaluate_command,
    "retrain": retrain_command,
    "dashboard": dashboard_command,
    "serve": serve_command,
    "library": library_build_command,
    "config": config_show,
    "models import": models_import_command,
    "models list": models_list_command,
}
GROUPS = {
    "library": (library_app, "build"),
    "config": (config_app, "show"),
    "models import": (models_app, "import"),
    "models list": (models_app, "list"),
}
#: What a flow verb imports before its flow runs: imported while Prefect's temporary server
#: starts (flows.api_server.start_early), so the two waits overlap.
FLOW_MODULES = {
    "mine": "vocalmine.flows.mine",
    "train": "vocalmine.flows.train",
    "evaluate": "vocalmine.flows.evaluate",
    "retrain": "vocalmine.flows.retrain",
}
#: Flow verbs that start the server themselves, once their settings are read and checked (a
#: bad config file or an unreachable catalog is one line, and no server is started for it).
SETTINGS_FIRST = frozenset({"mine"})
#: What a re-run does after an interruption, per verb (the default: it resumes).
AFTER_INTERRUPT = {
    "scan": "files read so far are in the catalog; run it again to read the rest",
    "mine": "pairs already in the shard manifest are kept and nothing half-written is; "
    "run it again to resume",
    "separate": "finished songs are kept and no partial stem is; run it again to do the rest "
    "(finished songs are skipped)",
    "train": "the run folder keeps its last checkpoint; run it again to resume",
    "evaluate": "tracks already scored are kept in the results folder; run it again "
    "(same --out) to resume",
}
_registered: set[str] = set()


def register(names: Iterable[str] | None = None) -> typer.Typer:
    """Attach the verbs ``names`` (default: all of :data:`VERBS`) to :data:`app`; returns it."""
    for name in VERBS if names is None else names:
        if name in _registered:
            continue
        group, word = GROUPS.get(name, (app, name))
        group.command(word, cls=VerbCommand)(VERBS[name])
        _registered.add(name)
    return app


def _version(value: bool) -> None:
    if value:
        from vocalmine import __version__

        typer.echo(f"vocalmine {__version__}")
        raise typer.Exit()


@app.callback()
def options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            help="show Prefect's own INFO logs (server start, task runs); also after the verb",
        ),
    ] = False,
) -> None:
    """Mine (original, instrumental) pairs from a music library, train a U-Net, separate songs."""
    if verbose:
        configure_prefect_output(verbose=True)


register()


def interrupted_line(verb: str | None, signum: int) -> str:
    """The one line a command prints when a signal stopped it: what, and what a re-run does."""
    import signal

    name = signal.Signals(signum).name
    after = AFTER_INTERRUPT.get(verb or "", "run it again to resume")
    return f"vocalmine {verb or ''}: interrupted by {name}; {after}".replace("  ", " ")


def main() -> None:
    """Console-script entry point.

    ``--verbose`` anywhere on the line shows Prefect's INFO logs; without it Prefect is quiet
    (:func:`common.configure_prefect_output`, set before anything imports Prefect). A verb that
    runs a flow gets Prefect's temporary server started before its flow module's imports
    (:mod:`flows.api_server`; :data:`SETTINGS_FIRST` verbs start it themselves after reading
    their settings); if it does not start, that is one line and exit code 1. SIGTERM and SIGINT
    end any verb with exit code 143 or 130 after its cleanup, with one line saying what was
    interrupted; the server is stopped last.
    """
    argv = sys.argv[1:]
    end = argv.index("--") if "--" in argv else len(argv)
    verbose = "--verbose" in argv[:end]
    if verbose:  # the global option, given after the verb: move it before
        argv.remove("--verbose")
        sys.argv[1:] = ["--verbose", *argv]
    configure_prefect_output(verbose)
    exit_on_signals()
    words = [arg for arg in argv[:end] if not arg.startswith("-")]
    verb = words[0] if words else None
    try:
        asks_help = {"--help", "--version"} & set(argv[:end])
        if verb in FLOW_VERBS - SETTINGS_FIRST and not asks_help:
            start_flow_server(FLOW_MODULES[verb])
        app()
    except KeyboardInterrupt:  # before the verb runs (typer turns one inside it into exit 130)
        code: object = 130
    except SystemExit as exc:
        code = exc.code
        if code not in (130, 143) or received_signal() is None:
            raise
    except Exception as exc:  # one line; the traceback with --verbose
        if verbose:
            raise
        error(exc if isinstance(exc, OneLineError) else f"{type(exc).__name__}: {exc}")
        if not isinstance(exc, OneLineError):
            console.print("(run with --verbose for the traceback)")
        raise SystemExit(2 if isinstance(exc, OneLineError) else 1) from None
    signum = received_signal() or 2
    print(interrupted_line(verb, signum), file=sys.stderr, flush=True)
    raise SystemExit(code)
