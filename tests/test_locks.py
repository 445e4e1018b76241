"""Run locks and pair claims: exclusive while alive, released when the holder is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from vocalmine.storage.catalog import Catalog, Pair, Track, open_catalog
from vocalmine.storage.locks import (
    LockBusy,
    claim_pairs,
    clear_stale_claims,
    exclusive_lock,
    new_owner,
    release_pairs,
)

ROOT = Path(__file__).resolve().parents[1]


def _catalog_with_pairs(url: str, n: int) -> tuple[Catalog, list[int]]:
    catalog = open_catalog(url)
    with catalog.session() as session:
        tracks = [Track(path=f"/music/{i}.flac", size=1, mtime=0.0) for i in range(2 * n)]
        session.add_all(tracks)
        session.flush()
        pairs = [
            Pair(original_id=tracks[2 * i].id, instrumental_id=tracks[2 * i + 1].id)
            for i in range(n)
        ]
        session.add_all(pairs)
        session.flush()
        ids = [p.id for p in pairs]
    return catalog, ids


def test_concurrent_claims_never_share_a_pair(catalog_url: str) -> None:
    catalog, ids = _catalog_with_pairs(catalog_url, 40)
    owners = [new_owner("a"), new_owner("b"), new_owner("c")]
    held: dict[str, list[int]] = {}

    def grab(owner: str) -> None:
        held[owner] = [
            pair for start in range(0, 40, 8) for pair in claim_pairs(catalog, owner, ids[start:])
        ]

    threads = [threading.Thread(target=grab, args=(owner,)) for owner in owners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claimed = [pair for owner in owners for pair in set(held[owner])]
    assert sorted(claimed) == sorted(ids)
    assert release_pairs(catalog, owners[0]) == len(set(held[owners[0]]))
    catalog.dispose()


def test_claims_are_idempotent_for_their_owner_and_stale_ones_can_be_cleared(
    catalog_url: str,
) -> None:
    catalog, ids = _catalog_with_pairs(catalog_url, 4)
    dead, alive = new_owner("dead"), new_owner("alive")
    assert claim_pairs(catalog, dead, ids[:2]) == ids[:2]
    assert claim_pairs(catalog, dead, ids[:2]) == ids[:2]
    assert claim_pairs(catalog, alive, ids) == ids[2:]
    assert clear_stale_claims(catalog, alive) == 2
    assert claim_pairs(catalog, alive, ids) == ids
    catalog.dispose()


def test_a_second_holder_waits_then_gives_up(catalog_url: str) -> None:
    catalog = open_catalog(catalog_url)
    other = Catalog(catalog_url)
    with exclusive_lock(catalog, "mine:/music"):
        busy = pytest.raises(LockBusy, match="mine:/music: another run holds this lock")
        with busy, exclusive_lock(other, "mine:/music", timeout=0.5):
            pass
        with exclusive_lock(other, "mine:/elsewhere", timeout=0):
            pass
    with exclusive_lock(other, "mine:/music", timeout=0):
        pass
    catalog.dispose()
    other.dispose()


def test_a_killed_holder_leaves_no_lock_behind(catalog_url: str) -> None:
    open_catalog(catalog_url).dispose()
    holder = textwrap.dedent(
        f"""
        import sys, time
        from vocalmine.storage.catalog import Catalog
        from vocalmine.storage.locks import exclusive_lock
        with exclusive_lock(Catalog({catalog_url!r}), "mine:/music"):
            print("held", flush=True)
            time.sleep(600)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", holder], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "held"
        catalog = Catalog(catalog_url)
        with pytest.raises(LockBusy), exclusive_lock(catalog, "mine:/music", timeout=0):
            pass
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        with exclusive_lock(catalog, "mine:/music", timeout=30):
            pass
        catalog.dispose()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
