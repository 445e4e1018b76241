"""``vocalmine dashboard``: the Prefect server and UI, with the flows pointed at it."""

from __future__ import annotations

import signal
from contextlib import nullcontext
from typing import Annotated

import typer

from vocalmine.cli.common import console, fail


def dashboard_command(
    host: Annotated[
        str | None,
        typer.Option(help="address the UI listens on (default: this machine only)"),
    ] = None,
    port: Annotated[int | None, typer.Option(help="UI and API port (default: Prefect's)")] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            help="Prefect's database, e.g. postgresql+asyncpg://user:pw@host/prefect "
            "(default: SQLite in PREFECT_HOME)",
        ),
    ] = None,
    point_flows: Annotated[
        bool,
        typer.Option(
            "--point-flows/--no-point-flows",
            help="store PREFECT_API_URL in the Prefect profile while it runs",
        ),
    ] = True,
) -> None:
    """Start the Prefect server and UI (the ops dashboard) and point the flows at it."""
    import httpx

    from vocalmine.flows import dashboard

    host = host or dashboard.DEFAULT_HOST
    port = port or dashboard.DEFAULT_PORT
    url = dashboard.api_url(host, port)
    try:
        httpx.get(f"{url}/health", timeout=2)
    except httpx.HTTPError:
        pass
    else:
        fail(f"{host}:{port}: something already listens there")
    console.print(f"starting the Prefect server on {host}:{port} ...", highlight=False)
    signal.signal(signal.SIGTERM, _interrupt)
    process = dashboard.start_server(host, port, database_url=database_url)
    try:
        dashboard.wait_until_ready(url, process)
        ui = url.removesuffix("/api")
        pointed = dashboard.flows_pointed_at(url) if point_flows else nullcontext()
        with pointed:
            console.print(f"dashboard: [bold]{ui}[/bold]   API: {url}", highlight=False)
            if point_flows:
                console.print("flows started from any shell now report here; Ctrl-C stops it")
            else:
                console.print(f"point flows here with: export PREFECT_API_URL={url}")
            process.wait()
    except KeyboardInterrupt:
        console.print("stopping the dashboard")
    except RuntimeError as exc:
        fail(exc, 1)
    finally:
        dashboard.stop_server(process)


def _interrupt(signum: int, _frame: object) -> None:
    """SIGTERM (``docker stop``, a service manager) stops the dashboard like Ctrl-C does."""
    raise KeyboardInterrupt(signal.Signals(signum).name)
