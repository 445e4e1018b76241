"""Prefect's temporary API server, started while the command is still importing.

With no ``PREFECT_API_URL`` configured, a flow runs against a temporary local server that
Prefect starts when the flow begins: a subprocess that imports the server app and opens its
database, 3–7 s during which the command only waits. The command's own imports take about as
long (``vocalmine mine`` imports Prefect, Dask, scipy and pyarrow: about 4 s), so
:func:`start_early` spawns the server before them and the two overlap. The server object is
Prefect's own (``SubprocessASGIServer`` is one instance per process), so the flow engine finds
it running and uses it; it stops when the command exits, as Prefect's own would.

Hand-written because Prefect starts the server only on the first API call, after every import.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

#: Verbs whose command runs a Prefect flow in this process.
FLOW_VERBS = frozenset({"mine", "train", "evaluate", "retrain"})

log = logging.getLogger(__name__)


def temporary_server_url() -> str:
    """The API URL of this process's temporary Prefect server, started (and answering) first.

    Prefect's own server object, so the flow engine uses the same one. Its module is imported
    here, not at the top: mining workers import ``flows.mine`` for its tasks and have no use for
    it (over a second of imports each).
    """
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start()
    return server.api_url


def _start() -> None:
    try:
        temporary_server_url()
    except Exception as exc:  # the flow engine starts it again and reports the failure itself
        log.debug("early start of the temporary Prefect server failed: %s", exc)


def start_early() -> Callable[[], None]:
    """Start the temporary server in a background thread unless an API URL is configured.

    Returns a function that waits until the server answers; call it before the flow runs (the
    engine would otherwise find the server marked running before it accepts requests).
    """
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return lambda: None
    thread = threading.Thread(target=_start, name="prefect-server-start", daemon=True)
    thread.start()
    return thread.join
