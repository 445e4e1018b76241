"""Prefect's temporary API server: started early, at most once, and never left running.

With no ``PREFECT_API_URL`` configured, a flow runs against a temporary local server that
Prefect starts when the flow begins: a subprocess that imports the server app and opens its
database, 3–7 s during which the command only waits. The command's own imports take about as
long (``vocalmine mine`` imports Prefect, Dask, scipy and pyarrow: about 4 s), so
:func:`start_early` spawns the server before them and the two overlap. The server object is
Prefect's own singleton (``SubprocessASGIServer()`` returns one instance per process), so the
flow engine finds it running and uses it.

Hand-written because Prefect starts the server only on the first API call, after every import,
and because its start can leave processes behind:

* Its wait counts its sleeps against ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS``,
  20 s by default, which a loaded machine overruns. Here the default is
  :data:`STARTUP_TIMEOUT`; a value the user set (environment, profile, ``prefect.toml``) wins.
* A timed-out start raises but leaves the subprocess running, and the next start of the same
  object spawns a second one on the same port and forgets the first, which then outlives the
  command. Here a failed start stops what it spawned and raises :class:`ServerStartError`, one
  line for the user; the CLI exits on it before a flow could start another server.
* The server is stopped by an ``atexit`` hook, which SIGTERM (by default) and SIGKILL skip.
  :func:`exit_on_signals` makes SIGTERM a ``SystemExit``, as Ctrl-C is a ``KeyboardInterrupt``,
  so the hook runs, after the flow has unwound. For the exits no handler sees, the server runs
  under a small watchdog (:data:`_WATCHDOG`) whose stdin is a pipe from the command: the kernel
  closes the command's end however the command ends, and at end of file the watchdog stops the
  server. (``PR_SET_PDEATHSIG`` would not do: it follows the thread that spawned the server,
  and the early start's thread ends first.) Watchdog and server get their own session, so
  Ctrl-C on the terminal reaches only the command, which stops the server last.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import types
from collections.abc import Callable
from functools import cache
from typing import Any

#: Verbs whose command runs a Prefect flow in this process.
FLOW_VERBS = frozenset({"mine", "train", "evaluate", "retrain"})

#: Seconds the server may take to answer when the user has not set
#: ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` (Prefect's own default is 20).
STARTUP_TIMEOUT = 120

#: Runs the server command given as its arguments; stops the server (SIGTERM, SIGKILL 5 s
#: later) on SIGTERM or when its stdin, the command's pipe, ends; exits with the server's code.
_WATCHDOG = """\
import os, signal, subprocess, sys, threading
server = subprocess.Popen(sys.argv[1:])
def stop(*_):
    server.terminate()
    timer = threading.Timer(5, server.kill)
    timer.daemon = True
    timer.start()
signal.signal(signal.SIGTERM, stop)
threading.Thread(target=lambda: (os.read(0, 1), stop()), daemon=True).start()
sys.exit(server.wait())
"""


class ServerStartError(RuntimeError):
    """The temporary server did not start; the message is one line for the user."""


def _spawn_watched(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", _WATCHDOG, *args],
        stdin=subprocess.PIPE,
        start_new_session=True,
        **kwargs,
    )


@cache
def _server_class() -> type:
    """Prefect's ``SubprocessASGIServer`` with its subprocess run under :data:`_WATCHDOG`.

    Its command and environment stay Prefect's: ``_run_uvicorn_command`` runs with ``subprocess``
    in its globals standing for a namespace whose ``Popen`` is :func:`_spawn_watched`.
    """
    from prefect.server.api import server as prefect_server

    base = prefect_server.SubprocessASGIServer
    run_watched = types.FunctionType(
        base._run_uvicorn_command.__code__,
        {**vars(prefect_server), "subprocess": types.SimpleNamespace(Popen=_spawn_watched)},
    )

    class WatchedServer(base):  # type: ignore[misc, valid-type]
        _run_uvicorn_command = run_watched

        def stop(self) -> None:
            watchdog = self.server_process
            super().stop()  # SIGTERM to the watchdog, which stops the server; SIGKILL after 5 s
            if watchdog is not None:
                watchdog.stdin.close()
                # whatever is left in the session, the server included
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(watchdog.pid, signal.SIGKILL)

    return WatchedServer


def startup_timeout(settings: Any = None) -> int:
    """``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` if set, else :data:`STARTUP_TIMEOUT`.

    ``settings``: Prefect's settings object (default: the current ones).
    """
    from prefect.settings import get_current_settings

    ephemeral = (settings or get_current_settings()).server.ephemeral
    if "startup_timeout_seconds" in ephemeral.model_fields_set:
        return ephemeral.startup_timeout_seconds
    return STARTUP_TIMEOUT


def temporary_server_url() -> str:
    """The API URL of this process's temporary Prefect server, started (and answering) first.

    Prefect's own server object, so the flow engine uses the same one. Its module is imported
    here, not at the top: mining workers import ``flows.mine`` for its tasks and have no use for
    it (over a second of imports each). A failed start leaves no process and raises
    :class:`ServerStartError`.
    """
    server = _server_class()()
    timeout = startup_timeout()
    try:
        server.start(timeout=timeout)
    except Exception as exc:
        process = server.server_process
        code = process.poll() if process is not None else None
        server.stop()
        if code is not None:
            message = f"the temporary Prefect server exited with code {code} while starting"
        elif str(exc).startswith("Timed out"):
            message = f"the temporary Prefect server did not answer within {timeout} s"
        else:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            message = f"the temporary Prefect server did not start: {reason}"
        raise ServerStartError(
            f"{message} (set PREFECT_API_URL to use a running server, or "
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS)"
        ) from exc
    return server.api_url


def start_early() -> Callable[[], None]:
    """Start the temporary server in a background thread unless an API URL is configured.

    Returns a function that waits until the server answers, or raises the thread's
    :class:`ServerStartError`; call it before the flow runs (the engine would otherwise find the
    server marked running before it accepts requests, or start a second one after a failure).
    """
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return lambda: None
    failures: list[Exception] = []

    def start() -> None:
        try:
            temporary_server_url()
        except Exception as exc:  # raised by wait() in the main thread
            failures.append(exc)

    thread = threading.Thread(target=start, name="prefect-server-start", daemon=True)
    thread.start()

    def wait() -> None:
        thread.join()
        if failures:
            raise failures[0]

    return wait


#: The stop signals this command received, in order (recorded by the handlers below).
_received: list[int] = []


def _interrupt(signum: int, frame: types.FrameType | None) -> None:
    _received.append(signum)
    raise KeyboardInterrupt


def _terminate(signum: int, frame: types.FrameType | None) -> None:
    _received.append(signum)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second one ends the command at once
    raise SystemExit(128 + signum)


def exit_on_signals() -> None:
    """SIGTERM ends the command as ``SystemExit(143)``, the way Ctrl-C's ``KeyboardInterrupt``
    ends it with 130; both are recorded for :func:`received_signal`.

    The stack unwinds (a running flow reports its crash, Dask clusters close) and ``atexit``
    hooks run, the server's last; a second SIGTERM ends the command at once, and the watchdog
    stops the server. Prefect's flow engine handles SIGTERM itself while a flow runs, then sends
    it again to this handler. Call it from the main thread.
    """
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _terminate)


def received_signal() -> int | None:
    """The first stop signal this command received, or None."""
    return _received[0] if _received else None
