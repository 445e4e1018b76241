"""The catalog behaves the same on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import numpy as np
import pytest
from alembic import command
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import IntegrityError

from vocalmine.storage.catalog import (
    Catalog,
    LegacyFingerprint,
    MiningRun,
    ModelRecord,
    Pair,
    Rejection,
    Track,
    open_catalog,
)


def _track(path: str, **fields: object) -> Track:
    return Track(path=path, size=10, mtime=1.0, content_hash="h" + path, **fields)


def test_migrations_create_every_table_and_are_idempotent(catalog_url: str) -> None:
    catalog = open_catalog(catalog_url)
    catalog.upgrade()
    tables = set(inspect(catalog.engine).get_table_names())
    assert {
        "tracks",
        "pairs",
        "rejections",
        "mining_runs",
        "models",
        "training_metrics",
        "legacy_fingerprints",
        "fingerprint_checks",
        "swept_contents",
        "alembic_version",
    } <= tables
    catalog.dispose()


def test_pairs_keep_score_status_and_rejection_reasons(catalog_url: str) -> None:
    catalog = open_catalog(catalog_url)
    with catalog.session() as session:
        run = MiningRun(library_root="/lib")
        original, instrumental = _track("/lib/a.flac"), _track("/lib/a (Instrumental).flac")
        session.add_all([run, original, instrumental])
        session.flush()
        pair = Pair(
            original_id=original.id,
            instrumental_id=instrumental.id,
            score=97.5,
            status="rejected",
            reason="duration_mismatch",
            run_id=run.id,
        )
        session.add(pair)
        session.flush()
        session.add(
            Rejection(
                pair_id=pair.id,
                reason="duration_mismatch",
                detail="durations differ by 7.2 s",
                stage="match",
                run_id=run.id,
            )
        )
    with catalog.session() as session:
        stored = session.execute(select(Pair)).scalar_one()
        assert (stored.score, stored.status, stored.reason) == (
            97.5,
            "rejected",
            "duration_mismatch",
        )
        why = session.execute(select(Rejection).where(Rejection.pair_id == stored.id)).scalar_one()
        assert why.detail == "durations differ by 7.2 s"
    catalog.dispose()


def test_a_pair_is_stored_once(catalog_url: str) -> None:
    catalog = open_catalog(catalog_url)
    with catalog.session() as session:
        a, b = _track("/x/a.wav"), _track("/x/b.wav")
        session.add_all([a, b])
        session.flush()
        ids = (a.id, b.id)
        session.add(Pair(original_id=ids[0], instrumental_id=ids[1]))
    with pytest.raises(IntegrityError), catalog.session() as session:
        session.add(Pair(original_id=ids[0], instrumental_id=ids[1]))
    with catalog.session() as session:
        assert session.execute(select(func.count(Pair.id))).scalar_one() == 1
    catalog.dispose()


def test_models_and_unicode_round_trip(catalog_url: str) -> None:
    catalog = Catalog(catalog_url)
    catalog.upgrade()
    with catalog.session() as session:
        session.add(
            _track("/lib/Björk/Jóga (Versión Instrumental).flac", title="Jóga", artist="Björk")
        )
        session.add(
            ModelRecord(
                name="vocals",
                version=1,
                path="/m/1.pt",
                kind="unet",
                preset="paper",
                config={"lr": 1e-3},
                metrics={"l1": 0.1},
                is_current=True,
            )
        )
    with catalog.session() as session:
        track = session.execute(select(Track)).scalar_one()
        assert track.artist == "Björk"
        model = session.execute(select(ModelRecord)).scalar_one()
        assert model.config == {"lr": 1e-3} and model.is_current
    catalog.dispose()


def test_an_old_catalogs_fingerprints_move_into_the_on_disk_index(
    catalog_url: str, tmp_path
) -> None:
    """Migration 0003 keeps the blobs of a catalog from before the index (renamed
    legacy_fingerprints); the next mine moves them into the index, byte for byte, and empties
    the table, so no recording is fingerprinted twice."""
    from vocalmine.flows.mine import _adopt_legacy
    from vocalmine.mining.fingerprint_index import open_index
    from vocalmine.mining.landmarks import fingerprint
    from vocalmine.storage.catalog import alembic_config

    rng = np.random.default_rng(1)
    blob = fingerprint(rng.standard_normal(11025 * 3).astype(np.float32), 11025).to_bytes()
    catalog = Catalog(catalog_url)
    with catalog.engine.begin() as connection:
        config = alembic_config(catalog_url)
        config.attributes["connection"] = connection
        command.upgrade(config, "0002")
        connection.execute(
            text(
                "INSERT INTO fingerprints (content_hash, sample_rate, hop, n_hashes, data,"
                " created_at) VALUES ('abc', 11025, 128, 1, :data, CURRENT_TIMESTAMP)"
            ),
            {"data": blob},
        )
    catalog.upgrade()
    with catalog.session() as session:
        assert session.execute(select(LegacyFingerprint.content_hash)).scalars().all() == ["abc"]
    index = open_index(str(tmp_path / "index"))
    assert _adopt_legacy(catalog, index) == 1
    assert "abc" in open_index(str(tmp_path / "index"))
    assert index.read_object("abc") == blob
    with catalog.session() as session:
        assert session.execute(select(func.count(LegacyFingerprint.content_hash))).scalar() == 0
    catalog.dispose()
