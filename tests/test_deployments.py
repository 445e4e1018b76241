"""``vocalmine serve``: both deployments registered on their cron schedules; a mining run started
from the deployment processes only the files added since the last run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import typer

from tests.ops_support import ROOT, make_library, stop_group
from tests.pg import free_port
from vocalmine.core.settings import get_settings
from vocalmine.flows.dashboard import running_server
from vocalmine.flows.deployments import build_deployments

MINE_CRON = "0 3 1 1 *"  # far away: only the runs the test starts happen
RETRAIN_CRON = "0 5 1 1 *"
SERVE = (
    "import typer; from vocalmine.cli.serve import serve_command; app = typer.Typer(); "
    "app.command('serve')(serve_command); app.command('noop')(lambda: None); app()"
)


def test_deployments_carry_the_configured_schedules_and_library(tmp_path: Path) -> None:
    settings = get_settings(
        library_root=tmp_path, mine_schedule=MINE_CRON, retrain_schedule=RETRAIN_CRON
    )
    mine, retrain = build_deployments(settings, eval_dataset="/eval", eval_limit=3)
    assert (mine.name, mine.schedules[0].schedule.cron) == ("mine-scheduled", MINE_CRON)
    assert mine.parameters["library"] == str(tmp_path.resolve())
    assert (retrain.name, retrain.schedules[0].schedule.cron) == ("retrain-scheduled", RETRAIN_CRON)
    assert retrain.parameters["eval_dataset"] == "/eval"
    assert [d.name for d in build_deployments(settings, "mine")] == ["mine-scheduled"]


def test_serving_without_a_library_is_a_one_line_error(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from vocalmine.cli.serve import serve_command

    app = typer.Typer()
    app.command("serve")(serve_command)
    app.command("noop")(lambda: None)
    result = CliRunner().invoke(app, ["serve", "--only", "mine", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "no library to mine" in result.output


def _api(api: str, method: str, path: str, body: dict | None = None) -> object:
    response = httpx.request(method, f"{api}{path}", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def _wait_for_run(api: str, run_id: str, timeout: float = 900) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = _api(api, "GET", f"/flow_runs/{run_id}")
        if run["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return run
        time.sleep(2)
    raise AssertionError(f"flow run {run_id} did not finish in {timeout} s")


def _scan_counts(api: str, run_id: str) -> dict[str, object]:
    found = _api(
        api, "POST", "/artifacts/filter", {"flow_runs": {"id": {"any_": [run_id]}}, "limit": 20}
    )
    (counts,) = [a for a in found if a["key"] == "mining-counts"]
    rows = json.loads(counts["data"])
    return {
        r["what"].removeprefix("scan: "): r["count"] for r in rows if r["what"].startswith("scan")
    }


@pytest.mark.slow
def test_serve_registers_both_schedules_and_mines_only_new_files(
    mir1k_dir: Path, tmp_path: Path
) -> None:
    library = make_library(tmp_path / "library", mir1k_dir, pairs=1, clips=1)
    with running_server(port=free_port(), log_path=tmp_path / "prefect.log") as api:
        env = {
            **os.environ,
            "PREFECT_API_URL": api,
            "PREFECT_RUNNER_POLL_FREQUENCY": "2",
            "VOCALMINE_LIBRARY_ROOT": str(library),
            "VOCALMINE_DATA_DIR": str(tmp_path / "data"),
            "VOCALMINE_SEGMENT_SKIP_S": "0",
            "VOCALMINE_DASK_WORKERS": "1",
            "VOCALMINE_MINE_SCHEDULE": MINE_CRON,
            "VOCALMINE_RETRAIN_SCHEDULE": RETRAIN_CRON,
        }
        with open(tmp_path / "serve.log", "wb") as log:
            serving = subprocess.Popen(
                [sys.executable, "-c", SERVE, "serve", "--eval-dataset", str(mir1k_dir)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + 300
            deployments: list = []
            while len(deployments) < 2 and time.monotonic() < deadline:
                assert serving.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
                deployments = _api(api, "POST", "/deployments/filter", {"limit": 10})
                time.sleep(1)
            by_name = {d["name"]: d for d in deployments}
            assert set(by_name) == {"mine-scheduled", "retrain-scheduled"}
            crons = {n: [s["schedule"]["cron"] for s in d["schedules"]] for n, d in by_name.items()}
            assert crons == {"mine-scheduled": [MINE_CRON], "retrain-scheduled": [RETRAIN_CRON]}

            mine_id = by_name["mine-scheduled"]["id"]
            first = _api(api, "POST", f"/deployments/{mine_id}/create_flow_run", {})
            run = _wait_for_run(api, first["id"])
            assert run["state_type"] == "COMPLETED", (tmp_path / "serve.log").read_text()[-3000:]
            assert _scan_counts(api, first["id"])["new"] == 3

            make_library(tmp_path / "library" / "added", mir1k_dir, pairs=1, clips=1)
            second = _api(api, "POST", f"/deployments/{mine_id}/create_flow_run", {})
            assert _wait_for_run(api, second["id"])["state_type"] == "COMPLETED"
            counts = _scan_counts(api, second["id"])
            assert (counts["new"], counts["unchanged"]) == (3, 3)
        finally:
            stop_group(serving)
