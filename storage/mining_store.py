"""The mining flow's view of the catalog: runs, tracks to match, pairs, rejections, and the
discovery sweep's checks (the fingerprints themselves live in ``storage/fingerprint_store.py``).

Kept apart from the flow so the flow stays a thin composition and every query lives in one place.
Claims and run locks live in ``storage/locks.py``.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select

from vocalmine.storage.catalog import (
    Catalog,
    FingerprintCheck,
    LegacyFingerprint,
    MiningRun,
    Pair,
    Rejection,
    SweptContent,
    Track,
    utcnow,
)

#: Values per ``IN (...)`` clause (SQLite allows 32,766 variables; PostgreSQL more).
_IN_BATCH = 900


def _batched(values: list[str]) -> list[list[str]]:
    return [values[i : i + _IN_BATCH] for i in range(0, len(values), _IN_BATCH)]


@dataclass(frozen=True)
class TrackRow:
    """The track facts matching and processing need, detached from any session."""

    id: int
    path: str
    content_hash: str
    artist: str | None
    title: str | None
    version: str | None
    duration_s: float
    sample_rate: int
    comment: str | None = None


def start_run(catalog: Catalog, library_root: str, flow_run_id: str | None) -> int:
    """Record a new mining run and return its id.

    Called under the run lock, so any other run of this library still marked ``running`` was
    killed: it is marked ``crashed``.
    """
    with catalog.session() as session:
        for stale in session.execute(
            select(MiningRun).where(
                MiningRun.library_root == library_root, MiningRun.status == "running"
            )
        ).scalars():
            stale.status, stale.finished_at = "crashed", utcnow()
        run = MiningRun(library_root=library_root, flow_run_id=flow_run_id, status="running")
        session.add(run)
        session.flush()
        return run.id


def finish_run(catalog: Catalog, run_id: int, status: str, counts: dict[str, Any]) -> None:
    """Close a mining run with its final status and counts."""
    with catalog.session() as session:
        run = session.get(MiningRun, run_id)
        if run is not None:
            run.status = status
            run.finished_at = utcnow()
            run.counts = counts


def previous_run(
    catalog: Catalog, library_root: str, before: int
) -> tuple[str, dict[str, Any]] | None:
    """Status and counts of the last run of ``library_root`` before run ``before``."""
    with catalog.session() as session:
        run = session.execute(
            select(MiningRun)
            .where(MiningRun.library_root == library_root, MiningRun.id < before)
            .order_by(MiningRun.id.desc())
            .limit(1)
        ).scalar_one_or_none()
        return None if run is None else (run.status, dict(run.counts or {}))


def library_tracks(catalog: Catalog, library_root: str) -> list[TrackRow]:
    """Readable tracks under ``library_root``."""
    prefix = str(Path(library_root).resolve()) + os.sep
    with catalog.session() as session:
        rows = session.execute(
            select(Track).where(Track.path.startswith(prefix), Track.status == "ok")
        ).scalars()
        return [
            TrackRow(
                t.id,
                t.path,
                t.content_hash or "",
                t.artist,
                t.title,
                t.version,
                float(t.duration_s or 0.0),
                int(t.sample_rate or 0),
                t.comment,
            )
            for t in rows
        ]


def legacy_fingerprints(catalog: Catalog, limit: int = 200) -> list[tuple[str, bytes]]:
    """Up to ``limit`` fingerprint blobs a catalog from before migration 0003 still holds."""
    with catalog.session() as session:
        rows = session.execute(
            select(LegacyFingerprint.content_hash, LegacyFingerprint.data)
            .order_by(LegacyFingerprint.content_hash)
            .limit(limit)
        ).all()
    return [(h, d) for h, d in rows]


def delete_legacy_fingerprints(catalog: Catalog, hashes: list[str]) -> None:
    """Forget legacy blobs once the on-disk index holds them."""
    with catalog.session() as session:
        for chunk in _batched(hashes):
            session.execute(
                LegacyFingerprint.__table__.delete().where(  # type: ignore[attr-defined]
                    LegacyFingerprint.content_hash.in_(chunk)
                )
            )


def swept_contents(catalog: Catalog, index_key: str, hashes: set[str]) -> set[str]:
    """Which of ``hashes`` were already queried under the sweep key ``index_key``
    (:func:`mining.fingerprint_index.sweep_key`)."""
    done: set[str] = set()
    with catalog.session() as session:
        for chunk in _batched(sorted(hashes)):
            done.update(
                session.execute(
                    select(SweptContent.content_hash).where(
                        SweptContent.index_key == index_key, SweptContent.content_hash.in_(chunk)
                    )
                ).scalars()
            )
    return done


def forget_sweep(catalog: Catalog, index_key: str) -> None:
    """Drop every check and swept mark of the sweep key ``index_key`` (a full re-sweep follows)."""
    with catalog.session() as session:
        for table in (FingerprintCheck, SweptContent):
            session.execute(
                table.__table__.delete().where(table.index_key == index_key)  # type: ignore[attr-defined]
            )


CheckRow = tuple[str, str, dict[str, Any], dict[str, Any]]


def save_checks(catalog: Catalog, index_key: str, checks: list[CheckRow], swept: list[str]) -> None:
    """Store a sweep block's checks (content a < b, a in b, b in a; a pair already stored keeps
    its first numbers) and mark its queries swept, in one transaction: a block is either done
    or redone."""
    with catalog.session() as session:
        have: set[tuple[str, str]] = set()
        for chunk in _batched(sorted({c[0] for c in checks})):
            have.update(
                session.execute(
                    select(FingerprintCheck.content_a, FingerprintCheck.content_b).where(
                        FingerprintCheck.index_key == index_key,
                        FingerprintCheck.content_a.in_(chunk),
                    )
                ).all()
            )
        for a, b, a_in_b, b_in_a in checks:
            if (a, b) not in have:
                have.add((a, b))
                session.add(
                    FingerprintCheck(
                        index_key=index_key, content_a=a, content_b=b, a_in_b=a_in_b, b_in_a=b_in_a
                    )
                )
        done: set[str] = set()
        for chunk in _batched(sorted(set(swept))):
            done.update(
                session.execute(
                    select(SweptContent.content_hash).where(
                        SweptContent.index_key == index_key, SweptContent.content_hash.in_(chunk)
                    )
                ).scalars()
            )
        session.add_all(
            SweptContent(index_key=index_key, content_hash=h) for h in sorted(set(swept) - done)
        )


def load_checks(catalog: Catalog, index_key: str, hashes: set[str]) -> list[CheckRow]:
    """The stored checks between two of ``hashes``."""
    out: list[CheckRow] = []
    with catalog.session() as session:
        for chunk in _batched(sorted(hashes)):
            rows = session.execute(
                select(
                    FingerprintCheck.content_a,
                    FingerprintCheck.content_b,
                    FingerprintCheck.a_in_b,
                    FingerprintCheck.b_in_a,
                ).where(
                    FingerprintCheck.index_key == index_key, FingerprintCheck.content_a.in_(chunk)
                )
            ).all()
            out += [(a, b, x, y) for a, b, x, y in rows if b in hashes]
    return out


def upsert_pair(
    catalog: Catalog,
    original_id: int,
    instrumental_id: int,
    *,
    source: str,
    score: float,
    run_id: int,
) -> int:
    """The id of the pair (original, instrumental), created as a candidate when new."""
    with catalog.session() as session:
        pair = session.execute(
            select(Pair).where(
                Pair.original_id == original_id, Pair.instrumental_id == instrumental_id
            )
        ).scalar_one_or_none()
        if pair is None:
            pair = Pair(
                original_id=original_id,
                instrumental_id=instrumental_id,
                source=source,
                score=score,
                status="candidate",
                run_id=run_id,
            )
            session.add(pair)
            session.flush()
        return pair.id


def _plain(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become None (PostgreSQL's JSON has no Infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


#: Pair ids per ``IN`` query of the batched evidence writes.
_BATCH = 500


def add_evidence_many(catalog: Catalog, sections: dict[int, dict[str, Any]]) -> int:
    """Merge each pair's ``sections`` (``titles``, ``orientation``, ``copy_groups``, ``checks``,
    ``audio``, ...) into its evidence trail, a section given again replacing the old one.

    One transaction; a pair whose sections are already recorded is not written, so stages that
    restate the evidence of every pair on every run cost writes only for what changed.
    Returns the number of pairs written.
    """
    return _merge_evidence(catalog, sections, lambda old, new: {**old, **new})


def add_evidence(catalog: Catalog, pair_id: int, **sections: Any) -> None:
    """:func:`add_evidence_many` for one pair."""
    add_evidence_many(catalog, {pair_id: sections})


def add_found_many(catalog: Catalog, how: str, facts: dict[int, dict[str, Any]]) -> int:
    """Record one way each pair was found (``title`` or ``fingerprint`` discovery) beside the
    others (``Pair.source`` keeps the first); unchanged facts are not written. Returns the
    number of pairs written."""
    return _merge_evidence(
        catalog,
        {pair_id: {how: f} for pair_id, f in facts.items()},
        lambda old, new: {**old, "found": {**(old.get("found") or {}), **new}},
        section="found",
    )


def add_found(catalog: Catalog, pair_id: int, how: str, facts: dict[str, Any]) -> None:
    """:func:`add_found_many` for one pair."""
    add_found_many(catalog, how, {pair_id: facts})


def _merge_evidence(
    catalog: Catalog,
    updates: dict[int, dict[str, Any]],
    merge: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]],
    section: str | None = None,
) -> int:
    """Apply ``merge(old evidence, new sections)`` to each pair whose sections differ."""
    plain = {pair_id: _plain(u) for pair_id, u in updates.items()}
    ids = sorted(plain)
    written = 0
    with catalog.session() as session:
        for start in range(0, len(ids), _BATCH):
            batch = ids[start : start + _BATCH]
            for pair in session.execute(select(Pair).where(Pair.id.in_(batch))).scalars():
                old = dict(pair.evidence or {})
                known = old.get(section) or {} if section else old
                new = plain[pair.id]
                if all(known.get(k) == v for k, v in new.items()):
                    continue
                pair.evidence = merge(old, new)
                written += 1
    return written


def pair_status(catalog: Catalog, pair_id: int) -> str:
    """Current status of a pair."""
    with catalog.session() as session:
        return session.execute(select(Pair.status).where(Pair.id == pair_id)).scalar_one()


def reject_pair(
    catalog: Catalog, pair_id: int, reason: str, detail: str, stage: str, run_id: int, **fields: Any
) -> None:
    """Mark a pair rejected and keep why (replacing an older reason for the same pair)."""
    with catalog.session() as session:
        pair = session.get(Pair, pair_id)
        assert pair is not None
        pair.status, pair.reason, pair.claimed_by = "rejected", reason, None
        for key, value in fields.items():
            setattr(pair, key, value)
        session.execute(
            Rejection.__table__.delete().where(Rejection.pair_id == pair_id)  # type: ignore[attr-defined]
        )
        session.add(
            Rejection(pair_id=pair_id, reason=reason, detail=detail, stage=stage, run_id=run_id)
        )


def reject_track(
    catalog: Catalog, track_id: int, reason: str, detail: str, stage: str, run_id: int
) -> None:
    """Record why a track takes part in no pair (no counterpart, duplicate, ...), once."""
    with catalog.session() as session:
        existing = session.execute(
            select(Rejection).where(
                Rejection.track_id == track_id,
                Rejection.pair_id.is_(None),
                Rejection.reason == reason,
            )
        ).scalar_one_or_none()
        if existing is None:
            session.add(
                Rejection(
                    track_id=track_id, reason=reason, detail=detail, stage=stage, run_id=run_id
                )
            )


def accept_pair(
    catalog: Catalog, pair_id: int, *, suspect: str | None = None, **fields: Any
) -> None:
    """Mark a pair accepted (verified by fingerprints), with what verification measured.

    ``suspect``: the reason the derivation must rule out before the pair is mined (fingerprints
    alone could not settle it); kept in the pair's ``reason`` while it is accepted.
    """
    with catalog.session() as session:
        pair = session.get(Pair, pair_id)
        assert pair is not None
        if pair.status in ("candidate", "rejected"):
            pair.status, pair.reason = "accepted", suspect
            session.execute(
                Rejection.__table__.delete().where(Rejection.pair_id == pair_id)  # type: ignore[attr-defined]
            )
        for key, value in fields.items():
            setattr(pair, key, value)


def _publish(pair: Pair) -> None:
    """Status ``mined``, with the columns the process stage recorded in the evidence
    (section ``shards``) before it queued the pair's segments."""
    pair.status, pair.reason, pair.claimed_by = "mined", None, None
    for key, value in ((pair.evidence or {}).get("shards") or {}).items():
        setattr(pair, key, value)


def mark_mined(catalog: Catalog, pair_ids: Iterable[int]) -> None:
    """Pairs whose segments are in the shards (one transaction)."""
    with catalog.session() as session:
        for pair_id in sorted(pair_ids):
            pair = session.get(Pair, pair_id)
            assert pair is not None
            _publish(pair)


def pairs_with_status(catalog: Catalog, status: str) -> list[Pair]:
    """Pairs in one status, detached."""
    with catalog.session() as session:
        return list(session.execute(select(Pair).where(Pair.status == status)).scalars())


def all_pairs(catalog: Catalog) -> list[Pair]:
    """Every pair of the catalog, detached."""
    with catalog.session() as session:
        return list(session.execute(select(Pair)).scalars())


def reconcile_mined(catalog: Catalog, done: set[int]) -> None:
    """Make pair statuses agree with the shard manifest, the source of truth for "mined".

    A run killed between writing shards and updating the catalog (or the reverse) leaves them
    apart; this puts accepted pairs the manifest lists to ``mined`` (with the columns their
    evidence recorded before the segments were queued) and mined pairs it does not list back to
    ``accepted``, so the next run redoes exactly those.
    """
    with catalog.session() as session:
        for pair in session.execute(
            select(Pair).where(Pair.status.in_(("accepted", "mined")))
        ).scalars():
            if pair.status == "accepted" and pair.id in done:
                _publish(pair)
            elif pair.status == "mined" and pair.id not in done:
                pair.status = "accepted"


def counts(catalog: Catalog) -> dict[str, Any]:
    """Pairs by status and rejections by reason, over the whole catalog."""
    with catalog.session() as session:
        by_status = dict(
            session.execute(select(Pair.status, func.count(Pair.id)).group_by(Pair.status)).all()
        )
        by_reason = Counter(
            dict(
                session.execute(
                    select(Rejection.reason, func.count(Rejection.id)).group_by(Rejection.reason)
                ).all()
            )
        )
        tracks = dict(
            session.execute(select(Track.status, func.count(Track.id)).group_by(Track.status)).all()
        )
    return {"tracks": tracks, "pairs": by_status, "rejections": dict(by_reason)}


def explain(catalog: Catalog, query: str) -> list[dict[str, Any]]:
    """Every decision about a pair id or a file path: status, reason, detail, numbers."""
    with catalog.session() as session:
        tracks: list[Track] = []
        pairs: list[Pair] = []
        if query.isdigit():
            pair = session.get(Pair, int(query))
            pairs = [pair] if pair else []
        else:
            try:
                path = str(Path(query).resolve())
            except (RuntimeError, OSError):  # a symbolic link loop: the path as the scan saw it
                path = os.path.abspath(query)
            tracks = list(
                session.execute(select(Track).where(Track.path == path)).scalars()
            ) or list(session.execute(select(Track).where(Track.path.endswith(query))).scalars())
            ids = [t.id for t in tracks]
            pairs = list(
                session.execute(
                    select(Pair).where(
                        or_(Pair.original_id.in_(ids), Pair.instrumental_id.in_(ids))
                    )
                ).scalars()
            )
        out: list[dict[str, Any]] = []
        for track in tracks:
            rejections = session.execute(
                select(Rejection).where(Rejection.track_id == track.id)
            ).scalars()
            out.append(
                {
                    "track": track.path,
                    "status": track.status,
                    "reason": track.error_reason,
                    "detail": track.error_detail,
                    "rejections": [(r.reason, r.detail) for r in rejections],
                }
            )
        for pair in pairs:
            original = session.get(Track, pair.original_id)
            instrumental = session.get(Track, pair.instrumental_id)
            rejection = session.execute(
                select(Rejection).where(Rejection.pair_id == pair.id)
            ).scalar_one_or_none()
            out.append(
                {
                    "pair": pair.id,
                    "original": original.path if original else None,
                    "instrumental": instrumental.path if instrumental else None,
                    "source": pair.source,
                    "score": pair.score,
                    "status": pair.status,
                    "reason": pair.reason if pair.status == "rejected" else None,
                    "suspect": pair.reason if pair.status == "accepted" else None,
                    "detail": rejection.detail if rejection else None,
                    "stage": rejection.stage if rejection else None,
                    "offset_s": pair.offset_s,
                    "gain_db": pair.gain_db,
                    "fp_ratio": pair.fp_ratio,
                    "quality": pair.quality,
                    "segments": pair.segments,
                    "split": pair.split,
                    "evidence": pair.evidence or {},
                }
            )
    return out
