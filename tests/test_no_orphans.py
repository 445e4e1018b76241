"""A flow verb leaves no process behind, its temporary Prefect server included, on any exit path.

Each command is the real ``vocalmine`` entry point (:func:`vocalmine.cli.main`) in a subprocess and
a session of its own, with a stand-in ``mine`` verb that reports the server's port and then
exits, raises or waits for a signal. Its descendants are recorded while it runs; once it has
exited, none may be alive and nothing may listen on the port. Starting a server takes seconds
of CPU, so the exit paths run side by side in one test.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import psutil
import pytest

from vocalmine.flows.api_server import STARTUP_TIMEOUT, startup_timeout

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_VAR = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
FAILURE_HINT = f"(set PREFECT_API_URL to use a running server, or {TIMEOUT_VAR})"

#: The CLI with ``mine`` replaced by a verb that starts the server as ``mine`` does, prints its
#: port, then acts on MODE.
COMMAND = """\
import sys, time
from vocalmine import cli
del cli.VERBS["mine"]

@cli.app.command("mine")
def probe(mode: str) -> None:
    from prefect.server.api.server import SubprocessASGIServer
    from vocalmine.cli.common import start_flow_server
    start_flow_server("vocalmine.flows.mine")  # as mine does, once its settings are read
    print("READY", SubprocessASGIServer().port, flush=True)
    if mode == "raise":
        raise RuntimeError("the verb failed")
    if mode == "wait":
        time.sleep(120)

sys.argv = ["vocalmine", "mine", *sys.argv[1:]]
cli.main()
"""


class Command:
    """The command in a session of its own, its descendants recorded every 0.1 s while it runs."""

    def __init__(self, mode: str, **env: str) -> None:
        environ = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | env
        self.process = subprocess.Popen(
            [sys.executable, "-c", COMMAND, mode],
            cwd=ROOT,
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.seen: dict[int, tuple[psutil.Process, list[str]]] = {}
        self.children: set[int] = set()  # the command's own children
        self.ready_at: float | None = None  # when the verb began (or the signal was sent)
        self.exited_at: float | None = None
        self._lines: queue.Queue[str] = queue.Queue()
        self._errors: list[str] = []
        self._threads = [
            threading.Thread(target=_read, args=(self.process.stdout, self._lines.put)),
            threading.Thread(target=_read, args=(self.process.stderr, self._errors.append)),
            threading.Thread(target=self._record),
        ]
        for thread in self._threads:
            thread.start()

    def _record(self) -> None:
        while self.process.poll() is None:
            with contextlib.suppress(psutil.Error):
                command = psutil.Process(self.process.pid)
                self.children.update(child.pid for child in command.children())
                for child in command.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        # again each time: a child forked but not yet exec'd shows our cmdline
                        self.seen[child.pid] = (child, child.cmdline())
            time.sleep(0.1)
        self.exited_at = time.monotonic()

    def servers(self) -> int:
        """Server processes seen (``python -m uvicorn``)."""
        return sum(cmdline[1:3] == ["-m", "uvicorn"] for _, cmdline in self.seen.values())

    def starts(self) -> int:
        """Server starts: each spawns a watchdog, a child whose arguments are the server's command.

        (The server is the watchdog's child; forked but not yet exec'd, it shows the same.)
        """
        return sum(
            pid in self.children and "uvicorn" in cmdline for pid, (_, cmdline) in self.seen.items()
        )

    def port(self, timeout: float = 240) -> int | None:
        """The server's port once the verb runs; None if the command ends first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.05)
            except queue.Empty:
                if self.process.poll() is not None and self._lines.empty():
                    return None
                continue
            if line.startswith("READY"):
                self.ready_at = time.monotonic()
                return int(line.split()[1])
        raise AssertionError(f"the command did not start its verb within {timeout} s")

    def wait(self, timeout: float = 60) -> tuple[int, str]:
        """Exit code and stderr."""
        returncode = self.process.wait(timeout)
        for thread in self._threads:  # the pipes end when the command's last writer exits
            thread.join(timeout=10)
        return returncode, "".join(self._errors)

    def left_behind(self, timeout: float = 10) -> list[str]:
        """Recorded descendants still alive after ``timeout`` seconds (zombies count as gone)."""
        deadline = time.monotonic() + timeout
        while True:
            alive = [f"{p.pid} {' '.join(cmd)[:80]}" for p, cmd in self.seen.values() if _alive(p)]
            if not alive or time.monotonic() > deadline:
                return alive
            time.sleep(0.1)

    def kill_all(self) -> None:
        for process, _ in self.seen.values():
            with contextlib.suppress(psutil.Error):
                process.kill()
        self.process.kill()
        self.process.wait()


def _read(stream: IO[str], keep: Callable[[str], object]) -> None:
    for line in stream:
        keep(line)


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _nothing_left(command: Command, port: int | None) -> list[str]:
    """What the command left: processes, a listening port; also a server started never or twice."""
    starts = command.starts()
    problems = [] if starts == 1 else [f"{starts} server starts were seen"]
    problems += command.left_behind()
    if port is not None and _listening(port):
        problems.append(f"port {port} still listens")
    return problems


@pytest.mark.slow
def test_no_process_outlives_the_command_on_any_exit_path() -> None:
    """Exit, exception, SIGTERM, Ctrl-C to the process group, SIGKILL while the server starts.

    The first command runs alone: servers starting side by side on a new database race to
    create its tables, and the losers print tracebacks before Prefect retries them.
    """
    expected = {"exit": 0, "raise": 1, "SIGTERM": 143, "SIGINT": 130, "SIGKILL": -signal.SIGKILL}
    commands = {"exit": Command("exit")}
    ports: dict[str, int | None] = {"exit": commands["exit"].port(), "SIGKILL": None}
    try:
        for ending in ("raise", "SIGTERM", "SIGINT", "SIGKILL"):
            commands[ending] = Command("raise" if ending == "raise" else "wait")
        killed = commands["SIGKILL"]  # the watchdog's case: nothing in the command runs
        deadline = time.monotonic() + 120
        while not killed.servers() and time.monotonic() < deadline:
            time.sleep(0.02)
        killed.process.kill()
        ports |= {ending: commands[ending].port() for ending in ("raise", "SIGTERM", "SIGINT")}
        for ending, signum in (("SIGTERM", signal.SIGTERM), ("SIGINT", signal.SIGINT)):
            port = ports[ending]
            assert port is not None and _listening(port)
            commands[ending].ready_at = time.monotonic()
            os.killpg(commands[ending].process.pid, signum)  # SIGINT: Ctrl-C in its terminal
            commands[ending].wait()
        problems = {}
        for ending, command in commands.items():
            returncode, stderr = command.wait()
            found = _nothing_left(command, ports[ending])
            if returncode != expected[ending]:
                found.append(f"exit code {returncode}: {stderr[-2000:]}")
            if "Traceback" in stderr and ending != "raise":
                found.append(f"a traceback: {stderr[-2000:]}")
            if found:
                problems[ending] = found
            if command.ready_at and command.exited_at:
                print(f"{ending}: exit {returncode}, {command.exited_at - command.ready_at:.2f} s")
        assert problems == {}
    finally:
        for command in commands.values():
            command.kill_all()


def test_a_start_that_times_out_is_one_line_and_leaves_nothing() -> None:
    command = Command("exit", **{TIMEOUT_VAR: "1"})
    try:
        assert command.port() is None
        returncode, stderr = command.wait()
        assert returncode == 1
        assert stderr.splitlines() == [
            f"vocalmine: the temporary Prefect server did not answer within 1 s {FAILURE_HINT}"
        ]
        assert command.servers() <= 1
        assert _nothing_left(command, None) == []
    finally:
        command.kill_all()


@pytest.mark.slow
def test_under_cpu_contention_the_start_succeeds_or_fails_in_one_line() -> None:
    """Prefect's own 20 s with a busy loop per core: either outcome, and nothing left."""
    spin = "import time\nend = time.monotonic() + 90\nwhile time.monotonic() < end: pass"
    busy = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(os.cpu_count() or 2)]
    command = Command("exit", **{TIMEOUT_VAR: "20"})
    try:
        port = command.port()
        returncode, stderr = command.wait()
        print(f"under contention: {'started' if port else 'did not start'}, exit {returncode}")
        if port is None:
            assert returncode == 1
            [line] = stderr.splitlines()
            assert line.startswith("vocalmine: the temporary Prefect server "), line
            assert line.endswith(FAILURE_HINT), line
        else:
            assert returncode == 0, stderr
        assert command.servers() <= 1
        assert _nothing_left(command, port) == []
    finally:
        for process in busy:
            process.kill()
            process.wait()
        command.kill_all()


def test_the_startup_timeout_fits_a_loaded_machine_unless_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect.settings import Settings

    monkeypatch.delenv(TIMEOUT_VAR, raising=False)
    assert startup_timeout(Settings()) == STARTUP_TIMEOUT == 120
    monkeypatch.setenv(TIMEOUT_VAR, "7")
    assert startup_timeout(Settings()) == 7
