"""The ``vocalmine`` typer app: every verb from its module, ``--version``, ``--verbose``, main().

Registering every verb is cheap (each module imports torch, Prefect, Dask, pyarrow, pandas and
the flows inside its command function), so ``vocalmine --help`` and ``vocalmine VERB --help``
answer without them. Help is click's plain layout (:class:`common.VerbCommand`): flags show no
``<bool>`` type and lines wrap at the terminal's width.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable
from typing import Annotated

import typer

from vocalmine.cli.common import VerbCommand, configure_prefect_output
from vocalmine.cli.config import config_app, config_show
from vocalmine.cli.dashboard import dashboard_command
from vocalmine.cli.evaluate import evaluate_command
from vocalmine.cli.library import library_app, library_build_command
from vocalmine.cli.mine import mine_command, pairs_command
from vocalmine.cli.retrain import retrain_command
from vocalmine.cli.scan import scan_command
from vocalmine.cli.separate import separate_command
from vocalmine.cli.serve import serve_command
from vocalmine.cli.train import train_command
from vocalmine.flows.api_server import FLOW_VERBS, ServerStartError, exit_on_sigterm, start_early

app = typer.Typer(
    help="Mine (original, instrumental) pairs from a music library, train a U-Net, separate songs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(config_app, name="config")
app.add_typer(library_app, name="library")

#: Verb → its command function; ``library`` is ``library build``, ``config`` ``config show``.
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
}
GROUPS = {"library": (library_app, "build"), "config": (config_app, "show")}
#: What a flow verb imports before its flow runs: imported while Prefect's temporary server
#: starts (flows.api_server.start_early), so the two waits overlap.
FLOW_MODULES = {
    "mine": "vocalmine.flows.mine",
    "train": "vocalmine.flows.train",
    "evaluate": "vocalmine.flows.evaluate",
    "retrain": "vocalmine.flows.retrain",
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


def main() -> None:
    """Console-script entry point.

    ``--verbose`` anywhere on the line shows Prefect's INFO logs; without it Prefect is quiet
    (:func:`common.configure_prefect_output`, set before anything imports Prefect). A verb that
    runs a flow gets Prefect's temporary server started before its flow module's imports
    (:mod:`flows.api_server`); if it does not start, that is one line and exit code 1. SIGTERM
    and SIGINT end any verb with exit code 143 or 130 after its cleanup, the server stopped last.
    """
    argv = sys.argv[1:]
    end = argv.index("--") if "--" in argv else len(argv)
    verbose = "--verbose" in argv[:end]
    if verbose:  # the global option, given after the verb: move it before
        argv.remove("--verbose")
        sys.argv[1:] = ["--verbose", *argv]
    configure_prefect_output(verbose)
    exit_on_sigterm()
    try:
        words = [arg for arg in argv[:end] if not arg.startswith("-")]
        verb = words[0] if words else None
        asks_help = {"--help", "--version"} & set(argv[:end])
        if verb in FLOW_VERBS and not asks_help:
            server_ready = start_early()
            importlib.import_module(FLOW_MODULES[verb])
            try:
                server_ready()
            except ServerStartError as exc:
                print(f"vocalmine: {exc}", file=sys.stderr)
                raise SystemExit(1) from None
        app()
    except KeyboardInterrupt:  # before the verb runs (typer turns one inside it into exit 130)
        raise SystemExit(130) from None
