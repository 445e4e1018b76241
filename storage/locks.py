"""Locks and pair claims that keep concurrent mining runs from corrupting the catalog.

Two mechanisms, both released by the kernel or the database server when their process dies
(SIGKILL included), so a crashed run never leaves a lock behind that an operator must clear:

- :func:`exclusive_lock` serialises whole runs on one key (e.g. ``"mine:/music"``). On PostgreSQL
  it is a session-level advisory lock (``pg_try_advisory_lock``) held on a dedicated connection;
  on SQLite it is an ``flock`` on a file beside the database. A second run waits up to ``timeout``
  seconds (then raises :class:`LockBusy`); since mining is incremental, a run that waited finds the
  work done and adds nothing twice.
- :func:`claim_pairs` marks pairs as taken in ``Pair.claimed_by`` with compare-and-swap
  ``UPDATE ... WHERE claimed_by IS NULL OR claimed_by = owner``, which is atomic per row on both
  backends (SQLite serialises writers; PostgreSQL re-checks the WHERE clause after a row lock), so
  two owners never hold the same pair. Claims outlive a killed process, so a run that holds the
  exclusive lock calls :func:`clear_stale_claims` first: no other live run can own them.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import func, or_, select, update
from sqlalchemy.engine import make_url
from vocalmine.storage.catalog import Catalog, Pair

POLL_S = 0.2


class LockBusy(RuntimeError):
    """Another live process holds the lock."""


def new_owner(prefix: str = "run") -> str:
    """A claim owner id unique across hosts and processes (fits ``Pair.claimed_by``)."""
    host = socket.gethostname()[:24]
    return f"{prefix[:12]}:{host}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


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
def exclusive_lock(catalog: Catalog, key: str, timeout: float | None = None) -> Iterator[None]:
    """Hold the lock named ``key`` for the catalog's database; wait at most ``timeout`` seconds.

    ``timeout=None`` waits for ever, ``0`` tries once. Raises :class:`LockBusy` when it expires.
    """
    backend = catalog.engine.dialect.name
    if backend == "postgresql":
        with _advisory_lock(catalog, key, timeout):
            yield
    elif backend == "sqlite":
        with _file_lock(catalog.url, key, timeout):
            yield
    else:
        raise ValueError(f"{catalog.url}: no lock support for the {backend} backend")


@contextmanager
def _advisory_lock(catalog: Catalog, key: str, timeout: float | None) -> Iterator[None]:
    number = lock_number(key)
    deadline = _deadline(timeout)
    with catalog.engine.connect() as connection:
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


def claim_pairs(catalog: Catalog, owner: str, pair_ids: Iterable[int]) -> list[int]:
    """Claim the unclaimed (or already ours) pairs among ``pair_ids``; return those we hold."""
    ids = sorted(set(pair_ids))
    if not ids:
        return []
    with catalog.session() as session:
        session.execute(
            update(Pair)
            .where(Pair.id.in_(ids), or_(Pair.claimed_by.is_(None), Pair.claimed_by == owner))
            .values(claimed_by=owner)
            .execution_options(synchronize_session=False)
        )
    with catalog.session() as session:
        held = session.execute(
            select(Pair.id).where(Pair.id.in_(ids), Pair.claimed_by == owner)
        ).scalars()
        return sorted(held)


def release_pairs(catalog: Catalog, owner: str, pair_ids: Iterable[int] | None = None) -> int:
    """Drop ``owner``'s claims (all of them, or only on ``pair_ids``); return how many."""
    statement = update(Pair).where(Pair.claimed_by == owner)
    if pair_ids is not None:
        statement = statement.where(Pair.id.in_(sorted(set(pair_ids))))
    with catalog.session() as session:
        result = session.execute(
            statement.values(claimed_by=None).execution_options(synchronize_session=False)
        )
        return result.rowcount or 0


def clear_stale_claims(catalog: Catalog, owner: str) -> int:
    """Release every claim not held by ``owner``; call only while holding the exclusive lock."""
    with catalog.session() as session:
        result = session.execute(
            update(Pair)
            .where(Pair.claimed_by.is_not(None), Pair.claimed_by != owner)
            .values(claimed_by=None)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount or 0
