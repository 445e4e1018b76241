"""Evaluation: museval scores aggregated the SiSEC way, oracles as documented, results saved,
rendered and published by the ``evaluate`` flow."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import museval
import numpy as np
import pandas as pd
import pytest
import typer
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, temporary_settings
from typer.testing import CliRunner

from vocalmine.cli.evaluate import evaluate_command
from vocalmine.separation.eval_datasets import (
    EvalTrack,
    load_musdb_track,
    manifest_tracks,
    mir1k_tracks,
    musdb_tracks,
    open_dataset,
)
from vocalmine.separation.oracles import irm_oracle, mix_baseline
from vocalmine.separation.report import render_report, summary_table
from vocalmine.separation.scoring import EvaluationResult, evaluate
from vocalmine.testlib.builder import build_library
from vocalmine.training.models.base import SOURCES


@pytest.fixture(scope="module")
def first_musdb_track(musdb_dir: Path) -> EvalTrack:
    return next(musdb_tracks(musdb_dir, limit=1))


def test_irm_oracle_scores_equal_a_direct_museval_call(first_musdb_track: EvalTrack) -> None:
    track = first_musdb_track
    estimates = irm_oracle(4096, 1024)(track)
    result = evaluate([track], {"IRM1": irm_oracle(4096, 1024)}, dataset="musdb")
    ours = result.tracks().set_index(["source", "metric"])["value"]

    references = np.stack([track.references[s].T for s in SOURCES])
    sdr, _, sir, sar = museval.evaluate(
        references, np.stack([estimates[s].T for s in SOURCES]), win=44100, hop=44100
    )
    for i, source in enumerate(SOURCES):
        for metric, values in (("SDR", sdr), ("SIR", sir), ("SAR", sar)):
            assert ours[(source, metric)] == pytest.approx(np.nanmedian(values[i]), abs=1e-9)
    # the one-track museval figure quoted in shared/data/README.md
    assert ours[("vocals", "SDR")] == pytest.approx(13.36, abs=0.05)


def test_mix_baseline_halves_the_mixture_and_sets_nsdr_to_zero(
    first_musdb_track: EvalTrack,
) -> None:
    track = first_musdb_track
    estimates = mix_baseline(track)
    np.testing.assert_array_equal(estimates["vocals"], track.mixture / 2)
    result = evaluate([track], {"MIX": mix_baseline}, dataset="musdb")
    nsdr = result.tracks().query("metric == 'NSDR'")["value"]
    np.testing.assert_allclose(nsdr, 0.0)


def test_musdb_accompaniment_is_the_sum_of_the_other_stems_in_16_bit(musdb_dir: Path) -> None:
    track = next(musdb_tracks(musdb_dir, limit=1))
    assert track.sample_rate == 44100 and track.mixture.shape[0] == 2
    for audio in (track.mixture, *track.references.values()):
        assert audio.shape == track.mixture.shape
    # 16-bit decode: every reference sample is a multiple of 2**-15 (sums of three of them)
    assert np.allclose(
        track.references["vocals"] * 32768, np.round(track.references["vocals"] * 32768)
    )


def test_known_musdb_quirk_is_reported_not_hidden(musdb_dir: Path) -> None:
    track = load_musdb_track(musdb_dir / "PR - Oh No.stem.mp4")
    assert "differs from the sum of its stems" in track.note
    assert "almost no vocals (22 dB below the mixture)" in track.note


def synthetic_result() -> EvaluationResult:
    """Two tracks, two systems, known frame values (one NaN frame)."""
    rows = []
    values = {
        ("MIX", "a"): [0.0, 1.0, 2.0],
        ("MIX", "b"): [1.0, 1.0, 1.0],
        ("model", "a"): [5.0, np.nan, 7.0],
        ("model", "b"): [2.0, 4.0, 9.0],
    }
    for (system, track), frames in values.items():
        for source in SOURCES:
            for metric in ("SDR", "SIR", "SAR"):
                for i, v in enumerate(frames):
                    rows.append((system, track, source, metric, i, v))
    frames = pd.DataFrame(rows, columns=["system", "track", "source", "metric", "frame", "value"])
    return EvaluationResult(frames, "synthetic", {"model": "test"}, {"b": "quiet"})


def test_median_over_frames_then_over_tracks_and_nsdr() -> None:
    result = synthetic_result()
    summary = result.summary().set_index(["system", "source", "metric"])
    # model: track a → median(5, 7) = 6 (NaN frame ignored); track b → 4; over tracks → 5
    assert summary.loc[("model", "vocals", "SDR"), "median"] == pytest.approx(5.0)
    assert summary.loc[("model", "vocals", "SDR"), "mean"] == pytest.approx(5.0)
    # NSDR per track: a → 6 - 1, b → 4 - 1
    assert summary.loc[("model", "vocals", "NSDR"), "median"] == pytest.approx(4.0)
    assert summary.loc[("MIX", "accompaniment", "NSDR"), "median"] == pytest.approx(0.0)


def test_results_are_saved_as_json_and_parquet_and_rendered(tmp_path: Path) -> None:
    result = synthetic_result()
    paths = result.save(tmp_path)
    summary = json.loads(paths["summary"].read_text())
    assert summary["scores"]["model"]["vocals"]["SDR"]["median"] == 5.0
    assert "16-bit" in summary["decoding"]
    assert len(pd.read_parquet(paths["frames"])) == len(result.frames)
    assert set(pd.read_parquet(paths["tracks"]).metric) == {"SDR", "SIR", "SAR", "NSDR"}
    report = render_report(result, tmp_path)
    text = report.read_text()
    assert "| system | source | SDR | SIR | SAR | NSDR | SDR mean | tracks |" in text
    assert "| model | vocals | 5.00 |" in text and "b: quiet" in text
    for metric in ("sdr", "sir", "sar"):
        assert (tmp_path / f"{metric}_boxplot.png").read_bytes().startswith(b"\x89PNG")
    assert list(summary_table(result).system) == ["MIX", "MIX", "model", "model"]


def test_mir1k_clips_are_drawn_reproducibly_with_mono_mixtures(mir1k_dir: Path) -> None:
    first = [t.name for t in mir1k_tracks(mir1k_dir, count=3, seed=0)]
    assert first == [t.name for t in mir1k_tracks(mir1k_dir, count=3, seed=0)]
    track = next(mir1k_tracks(mir1k_dir, count=1))
    assert track.mixture.shape[0] == 1
    np.testing.assert_allclose(
        track.mixture, track.references["vocals"] + track.references["accompaniment"]
    )


@pytest.fixture(scope="module")
def small_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three short synthetic songs built by the library builder (WAV and MP3 originals)."""
    root = tmp_path_factory.mktemp("library") / "lib"
    build_library("synthetic", root, count=3, duration_range=(25.0, 30.0), seed=0)
    return root


def test_a_test_librarys_answer_key_is_a_dataset_aligned_to_its_originals(
    small_library: Path,
) -> None:
    manifest = json.loads((small_library.parent / "lib.truth" / "manifest.json").read_text())
    codecs = {s["original"]["codec"] for s in manifest["songs"] if s["original"]}
    assert "mp3" in codecs  # the MP3 codec delay must be undone to line up with the stems
    dataset = open_dataset(small_library)
    tracks = list(dataset.tracks)
    assert dataset.label == "library:lib" and "24-bit FLAC" in dataset.decoding
    assert len(tracks) == sum(1 for s in manifest["songs"] if s["original"] and s["stems"])
    for track in tracks:  # the original lines up with its stems (MP3 delay undone)
        residual = track.mixture - track.references["vocals"] - track.references["accompaniment"]
        assert np.sum(residual**2) < 0.01 * np.sum(track.mixture**2), track.name
    mp3 = [t for t in tracks if "MP3" in t.note][:1]
    result = evaluate(mp3, {"IRM1": irm_oracle(2048, 512)}, dataset=dataset.label)
    sdr = result.tracks().query("metric == 'SDR'").set_index("source")["value"]
    assert sdr["vocals"] > 5 and sdr["accompaniment"] > 10
    answer_key = small_library.parent / "lib.truth" / "manifest.json"
    assert len(list(manifest_tracks(answer_key, limit=1))) == 1


def test_evaluate_command_runs_the_flow_and_publishes_artifacts(
    mir1k_dir: Path, tmp_path: Path
) -> None:
    app = typer.Typer()
    app.command("evaluate")(evaluate_command)
    app.command("noop")(lambda: None)
    out = tmp_path / "eval"
    args = ["evaluate", str(mir1k_dir), "--model", "untrained", "--post", "none,binarize"]
    args += ["--limit", "1", "--out", str(out), "--data-dir", str(tmp_path / "data")]
    # the local API server may start slowly on a busy machine (Prefect waits 20 s by default)
    with temporary_settings({PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: 180}):
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["scores"]) == {"MIX", "IRM1", "model", "model+binarize(a=10)"}
    assert "UNTRAINED" in summary["systems"]["model"]
    assert (out / "report.md").exists() and "IRM1" in result.output

    async def read() -> dict[str, dict]:
        async with get_client() as client:
            response = await client.request(
                "POST",
                "/artifacts/filter",
                json={
                    "artifacts": {"key": {"any_": ["evaluation-scores", "evaluation-report",
                                                   "evaluation-sdr"]}},
                    "limit": 10,
                },
            )  # fmt: skip
        response.raise_for_status()
        return {a["key"]: a for a in response.json()}

    found = asyncio.run(read())
    assert found["evaluation-scores"]["type"] == "table"
    assert "model+binarize(a=10)" in json.dumps(found["evaluation-scores"]["data"])
    assert "data:image/png;base64," in found["evaluation-report"]["data"]
    assert found["evaluation-sdr"]["type"] == "image"


def test_unknown_dataset_is_a_one_line_error(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command("evaluate")(evaluate_command)
    app.command("noop")(lambda: None)
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error:") and "\n" not in result.output.strip()


def test_a_track_without_vocals_is_skipped_with_a_note() -> None:
    rng = np.random.default_rng(0)
    accompaniment = rng.standard_normal((1, 8000)).astype(np.float32)
    quiet = EvalTrack(
        "quiet",
        accompaniment,
        {"vocals": np.zeros_like(accompaniment), "accompaniment": accompaniment},
        8000,
    )
    loud = EvalTrack(
        "loud", accompaniment * 2, {"vocals": accompaniment, "accompaniment": accompaniment}, 8000
    )
    result = evaluate([quiet, loud], {"MIX": mix_baseline}, dataset="d")
    assert set(result.frames.track) == {"loud"}
    assert result.notes["quiet"] == "skipped: no vocals in the reference"
