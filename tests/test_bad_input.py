"""A corpus of bad input, through the real ``vocalmine`` command: every failure is one line that
names the file or setting and the true cause, with the exit code a script can test, no
traceback, and nothing left behind (no empty output folder, no temporary file). Each case
prints ``CORPUS-CASE case | message | exit code`` for the table in the closing notes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
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


def test_a_scan_records_a_fifo_with_an_audio_name_as_not_a_regular_file(tmp_path: Path) -> None:
    """Recorded, not skipped in silence (and never opened: reading a FIFO would block)."""
    from sqlalchemy import select

    from vocalmine.mining.scan import scan_library
    from vocalmine.storage.catalog import Track

    library = tmp_path / "library"
    library.mkdir()
    sf.write(library / "song.wav", _noise(), 22050)
    os.mkfifo(library / "pipe.mp3")
    os.mkfifo(library / "notes.txt")  # not an audio name: not part of the library
    catalog = open_catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    result = scan_library(library, catalog)
    with catalog.session() as session:
        rows = {
            Path(t.path).name: (t.status, t.error_reason, t.error_detail)
            for t in session.execute(select(Track)).scalars()
        }
    catalog.dispose()
    assert result.errors == {"not_regular_file": 1}, result.as_dict()
    assert rows["song.wav"][:2] == ("ok", None) and "notes.txt" not in rows, rows
    status, reason, detail = rows["pipe.mp3"]
    assert (status, reason) == ("error", "not_regular_file")
    assert detail == f"{library / 'pipe.mp3'}: not_regular_file: not a regular file (FIFO)"


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


# --- permission denied and disk full ---------------------------------------------------------


def _as_nobody() -> list[str] | None:
    """The command prefix that drops root for the ``nobody`` user (root ignores mode bits), []
    when not root, None when root and neither setpriv nor runuser is installed."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv"):
        return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    if shutil.which("runuser"):
        return ["runuser", "-u", "nobody", "--"]
    return None


def _register_model(data: Path) -> None:
    torch.manual_seed(0)
    catalog = open_catalog(f"sqlite:///{data / 'catalog.db'}")
    ModelRegistry(str(data / "models"), catalog).register(
        build_model("unet", "paper", width=4),
        name="vocalmine",
        config={},
        manifest=None,
        metrics={},
    )
    catalog.dispose()


def test_separate_into_a_read_only_folder_says_permission_denied() -> None:
    wrap = _as_nobody()
    if wrap is None:
        pytest.skip(
            "tests run as root, which ignores mode bits, and neither setpriv nor runuser is "
            "installed to run the command as nobody"
        )
    base = Path(tempfile.mkdtemp(prefix="vm-denied-", dir="/tmp"))  # pytest's folders are 0700
    try:
        base.chmod(0o755)
        for name in ("songs", "data", "home", "out"):
            (base / name).mkdir()
        sf.write(base / "songs" / "song.wav", _noise(), 22050)
        _register_model(base / "data")
        if wrap:  # the input, model and home belong to nobody; the output folder stays root's
            for path in [
                base / "home",
                *base.joinpath("songs").rglob("*"),
                *base.joinpath("data").rglob("*"),
            ]:
                os.chown(path, 65534, 65534)
            for name in ("songs", "data", "home"):
                os.chown(base / name, 65534, 65534)
        else:
            (base / "out").chmod(0o555)
        args = ["separate", str(base / "songs" / "song.wav"), "-o", str(base / "out")]
        args += ["--data-dir", str(base / "data")]
        result = run_cli(args, {"HOME": str(base / "home")}, timeout=300, wrap=wrap)
        lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        print(f"CORPUS-CASE separate: read-only output | {lines} | {result.returncode}")
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
        assert lines == [f"error: {base / 'out'}/.vocalmine-tmp: Permission denied"], lines
        assert list((base / "out").iterdir()) == []
    finally:
        shutil.rmtree(base)


def test_separate_onto_a_full_disk_says_disk_full(registered: Path, tmp_path: Path) -> None:
    """The output folder is a 1 MiB tmpfs in a mount namespace of the command's own (no mount
    is left behind); a 20-s song's float stems need 7 MiB."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("util-linux's unshare is not installed: no private tmpfs for a full disk")
    namespace = [unshare, "--mount"] if os.geteuid() == 0 else [unshare, "-rm"]
    script = tmp_path / "full.sh"
    script.write_text(
        'mount -t tmpfs -o size=1m tmpfs "$OUTDIR" || exit 99\n"$@"\ncode=$?\n'
        'find "$OUTDIR" -mindepth 1 > "$LISTING"\nexit $code\n'
    )
    out, listing = tmp_path / "out", tmp_path / "listing"
    out.mkdir()
    sf.write(tmp_path / "song.wav", _noise(20.0), 22050)
    args = ["separate", str(tmp_path / "song.wav"), "-o", str(out), "--data-dir", str(registered)]
    env = {"OUTDIR": str(out), "LISTING": str(listing)}
    result = run_cli(args, env, timeout=300, wrap=[*namespace, "sh", str(script)])
    if result.returncode == 99:
        pytest.skip(
            f"cannot mount a tmpfs in a private mount namespace here: {result.stderr.strip()}"
        )
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    print(f"CORPUS-CASE separate: disk full | {errors[-1] if errors else ''} | {result.returncode}")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert len(errors) == 1 and errors[0].startswith(f"error: {tmp_path / 'song.wav'}: "), errors
    assert errors[0].endswith("disk full (no space left on device)"), errors
    assert listing.read_text() == ""  # no partial stem, no temporary folder, no output folder


def test_a_real_enospc_is_said_as_disk_full() -> None:
    """The mapping itself, from a real write to /dev/full (wherever a tmpfs cannot be mounted)."""
    from vocalmine.cli.separate import os_error_line

    with pytest.raises(OSError) as caught, open("/dev/full", "wb", buffering=0) as full:
        full.write(b"x")
    line = os_error_line(Path("song.wav"), caught.value)
    assert line == "song.wav: disk full (no space left on device)"
