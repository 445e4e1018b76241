"""Atomic file writes: a temporary file beside the target, renamed over it only when complete.

Every writer in the project goes through here, so a run killed mid-write never leaves a
truncated file under the final name. Local paths use :func:`os.replace`; :func:`atomic_write`
also takes any fsspec filesystem (``s3://...``), where the rename is the store's ``mv``.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import fsspec

__all__ = [
    "atomic_path",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "commit_temp",
    "is_local",
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
