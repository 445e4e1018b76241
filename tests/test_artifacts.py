"""Flow artifacts: valid keys, plain cells, inline plots, and publishing never fails a run."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import numpy as np
import pytest
from prefect import flow
from prefect.client.orchestration import get_client

from vocalmine.flows import artifacts


def test_keys_are_made_valid_for_prefect() -> None:
    assert artifacts.artifact_key("Mine counts / Rejections") == "mine-counts-rejections"
    assert artifacts.artifact_key("label_quality") == "label-quality"
    with pytest.raises(ValueError, match="no letters or digits"):
        artifacts.artifact_key("__")


def test_counts_flatten_nested_reasons_into_rows() -> None:
    rows = artifacts.count_rows(
        {
            "pairs": np.int64(3),
            "rejected": {"too_long": 2, "duration_mismatch": 1},
            "shards": {"splits": {"train": {"rows": 4}}, "errors": {}},
        }
    )
    assert rows == [
        {"what": "pairs", "count": 3},
        {"what": "rejected: duration_mismatch", "count": 1},
        {"what": "rejected: too_long", "count": 2},
        {"what": "shards: splits: train: rows", "count": 4},
    ]


def test_cells_become_plain_json_values() -> None:
    assert artifacts.plain(np.float32(0.5)) == 0.5
    assert artifacts.plain(float("nan")) is None
    assert artifacts.plain(Path("/music/a.flac")) == "/music/a.flac"


def test_histogram_is_an_inline_png_with_its_bin_counts() -> None:
    markdown = artifacts.histogram_markdown(
        [0.1, 0.5, 0.55, 0.9], "Label quality", bins=2, value_range=(0.0, 1.0)
    )
    image = markdown.split("data:image/png;base64,", 1)[1].split(")", 1)[0]
    assert base64.b64decode(image).startswith(b"\x89PNG")
    assert "| 0 – 0.5 | 1 |" in markdown
    assert "| 0.5 – 1 | 3 |" in markdown


def test_empty_plots_say_so_instead_of_failing() -> None:
    assert "No values." in artifacts.histogram_markdown([], "q")
    assert "No values." in artifacts.curves_markdown({"train": []}, "curves")


def test_outside_a_run_nothing_is_published() -> None:
    assert artifacts.publish_counts("counts", "title", {"pairs": 1}) is None


def test_a_flow_publishes_tables_plots_and_decisions() -> None:
    @flow
    def publishing() -> None:
        artifacts.publish_counts("mine-counts", "pairs", {"accepted": 2, "rejected": {"drift": 1}})
        artifacts.publish_histogram("label-quality", [0.2, 0.4], "Label quality", bins=4)
        artifacts.publish_curves("training-curves", {"train": [(1, 0.5), (2, 0.3)]}, "Loss")
        artifacts.publish_decision(
            "promotion", {"name": "vocals", "version": 2, "promoted": False, "reason": "worse"}
        )

    run_id = publishing(return_state=True).state_details.flow_run_id

    async def read() -> dict[str, dict]:
        # A raw filter request: the 3.8 client sends explicit nulls that this server rejects.
        async with get_client() as client:
            response = await client.request(
                "POST",
                "/artifacts/filter",
                json={"flow_runs": {"id": {"any_": [str(run_id)]}}, "limit": 50},
            )
        response.raise_for_status()
        return {a["key"]: a for a in response.json() if a["key"]}

    found = asyncio.run(read())
    assert {
        "mine-counts",
        "label-quality",
        "training-curves",
        "promotion",
    } <= set(found)
    assert found["mine-counts"]["type"] == "table"
    assert "data:image/png;base64," in found["label-quality"]["data"]
    assert "not promoted" in found["promotion"]["data"]
