"""Prefect's temporary server starts before a flow verb's imports, and the flow then uses it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | env
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout


def test_the_flow_runs_against_the_server_started_early() -> None:
    out = _run(
        "import httpx\n"
        "from vocalmine.flows.api_server import start_early\n"
        "wait = start_early()\n"
        "from prefect import flow\n"
        "from prefect.client.orchestration import get_client\n"
        "from prefect.server.api.server import SubprocessASGIServer\n"
        "wait()\n"
        "server = SubprocessASGIServer()\n"
        "print('HEALTH', httpx.get(server.api_url + '/health').status_code)\n"
        "@flow\n"
        "def probe() -> str:\n"
        "    return str(get_client(sync_client=True).api_url)\n"
        "print('SAME', probe().rstrip('/') == server.api_url.rstrip('/'))\n"
    )
    assert "HEALTH 200" in out
    assert "SAME True" in out


def test_a_configured_api_url_starts_no_server() -> None:
    out = _run(
        "import sys\n"
        "from vocalmine.flows.api_server import start_early\n"
        "start_early()()\n"
        "print('SERVER', 'prefect.server.api.server' in sys.modules)\n",
        PREFECT_API_URL="http://127.0.0.1:9/api",
    )
    assert "SERVER False" in out


def test_mining_workers_do_not_import_the_server() -> None:
    """Workers import ``flows.mine`` for its tasks; the server module would cost each a second."""
    out = _run(
        "import sys, flows.mine\nprint('SERVER', 'prefect.server.api.server' in sys.modules)"
    )
    assert "SERVER False" in out
