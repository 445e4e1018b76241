"""The command line itself: cheap help, plain flags, readable at 80 columns, one-line errors that
name the file and the true cause, and no catalog left behind by a command that failed early."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import typer

from vocalmine.cli.app import VERBS, register
from vocalmine.cli.common import defaults
from vocalmine.cli.mine import explain_lines

#: Every verb's words for ``--help``.
HELP_WORDS = [[], *(v.split() for v in VERBS if v not in ("library", "config"))]
HELP_WORDS += [["library", "build"], ["config", "show"]]
HEAVY = ("torch", "prefect", "pyarrow", "pandas", "dask")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without VOCALMINE_* (so the data folder is the cwd's)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOCALMINE_")}
    return {**env, **extra}


def vocalmine(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    """``vocalmine ARGS`` through the console-script entry point, in a subprocess."""
    code = "import sys; from vocalmine.cli import main; sys.argv[0] = 'vocalmine'; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=clean_env(**env),
        timeout=300,
    )


def errors(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def test_version() -> None:
    from vocalmine import __version__

    result = vocalmine("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"vocalmine {__version__}"


def test_help_of_every_verb_imports_nothing_heavy() -> None:
    """A behavioural stand-in for "help answers at once": no torch, Prefect, pyarrow, pandas or
    Dask is imported to print any help."""
    code = (
        "import json, sys\n"
        "from vocalmine.cli import main\n"
        "sys.argv = ['vocalmine', *json.loads(sys.argv[1]), '--help']\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code or 0\n"
        f"print(json.dumps([code, [m for m in {HEAVY!r} if m in sys.modules]]))\n"
    )
    for words in HELP_WORDS:
        result = subprocess.run(
            [sys.executable, "-c", code, json.dumps(words)],
            capture_output=True,
            text=True,
            env=clean_env(),
            timeout=120,
        )
        code_, heavy = json.loads(result.stdout.strip().splitlines()[-1])
        assert code_ == 0, (words, result.stderr)
        assert heavy == [], (words, heavy)


def test_no_help_shows_a_bool_type() -> None:
    from typer.testing import CliRunner

    app = register()
    for words in HELP_WORDS:
        result = CliRunner().invoke(app, [*words, "--help"], terminal_width=80)
        assert result.exit_code == 0, (words, result.output)
        assert "<bool>" not in result.output and "BOOLEAN" not in result.output, words
        assert "Usage: " in result.output


def test_train_help_at_80_columns_shows_every_option_in_full() -> None:
    result = vocalmine("train", "--help", COLUMNS="80")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in result.stdout
    command = typer.main.get_command(register()).commands["train"]  # type: ignore[attr-defined]
    for param in command.params:
        for option in (*param.opts, *param.secondary_opts):
            if option.startswith("--"):
                assert any(f"{option} " in f"{line} " for line in lines), option


def test_option_defaults_are_the_config_dataclasses_defaults() -> None:
    from vocalmine.cli import library
    from vocalmine.separation.settings import ChunkSettings, GateSettings, PostProcessing
    from vocalmine.testlib.profiles import PROFILES
    from vocalmine.testlib.sources import SOURCES
    from vocalmine.training.config import AugmentConfig, TrainConfig

    commands = typer.main.get_command(register()).commands  # type: ignore[attr-defined]
    train = {p.name: p.default for p in commands["train"].params}
    for name, value in defaults(TrainConfig).items():
        if train.get(name) is not None:  # None: taken from the settings at run time
            assert train[name] == value, name
    augment = defaults(AugmentConfig)
    assert train["aug_p"] == augment["p"]
    for name in ("channel_swap", "gain", "time_stretch", "pitch_shift"):
        assert train[name] == augment[name], name
    separate = {p.name: p.default for p in commands["separate"].params}
    assert separate["gate_threshold"] == defaults(GateSettings)["threshold"]
    assert separate["gate_min_silence"] == defaults(GateSettings)["min_silence_s"]
    assert separate["binarize"] == defaults(PostProcessing)["binarize_alpha"]
    assert separate["patch_overlap"] == defaults(ChunkSettings)["patch_overlap"]
    assert library.SOURCES == SOURCES and tuple(PROFILES) == library.PROFILES


def test_pairs_why_rounds_figures() -> None:
    lines = explain_lines(
        {
            "pair": 1,
            "offset_s": -0.96641234,
            "evidence": {
                "audio": {"gain_db": 0.765234, "dynamics_db": 62.6912, "votes": 7058.4},
                "checks": [
                    {"check": "unexplained", "value": 0.0014213, "rule": "<=", "threshold": 0.1}
                ],
            },
        }
    )
    assert "offset_s: -0.966" in lines
    assert "audio: gain_db 0.765, dynamics_db 62.7, votes 7058" in lines
    assert any(line.startswith("check unexplained: 0.00142 (<= 0.1)") for line in lines)


def write_song(path: Path) -> Path:
    sf.write(path, np.zeros((1600, 1), dtype="float32"), 16000)
    return path


def test_a_text_file_named_mp3_is_one_line_saying_it_is_not_audio(tmp_path: Path) -> None:
    (tmp_path / "x.mp3").write_text("hello, this is text")
    result = vocalmine("separate", "x.mp3", "-o", "out", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "x.mp3: " in result.stderr and "not audio" in result.stderr
    assert "does not exist" not in result.stderr
    assert not (tmp_path / "vocalmine-data").exists() and not (tmp_path / "out").exists()


def test_output_that_is_a_file_is_one_line_naming_it(tmp_path: Path) -> None:
    write_song(tmp_path / "song.wav")
    (tmp_path / "some_file").write_text("x")
    result = vocalmine("separate", "song.wav", "-o", "some_file", cwd=tmp_path)
    assert result.returncode == 2
    assert errors(result) == ["error: some_file: output folder is a file"], result.stderr
    assert not (tmp_path / "vocalmine-data").exists()


@pytest.mark.parametrize(
    "args",
    [["missing.wav", "-o", "out"], ["song.wav", "-o", "out", "--model", "nobody"]],
    ids=["missing input", "no model"],
)
def test_a_failed_separate_creates_no_catalog(tmp_path: Path, args: list[str]) -> None:
    write_song(tmp_path / "song.wav")
    result = vocalmine("separate", *args, cwd=tmp_path)
    assert result.returncode != 0
    assert len(errors(result)) == 1 and result.stderr.strip().count("\n") == 0, result.stderr
    assert not (tmp_path / "vocalmine-data").exists()
    assert not (tmp_path / "out").exists()
    if "--model" in args:
        assert "vocalmine train" in result.stderr


@pytest.mark.parametrize("verb", ["train", "retrain"])
def test_training_without_shards_is_one_line_before_any_flow_runs(
    tmp_path: Path, verb: str
) -> None:
    result = vocalmine(verb, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr  # no flow-engine traceback
    (line,) = errors(result)
    assert "manifest.json: no shard manifest (mine the dataset first)" in line
    assert not (tmp_path / "vocalmine-data").exists()


def test_an_unknown_model_lists_the_registered_ones(tmp_path: Path) -> None:
    import torch

    from vocalmine.storage.catalog import open_catalog
    from vocalmine.storage.registry import ModelRegistry
    from vocalmine.training.models import build_model

    torch.manual_seed(0)
    data = tmp_path / "data"
    catalog = open_catalog(f"sqlite:///{data / 'catalog.db'}")
    registry = ModelRegistry(str(data / "models"), catalog)
    model = build_model("unet", "paper", width=4)
    for _ in range(2):
        registry.register(model, name="vocalmine", config={}, manifest=None, metrics={})
    registry.promote("vocalmine", 2)
    catalog.dispose()
    write_song(tmp_path / "song.wav")
    for spec in ("nobody", "vocalmine:7"):
        result = vocalmine(
            "separate", "song.wav", "-o", "out", "-m", spec, "--data-dir", str(data), cwd=tmp_path
        )
        assert result.returncode == 2
        assert len(errors(result)) == 1, result.stderr
        assert spec in result.stderr and "vocalmine v1, v2 (current)" in result.stderr
    assert not (tmp_path / "out").exists()
