"""A named lock on one catalog database, held until released or until its process dies.

On PostgreSQL a session-level advisory lock (``pg_try_advisory_lock``) on a dedicated
connection; on SQLite an ``flock`` on a file beside the database. Both are released by the
database server or the kernel when the holder dies (SIGKILL included). This module sits below
:mod:`storage.catalog` (whose schema upgrade takes the lock) and :mod:`storage.locks` (whose
``exclusive_lock`` takes it for whole mining runs): it needs only an engine and its URL.
"""

from __future__ import annotations

import fcntl
import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import Engine, make_url

POLL_S = 0.2


class LockBusy(RuntimeError):
    """Another live process holds the lock."""


def lock_number(key: str) -> int:
    """A stable signed 64-bit number for ``key`` (PostgreSQL advisory lock id)."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_file(catalog_url: str, key: str) -> Path | None:
    """The flock file for ``key`` beside a SQLite database; None for in-memory databases."""
    database = make_url(catalog_url).database
    if not database or database == ":memory:":
        return None
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).hexdigest()
    return Path(database).with_name(f"{Path(database).name}.{digest}.lock")


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def _expired(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


@contextmanager
def database_lock(
    engine: Engine, url: str, key: str, timeout: float | None = None
) -> Iterator[None]:
    """Hold the lock named ``key`` for the database at ``url`` (reached through ``engine``).

    ``timeout=None`` waits for ever, ``0`` tries once. Raises :class:`LockBusy` when it expires.
    """
    backend = engine.dialect.name
    if backend == "postgresql":
        with _advisory_lock(engine, key, timeout):
            yield
    elif backend == "sqlite":
        with _file_lock(url, key, timeout):
            yield
    else:
        raise ValueError(f"{url}: no lock support for the {backend} backend")


@contextmanager
def _advisory_lock(engine: Engine, key: str, timeout: float | None) -> Iterator[None]:
    number = lock_number(key)
    deadline = _deadline(timeout)
    with engine.connect() as connection:
        while not connection.execute(select(func.pg_try_advisory_lock(number))).scalar_one():
            connection.rollback()
            if _expired(deadline):
                raise LockBusy(f"{key}: another run holds this lock (waited {timeout} s)")
            time.sleep(POLL_S)
        connection.commit()
        try:
            yield
        finally:
            connection.execute(select(func.pg_advisory_unlock(number)))
            connection.commit()


@contextmanager
def _file_lock(catalog_url: str, key: str, timeout: float | None) -> Iterator[None]:
    path = lock_file(catalog_url, key)
    if path is None:  # an in-memory database is private to this process
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = _deadline(timeout)
    with open(path, "a+b") as handle:
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError as exc:
                if _expired(deadline):
                    raise LockBusy(
                        f"{key}: another run holds this lock (waited {timeout} s)"
                    ) from exc
                time.sleep(POLL_S)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
