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

import os
import socket
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from sqlalchemy import or_, select, update

from vocalmine.storage.catalog import Catalog, Pair
from vocalmine.storage.db_lock import POLL_S, LockBusy, database_lock, lock_file, lock_number

__all__ = [
    "POLL_S",
    "LockBusy",
    "claim_pairs",
    "clear_stale_claims",
    "exclusive_lock",
    "lock_file",
    "lock_number",
    "new_owner",
    "release_pairs",
]


def new_owner(prefix: str = "run") -> str:
    """A claim owner id unique across hosts and processes (fits ``Pair.claimed_by``)."""
    host = socket.gethostname()[:24]
    return f"{prefix[:12]}:{host}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


@contextmanager
def exclusive_lock(catalog: Catalog, key: str, timeout: float | None = None) -> Iterator[None]:
    """Hold the lock named ``key`` for the catalog's database; wait at most ``timeout`` seconds.

    ``timeout=None`` waits for ever, ``0`` tries once. Raises :class:`LockBusy` when it expires.
    (The lock itself is :func:`storage.db_lock.database_lock`, which the catalog's schema
    upgrade takes too.)
    """
    with database_lock(catalog.engine, catalog.url, key, timeout):
        yield


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
