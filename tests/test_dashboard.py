"""The ops dashboard in a real headless browser: a finished mining run and its artifacts.

``vocalmine dashboard``'s server (the same code path: :func:`flows.dashboard.running_server`)
runs on loopback, ``vocalmine mine`` reports a run to it, and Debian's Chromium, driven by
playwright's Python package (its bundled browsers are never downloaded), opens the run page, the
counts table and the label-quality histogram. ``DASHBOARD_SCREENSHOTS=DIR`` keeps the
screenshots (docs/dashboard.png is one of them).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest

from tests.ops_support import make_library, run_cli
from tests.pg import free_port
from vocalmine.flows.dashboard import running_server

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 90_000


def _mine_run_id(api: str) -> str:
    response = httpx.post(
        f"{api}/flow_runs/filter",
        json={"flows": {"name": {"any_": ["mine"]}}, "sort": "START_TIME_DESC", "limit": 1},
        timeout=30,
    )
    response.raise_for_status()
    (run,) = response.json()
    assert run["state_type"] == "COMPLETED"
    return run["id"]


def test_the_dashboard_shows_a_finished_mining_run_with_its_artifacts(
    mir1k_dir: Path, tmp_path: Path
) -> None:
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed: apt-get install chromium (make setup does)")
    shots = Path(os.environ.get("DASHBOARD_SCREENSHOTS", tmp_path / "shots"))
    shots.mkdir(parents=True, exist_ok=True)
    library = make_library(tmp_path / "library", mir1k_dir, pairs=2, clips=2)
    with running_server(port=free_port(), log_path=tmp_path / "prefect.log") as api:
        env = {
            "PREFECT_API_URL": api,
            "VOCALMINE_DATA_DIR": str(tmp_path / "data"),
            "VOCALMINE_SEGMENT_SKIP_S": "0",
            "VOCALMINE_DASK_WORKERS": "1",
        }
        mined = run_cli(["mine", str(library)], env, timeout=900)
        assert mined.returncode == 0, mined.stdout[-3000:] + mined.stderr[-3000:]
        run_id = _mine_run_id(api)
        ui = api.removesuffix("/api")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=BROWSER_ARGS,  # playwright gives every launch a fresh user-data-dir
                timeout=TIMEOUT_MS,
            )
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.set_default_timeout(TIMEOUT_MS)
                page.goto(f"{ui}/runs/flow-run/{run_id}", wait_until="networkidle")
                page.get_by_text("Completed", exact=True).first.wait_for()
                page.get_by_text("Artifacts", exact=True).first.click()
                page.get_by_text("mining-counts", exact=True).last.wait_for()
                page.get_by_text("label-quality", exact=True).last.wait_for()
                page.screenshot(path=str(shots / "run-artifacts.png"))

                page.get_by_text("mining-counts", exact=True).last.click()
                page.get_by_text("pairs: mined", exact=True).wait_for()
                row = page.get_by_role("row").filter(has_text="pairs: mined")
                assert row.first.inner_text().split()[-1] == "2"
                page.screenshot(path=str(shots / "mining-counts.png"))

                page.go_back(wait_until="networkidle")
                page.get_by_text("Artifacts", exact=True).first.click()
                page.get_by_text("label-quality", exact=True).last.click()
                image = page.locator("img[src^='data:image/png']").first
                image.wait_for()
                assert image.evaluate("img => img.complete && img.naturalWidth") > 100
                page.screenshot(path=str(shots / "label-quality.png"), full_page=True)
            finally:
                browser.close()
