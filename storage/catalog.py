"""The catalog: tracks, candidate pairs, rejections, mining runs, models and training metrics.

SQLAlchemy 2 ORM over SQLite by default and PostgreSQL by URL; the schema is owned by Alembic
(``storage/migrations``) so an existing catalog is upgraded in place, never recreated.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from vocalmine.core.errors import OneLineError
from vocalmine.storage.db_lock import database_lock

MIGRATIONS = Path(__file__).with_name("migrations")


def utcnow() -> datetime:
    """Timezone-aware now, the one clock every table uses."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of every catalog table."""


class Track(Base):
    """One audio file of the library, as last scanned."""

    __tablename__ = "tracks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(4096), unique=True, index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime: Mapped[float] = mapped_column(Float)
    content_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    title: Mapped[str | None] = mapped_column(Text)
    artist: Mapped[str | None] = mapped_column(Text)
    album: Mapped[str | None] = mapped_column(Text)
    version: Mapped[str | None] = mapped_column(Text)
    comment: Mapped[str | None] = mapped_column(Text)
    tag_source: Mapped[str | None] = mapped_column(String(16))
    duration_s: Mapped[float | None] = mapped_column(Float)
    sample_rate: Mapped[int | None] = mapped_column(Integer)
    channels: Mapped[int | None] = mapped_column(Integer)
    codec: Mapped[str | None] = mapped_column(String(32))
    bitrate_kbps: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="ok", index=True)
    error_reason: Mapped[str | None] = mapped_column(String(64))
    error_detail: Mapped[str | None] = mapped_column(Text)
    scanned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Pair(Base):
    """A candidate (original, instrumental) pair and what became of it."""

    __tablename__ = "pairs"
    __table_args__ = (UniqueConstraint("original_id", "instrumental_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    original_id: Mapped[int] = mapped_column(ForeignKey("tracks.id"), index=True)
    instrumental_id: Mapped[int] = mapped_column(ForeignKey("tracks.id"), index=True)
    source: Mapped[str] = mapped_column(String(16), default="title")
    score: Mapped[float] = mapped_column(Float, default=0.0)
    status: Mapped[str] = mapped_column(String(16), default="candidate", index=True)
    reason: Mapped[str | None] = mapped_column(String(64))
    offset_s: Mapped[float | None] = mapped_column(Float)
    offset_samples: Mapped[int | None] = mapped_column(BigInteger)
    sample_rate: Mapped[int | None] = mapped_column(Integer)
    polarity: Mapped[int | None] = mapped_column(Integer)
    gain_db: Mapped[float | None] = mapped_column(Float)
    fp_matches: Mapped[int | None] = mapped_column(Integer)
    fp_ratio: Mapped[float | None] = mapped_column(Float)
    quality: Mapped[float | None] = mapped_column(Float)
    segments: Mapped[int | None] = mapped_column(Integer)
    dataset: Mapped[str | None] = mapped_column(String(128))
    split: Mapped[str | None] = mapped_column(String(16))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("mining_runs.id"))
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    #: How the pair was found and every check of its decision (see ``mining_store.add_evidence``).
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class Rejection(Base):
    """Why a pair or a track was dropped: a reason code and a human detail."""

    __tablename__ = "rejections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pair_id: Mapped[int | None] = mapped_column(ForeignKey("pairs.id"), index=True)
    track_id: Mapped[int | None] = mapped_column(ForeignKey("tracks.id"), index=True)
    reason: Mapped[str] = mapped_column(String(64), index=True)
    detail: Mapped[str | None] = mapped_column(Text)
    stage: Mapped[str | None] = mapped_column(String(32))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("mining_runs.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MiningRun(Base):
    """One execution of the mining flow, with its counts."""

    __tablename__ = "mining_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    library_root: Mapped[str | None] = mapped_column(String(4096))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default="running")
    counts: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ModelRecord(Base):
    """A registered model version: where its weights are, how it was trained, how it scored."""

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), index=True)
    version: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(4096))
    kind: Mapped[str] = mapped_column(String(64))
    preset: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    manifest: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    is_current: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TrainingMetric(Base):
    """One scalar of a training run (loss, validation L1, ...), at a step."""

    __tablename__ = "training_metrics"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_name: Mapped[str] = mapped_column(String(128), index=True)
    run_id: Mapped[str] = mapped_column(String(64), index=True)
    step: Mapped[int] = mapped_column(Integer)
    epoch: Mapped[int | None] = mapped_column(Integer)
    split: Mapped[str | None] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LegacyFingerprint(Base):
    """Fingerprint blobs as catalogs before migration 0003 kept them; the mine flow moves any
    left here into the on-disk index (:mod:`storage.fingerprint_store`) and deletes them."""

    __tablename__ = "legacy_fingerprints"

    content_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    sample_rate: Mapped[int] = mapped_column(Integer)
    hop: Mapped[int] = mapped_column(Integer)
    n_hashes: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class FingerprintCheck(Base):
    """The exact match of two recordings found by the discovery sweep, in both directions,
    whatever it led to (a pair, a copy, or nothing): a later run decides from it again
    without measuring again. ``content_a`` < ``content_b``; ``index_key`` names the
    fingerprint and sweep parameters (``mining.fingerprint_index.sweep_key``)."""

    __tablename__ = "fingerprint_checks"
    __table_args__ = (UniqueConstraint("index_key", "content_a", "content_b"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    index_key: Mapped[str] = mapped_column(String(32))
    content_a: Mapped[str] = mapped_column(String(64), index=True)
    content_b: Mapped[str] = mapped_column(String(64), index=True)
    a_in_b: Mapped[dict[str, Any]] = mapped_column(JSON)
    b_in_a: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SweptContent(Base):
    """A recording already queried against the fingerprint index: later recordings find it
    through their own query, so it is never queried again (until a full re-sweep)."""

    __tablename__ = "swept_contents"

    index_key: Mapped[str] = mapped_column(String(32), primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    swept_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL and a busy timeout: concurrent runs wait, not fail."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    connect_args = {}
    if parsed.drivername in ("postgresql+psycopg", "postgresql+psycopg2") and (
        "connect_timeout" not in parsed.query
    ):
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    return create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)


def alembic_config(url: str) -> Config:
    """Alembic configuration pointing at the packaged migrations and ``url``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


class Catalog:
    """The catalog database: an engine, sessions, and schema upgrades."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (idempotent, safe to run concurrently).

        Two processes opening a fresh catalog at once would both create the tables; a lock
        (PostgreSQL advisory lock, or an flock beside a SQLite file) makes the second wait and
        then find the schema current.
        """
        with (
            database_lock(self.engine, self.url, "catalog-schema-upgrade"),
            self.engine.begin() as connection,
        ):
            config = alembic_config(self.url)
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()


#: Seconds a PostgreSQL connection attempt may take before the catalog counts as unreachable.
CONNECT_TIMEOUT_S = 10


class CatalogError(OneLineError):
    """The catalog cannot be opened; ``str()`` is one line naming the URL or host and the cause."""


def _where(url: str) -> str:
    """``HOST:PORT`` of a server URL, the file of a SQLite URL (never the password)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return str(parsed.database or ":memory:")
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}"


def _cause(exc: BaseException) -> str:
    """The driver's own first line (``Connection refused``), without SQLAlchemy's boilerplate."""
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    first = lines[0] if lines else type(orig).__name__
    return first.rsplit("failed: ", 1)[-1]


def open_catalog(url: str) -> Catalog:
    """A catalog at ``url`` with its schema upgraded to the newest migration.

    Raises :class:`CatalogError` for a malformed URL, an unknown driver, or a database that
    cannot be reached or opened.
    """
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

    try:
        make_url(url)
    except ArgumentError:
        raise CatalogError(
            f"malformed catalog URL {url!r} (expected sqlite:///PATH or "
            "postgresql://USER@HOST:PORT/DATABASE)"
        ) from None
    try:
        catalog = Catalog(url)
    except NoSuchModuleError as exc:
        raise CatalogError(f"catalog URL {make_url(url)!r}: {exc}") from None
    except OSError as exc:  # the SQLite file's folder cannot be made
        raise CatalogError(f"cannot open the catalog at {_where(url)}: {exc.strerror}") from None
    try:
        catalog.upgrade()
    except OperationalError as exc:
        catalog.dispose()
        verb = "open" if make_url(url).get_backend_name() == "sqlite" else "connect to"
        raise CatalogError(f"cannot {verb} the catalog at {_where(url)}: {_cause(exc)}") from None
    return catalog
