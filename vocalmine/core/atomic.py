"""Atomic file writes: a temporary file beside the target, renamed over it only when complete.

Every writer in the project goes through here, so a run killed mid-write never leaves a
truncated file under the final name. Local paths use :func:`os.replace`; :func:`atomic_write`
also takes any fsspec filesystem (``s3://...``), where the rename is the store's ``mv``.
Runs that write many files (``vocalmine separate``) keep their partial files in one
:class:`RunFolder`, claim each output folder (:class:`FolderClaim`) and publish a folder's
files together (:func:`publish_folder`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import fsspec

__all__ = [
    "TEMP_ROOT",
    "FolderBusyError",
    "FolderClaim",
    "RunFolder",
    "atomic_path",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "commit_temp",
    "is_local",
    "is_temp_name",
    "publish_folder",
    "temp_beside",
]


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def temp_beside(path: str | os.PathLike[str], suffix: str = ".tmp") -> Path:
    """A new empty hidden file in ``path``'s folder (created, with the parents if needed).

    The name is short on purpose: the target's own name may already be near the 255-byte limit.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".vm-", suffix=f"{suffix}{target.suffix}", dir=target.parent)
    os.close(fd)
    return Path(tmp)


def commit_temp(tmp: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """Give ``tmp`` the mode a new file would get and rename it over ``path``."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)
    return Path(path)


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path beside ``path``; it replaces ``path`` only if the block succeeds."""
    tmp = temp_beside(path)
    try:
        yield tmp
        commit_temp(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically; returns the path."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    """True for fsspec's local filesystem."""
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocols or "local" in protocols


def atomic_write(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Write ``data`` to a hidden temporary file beside ``path`` on ``fs``, then rename it into
    place (local files are flushed to disk first, so a crash never exposes a partial file)."""
    folder, name = path.rsplit("/", 1)
    tmp = f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"
    if is_local(fs):
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        return
    with fs.open(tmp, "wb") as handle:
        handle.write(data)
    fs.mv(tmp, path)


#: The folder, beside a run's outputs, that holds its temporary files (one sub-folder per run).
TEMP_ROOT = ".vocalmine-tmp"


def is_temp_name(name: str) -> bool:
    """True for the names this project gives temporary files and folders (``.vm-*``,
    ``.*.tmp``, :data:`TEMP_ROOT`): a library scan skips them."""
    return (
        name == TEMP_ROOT
        or name.startswith(".vm-")
        or (name.startswith(".") and name.endswith(".tmp"))
    )


def _remove_dead_runs(root: Path) -> None:
    """Remove the run folders under ``root`` whose run has ended (its lock is free)."""
    for folder in root.glob("run-*"):
        try:
            handle = open(folder / ".lock", "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:  # killed between creating the folder and its lock
            pid = folder.name.split("-")[1]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(folder, ignore_errors=True)
            continue
        except OSError:
            continue
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # a live run
                continue
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunFolder:
    """One temporary folder for a run's partial and staged files: ``PARENT/.vocalmine-tmp/
    run-<pid>-<random>``, on the outputs' filesystem (so finished files are renamed, not
    copied, into place), locked while the run lives and removed when it ends, however it
    ends short of SIGKILL. A new run first removes the folders of runs that were killed."""

    def __init__(self, parent: str | os.PathLike[str]) -> None:
        self.root = Path(parent) / TEMP_ROOT
        self.root.mkdir(parents=True, exist_ok=True)
        _remove_dead_runs(self.root)
        self.path = Path(tempfile.mkdtemp(prefix=f"run-{os.getpid()}-", dir=self.root))
        self._lock = open(self.path / ".lock", "wb")  # noqa: SIM115 - held until close()
        fcntl.flock(self._lock, fcntl.LOCK_EX)

    def close(self) -> None:
        """Remove the folder (and the shared parent when no other run uses it)."""
        shutil.rmtree(self.path, ignore_errors=True)
        self._lock.close()
        with contextlib.suppress(OSError):
            self.root.rmdir()

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class FolderBusyError(OSError):
    """Another process holds the claim on an output folder."""


class FolderClaim:
    """An exclusive claim on output folder ``path`` (made if missing): an ``flock`` on the
    folder itself, which the system drops when the process ends, even by SIGKILL.

    On release a folder the claim made is removed again if it is still empty, so a failed
    file leaves no empty output folder.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise FolderBusyError(
                f"{self.path}: output folder is being written by another vocalmine run"
            ) from None

    def release(self) -> None:
        """Drop the claim; remove the folder if this claim made it and it is empty."""
        if self._fd < 0:
            return
        os.close(self._fd)
        self._fd = -1
        if self.created:
            with contextlib.suppress(OSError):  # not empty, or already replaced: keep it
                self.path.rmdir()

    def __enter__(self) -> FolderClaim:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


def publish_folder(staged: Path, target: Path, names: Sequence[str]) -> dict[str, Path]:
    """Move the files ``names`` from folder ``staged`` into ``target``, all or none.

    An empty ``target`` (the usual case: a new output folder) is replaced by ``staged`` in one
    rename, so no moment shows some files without the others, even across a SIGKILL. Into a
    folder that holds other files the files are renamed one by one with SIGINT and SIGTERM
    held back until the last is in place. Returns the published paths by name.
    """
    for name in names:
        os.chmod(staged / name, 0o666 & ~_umask())
    os.chmod(staged, 0o777 & ~_umask())
    if not any(target.iterdir()):
        os.replace(staged, target)  # rename(2) replaces an empty folder atomically
        return {name: target / name for name in names}
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        for name in names:
            os.replace(staged / name, target / name)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return {name: target / name for name in names}
