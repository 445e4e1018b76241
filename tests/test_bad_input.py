"""A corpus of bad input, through the real ``vocalmine`` command: every failure is one line that
names the file or setting and the true cause, with the exit code a script can test, no
traceback, and nothing left behind (no empty output folder, no temporary file). Each case
prints ``CORPUS-CASE case | message | exit code`` for the table in the closing notes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.ops_support import run_cli
from vocalmine.storage.catalog import open_catalog
from vocalmine.storage.registry import ModelRegistry
from vocalmine.training.models import build_model


def _one_line(case: str, args: list[str], code: int, expected: str, **env: str) -> str:
    """Run ``vocalmine ARGS``; its stderr must be one ``error:`` line holding ``expected``."""
    result = run_cli(args, env, timeout=300)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    print(f"CORPUS-CASE {case} | {lines[-1] if lines else ''} | {result.returncode}")
    assert result.returncode == code, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert lines == [lines[0]] and expected in lines[0], lines
    return lines[0]


def test_settings_are_checked_before_anything_starts(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    (tmp_path / "unknown.toml").write_text('stft_preset = "hq"\nmax_duration = 3\n')
    _one_line(
        "config: unknown key",
        ["config", "show", "-c", str(tmp_path / "unknown.toml")],
        2,
        f"{tmp_path / 'unknown.toml'}: unknown setting 'max_duration' (did you mean",
    )
    (tmp_path / "typed.yml").write_text("dask_workers: many\n")
    _one_line(
        "config: wrong type",
        ["config", "show", "-c", str(tmp_path / "typed.yml")],
        2,
        f"{tmp_path / 'typed.yml'}: dask_workers: input should be a valid integer",
    )
    (tmp_path / "settings.conf").write_text('{"dask_workers": 3}')
    result = run_cli(["config", "show", "--json", "-c", str(tmp_path / "settings.conf")], {})
    assert result.returncode == 0 and '"dask_workers": 3' in result.stdout, result.stderr
    (tmp_path / "settings.bin").write_bytes(b"\x00\x01 [not settings")
    _one_line(
        "config: unknown format",
        ["config", "show", "-c", str(tmp_path / "settings.bin")],
        2,
        "unknown config format",
    )
    result = run_cli(["config", "show"], {"VOCALMINE_DATADIR": "x"})
    print(f"CORPUS-CASE env: misspelled variable | {result.stderr.strip()} | {result.returncode}")
    assert result.returncode == 0
    assert "VOCALMINE_DATADIR is not a setting, ignored (did you mean 'data_dir'?)" in (
        result.stderr
    )
    library = tmp_path / "library"
    library.mkdir()
    _one_line(
        "scan: malformed catalog URL",
        ["scan", str(library), "--catalog-url", "notaurl"],
        2,
        "malformed catalog URL 'notaurl'",
    )
    started = time.monotonic()
    _one_line(
        "mine: unreachable catalog",
        ["mine", str(library), "--catalog-url", "postgresql://u:secret@127.0.0.1:1/x"],
        2,
        "cannot connect to the catalog at 127.0.0.1:1: Connection refused",
    )
    assert time.monotonic() - started < 20  # no Prefect server was started for it
    _one_line(
        "mine: no Dask scheduler",
        ["mine", str(library), *data, "--dask-address", "tcp://127.0.0.1:1"],
        2,
        "no Dask scheduler at tcp://127.0.0.1:1 after 10 s",
    )
    _one_line(
        "mine: config read first",
        ["mine", str(library), "-c", str(tmp_path / "unknown.toml")],
        2,
        "unknown setting 'max_duration'",
    )


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    data = tmp_path_factory.mktemp("model") / "data"
    catalog = open_catalog(f"sqlite:///{data / 'catalog.db'}")
    model = build_model("unet", "paper", width=4)
    ModelRegistry(str(data / "models"), catalog).register(
        model, name="vocalmine", config={}, manifest=None, metrics={}
    )
    catalog.dispose()
    return data


def _noise(seconds: float = 1.0, rate: int = 22050, scale: float = 0.1) -> np.ndarray:
    rng = np.random.default_rng(1)
    return (scale * rng.standard_normal((int(seconds * rate), 2))).astype(np.float32)


def test_a_separate_batch_names_each_bad_file_and_goes_on(registered: Path, tmp_path: Path) -> None:
    songs = tmp_path / "songs"
    songs.mkdir()
    sf.write(songs / "good.wav", _noise(), 22050)
    sf.write(songs / "flac-named.wav", _noise(), 22050, format="FLAC")
    sf.write(songs / "cut.flac", _noise(4.0), 22050)
    data = (songs / "cut.flac").read_bytes()
    (songs / "cut.flac").write_bytes(data[: len(data) // 3])
    (songs / "notes.mp3").write_text("liner notes, not audio\n" * 20)
    os.mkfifo(songs / "pipe.wav")
    os.symlink(songs / "loop.wav", songs / "loop.wav")
    out = tmp_path / "out"
    args = [str(songs / n) for n in sorted(os.listdir(songs))]
    result = run_cli(
        ["separate", *args, "-o", str(out), "--data-dir", str(registered)], {}, timeout=600
    )
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    for line in errors:
        print(f"CORPUS-CASE separate: {line.split(': ', 2)[1]} | {line} | {result.returncode}")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    expected = {
        "cut.flac": "truncated",
        "notes.mp3": "not audio",
        "pipe.wav": "not a regular file (FIFO)",
        "loop.wav": "symbolic link loop",
    }
    for name, cause in expected.items():
        assert any(f"{songs / name}: " in e and cause in e for e in errors), (name, errors)
    assert len(errors) == len(expected), errors
    assert sorted(os.listdir(out)) == ["flac-named", "good"]  # no empty folder, no temp folder
    for song in ("flac-named", "good"):
        assert sorted(os.listdir(out / song)) == ["accompaniment.wav", "vocals.wav"]


def test_flac_output_of_an_input_above_full_scale_says_it_clips(
    registered: Path, tmp_path: Path
) -> None:
    sf.write(tmp_path / "loud.wav", _noise(scale=4.0), 22050, subtype="FLOAT")
    out = tmp_path / "out"
    base = ["separate", str(tmp_path / "loud.wav"), "--data-dir", str(registered)]
    result = run_cli([*base, "-o", str(out), "-f", "flac"], {}, timeout=600)
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    print(f"CORPUS-CASE separate: -f flac above full scale | {warnings} | {result.returncode}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(warnings) == 1 and "FLAC clips it" in warnings[0] and "-f wav" in warnings[0]
    result = run_cli([*base, "-o", str(tmp_path / "float")], {}, timeout=600)
    assert "warning:" not in result.stderr  # 32-bit float WAV keeps it: no warning
    mix, _ = sf.read(tmp_path / "loud.wav", dtype="float32")
    stems = [
        sf.read(tmp_path / "float" / "loud" / f"{s}.wav")[0] for s in ("vocals", "accompaniment")
    ]
    np.testing.assert_allclose(stems[0] + stems[1], mix, atol=1e-5)


def test_a_second_run_on_a_claimed_output_folder_is_refused(
    registered: Path, tmp_path: Path
) -> None:
    from vocalmine.core.atomic import FolderBusyError, FolderClaim

    sf.write(tmp_path / "song.wav", _noise(), 22050)
    out = tmp_path / "out"
    with FolderClaim(out / "song"):  # another run holds it
        result = run_cli(
            ["separate", str(tmp_path / "song.wav"), "-o", str(out), "--data-dir", str(registered)],
            {},
            timeout=600,
        )
        with pytest.raises(FolderBusyError):
            FolderClaim(out / "song")
    line = next(x for x in result.stderr.splitlines() if x.startswith("error:"))
    print(
        f"CORPUS-CASE separate: output folder claimed by another run | {line} | {result.returncode}"
    )
    assert result.returncode == 1
    assert "output folder is being written by another vocalmine run" in line
    assert not (out / "song").exists()  # the claim's own empty folder is gone again


def test_a_scan_reads_a_flac_file_named_wav(tmp_path: Path) -> None:
    from vocalmine.mining.scan import describe_file

    path = tmp_path / "flac-named.wav"
    sf.write(path, _noise(), 22050, format="FLAC")
    facts = describe_file(str(path), path.stat().st_size, path.stat().st_mtime)
    assert facts.error_reason is None and facts.fields["codec"] == "flac", facts


def test_pairs_why_of_a_symlink_loop_is_not_a_traceback(tmp_path: Path) -> None:
    library = tmp_path / "library"
    library.mkdir()
    os.symlink(library / "loop.wav", library / "loop.wav")
    data = ["--data-dir", str(tmp_path / "data")]
    assert run_cli(["scan", str(library), *data], {}).returncode == 0
    result = run_cli(["pairs", "--why", str(library / "loop.wav"), *data], {})
    shown = result.stdout.splitlines()[:2]
    print(f"CORPUS-CASE pairs --why: symlink loop | {shown} | {result.returncode}")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "symlink_loop" in result.stdout
