"""Scale-out by configuration only: Prefect server on PostgreSQL, catalog on PostgreSQL, mining
tasks on a real Dask scheduler with two worker processes, shards on an fsspec URL.

Nothing is mocked: a PostgreSQL server, ``prefect server start``, ``dask scheduler`` and two
``dask worker`` processes run on loopback, and ``vocalmine mine`` is started as an operator would,
with environment variables only.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from distributed import Client

from tests.ops_support import dask_cluster, make_library, run_cli, snapshot
from tests.pg import PostgresServer, free_port
from vocalmine.flows.dashboard import running_server

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_a_mining_run_goes_through_postgres_prefect_and_a_dask_cluster(
    postgres_server: PostgresServer, mir1k_dir: Path, tmp_path: Path
) -> None:
    library = make_library(tmp_path / "library", mir1k_dir, pairs=2, clips=2)
    prefect_db = postgres_server.create_database("prefect_scale_out")
    catalog_url = postgres_server.create_database("catalog_scale_out")
    prefect_url = prefect_db.replace("postgresql+psycopg://", "postgresql+asyncpg://")
    shard_url = f"file://{tmp_path / 'shards'}"
    with (
        running_server(
            port=free_port(), database_url=prefect_url, log_path=tmp_path / "prefect.log"
        ) as api,
        dask_cluster(2, env={"PREFECT_API_URL": api}) as address,
    ):
        result = run_cli(
            ["mine", str(library)],
            {
                "PREFECT_API_URL": api,
                "VOCALMINE_DATA_DIR": str(tmp_path / "data"),
                "VOCALMINE_CATALOG_URL": catalog_url,
                "VOCALMINE_DASK_ADDRESS": address,
                "VOCALMINE_SHARD_ROOT": shard_url,
                "VOCALMINE_SEGMENT_SKIP_S": "0",
            },
            timeout=900,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        with Client(address, timeout=60) as client:
            prefixes = client.run_on_scheduler(
                lambda dask_scheduler: {
                    name: sum(prefix.state_counts.values())
                    for name, prefix in dask_scheduler.task_prefixes.items()
                }
            )

    # the mining tasks ran on the cluster's workers
    assert any(name.startswith("fingerprint") for name in prefixes), prefixes
    # and so did the discovery sweep, each worker reading the on-disk index itself
    assert any(name.startswith("sweep") for name in prefixes), prefixes
    assert any(name.startswith("process") for name in prefixes), prefixes

    # the catalog lives in PostgreSQL and holds the mined pairs; the shards at the fsspec URL
    mined = snapshot(catalog_url, str(tmp_path / "shards"), "default")
    assert [p[2] for p in mined["pairs"]] == ["mined", "mined"]
    assert mined["manifest_counts"]["pairs"] == 2
    assert len(mined["shard_rows"]) == mined["manifest_counts"]["rows"] > 0
    assert not (tmp_path / "data" / "catalog.db").exists()

    # Prefect's own state lives in PostgreSQL too
    dsn = prefect_db.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as connection:
        runs = connection.execute(
            "SELECT f.name, r.state_type FROM flow_run r JOIN flow f ON f.id = r.flow_id"
        ).fetchall()
        artifacts = {
            row[0] for row in connection.execute("SELECT key FROM artifact WHERE key IS NOT NULL")
        }
    assert ("mine", "COMPLETED") in runs
    assert {"mining-counts", "label-quality"} <= artifacts
