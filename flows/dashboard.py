"""The ops dashboard: a local Prefect server with its UI, and the flows pointed at it.

``vocalmine dashboard`` runs ``prefect server start`` as a child process (SQLite in PREFECT_HOME
by default, PostgreSQL with ``--database-url``), waits until its API answers, and stores
``PREFECT_API_URL`` in the active Prefect profile so every ``vocalmine`` flow started from any
shell reports its runs and artifacts there. On exit (Ctrl-C) the server stops and the profile gets
its previous value back, so flows fall back to Prefect's embedded ephemeral API instead of failing
against a server that is gone. Tests and benchmarks use :func:`running_server` for the same thing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import httpx
from prefect.settings import PREFECT_API_URL, load_current_profile, update_current_profile

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4200


def api_url(host: str, port: int) -> str:
    """The API URL clients on this machine use for a server bound to ``host:port``."""
    reachable = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{reachable}:{port}/api"


def server_environment(host: str, port: int, database_url: str | None = None) -> dict[str, str]:
    """The server's environment: ours, analytics off, the chosen database, and the API URL the
    UI's browser code calls (``PREFECT_UI_API_URL``, kept when already set, e.g. behind a proxy).
    """
    env = dict(os.environ)
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env.pop("PREFECT_API_URL", None)
    env.setdefault("PREFECT_UI_API_URL", api_url(host, port))
    if database_url:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
    return env


def start_server(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    database_url: str | None = None,
    log: TextIO | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``prefect server start`` in its own process group; it writes to ``log``."""
    command = [
        sys.executable,
        "-m",
        "prefect",
        "server",
        "start",
        "--host",
        host,
        "--port",
        str(port),
    ]
    return subprocess.Popen(
        command,
        env=server_environment(host, port, database_url),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT if log is not None else None,
        start_new_session=True,
    )


def wait_until_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 180) -> None:
    """Block until ``url``/health answers; raise if the server exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: Prefect server exited with code {process.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url}: Prefect server not ready after {timeout:.0f} s")


def stop_server(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Stop the server and everything it started (SIGTERM, then SIGKILL)."""
    if process.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def running_server(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    database_url: str | None = None,
    log_path: Path | None = None,
    timeout: float = 180,
) -> Iterator[str]:
    """A Prefect server for the duration of the block; yields its API URL."""
    with open(log_path or os.devnull, "w") as log:
        process = start_server(host, port, database_url=database_url, log=log)
        try:
            url = api_url(host, port)
            wait_until_ready(url, process, timeout)
            yield url
        finally:
            stop_server(process)


@contextmanager
def flows_pointed_at(url: str) -> Iterator[None]:
    """Store ``PREFECT_API_URL=url`` in the active profile; restore the old value on exit."""
    previous = load_current_profile().settings.get(PREFECT_API_URL)
    update_current_profile({PREFECT_API_URL: url})
    try:
        yield
    finally:
        update_current_profile({PREFECT_API_URL: previous})
