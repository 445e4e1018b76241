"""Session-wide test setup: an isolated Prefect home, shared data paths, a real PostgreSQL."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_PREFECT_HOME = tempfile.mkdtemp(prefix="vocalmine-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
# Two cores, several processes (Dask workers, DDP ranks): one BLAS/torch thread each avoids a
# tenfold slowdown from oversubscription.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.pop("PREFECT_API_URL", None)
for _name in [k for k in os.environ if k.startswith("VOCALMINE_")]:
    os.environ.pop(_name)

from tests.pg import PostgresServer, find_pg_bin, start_postgres  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MIR1K = SHARED_DATA / "mir1k"
MUSDB = SHARED_DATA / "musdb18-7" / "test"


@pytest.fixture(scope="session")
def mir1k_dir() -> Path:
    """The MIR-1K clips (L = accompaniment, R = vocals); skips when the shared data is absent."""
    if not MIR1K.is_dir():
        pytest.skip(f"MIR-1K clips not found at {MIR1K}")
    return MIR1K


@pytest.fixture(scope="session")
def musdb_dir() -> Path:
    """The MUSDB18-7 test previews; skips when the shared data is absent."""
    if not MUSDB.is_dir():
        pytest.skip(f"MUSDB18-7 test previews not found at {MUSDB}")
    return MUSDB


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server on loopback for the whole session."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL binaries (initdb, pg_ctl) are not installed: `apt-get install "
            "postgresql` (make test does this where apt is available)"
        )
    server = start_postgres(bin_dir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test runs against SQLite and against a real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database(f"vm_{abs(hash(request.node.nodeid)) % 10**10}")
