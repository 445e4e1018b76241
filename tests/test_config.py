"""Settings come from defaults, a config file, VOCALMINE_* variables and options, in that order."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vocalmine.cli import register
from vocalmine.core.settings import get_settings

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_derive_every_location_from_the_data_dir(tmp_path: Path) -> None:
    settings = get_settings(data_dir=tmp_path / "d")
    assert settings.catalog_url == f"sqlite:///{(tmp_path / 'd' / 'catalog.db').resolve()}"
    assert settings.shard_root == str((tmp_path / "d" / "shards").resolve())
    assert (settings.max_duration_diff_s, settings.max_duration_s) == (5.0, 300.0)
    assert settings.stft_preset == "paper" and settings.dask_address is None


def test_file_then_environment_then_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "vocalmine.toml"
    config.write_text(
        '[vocalmine]\nstft_preset = "hq"\nmax_duration_s = 360\ndask_address = "tcp://file:8786"\n'
    )
    assert get_settings(config).stft_preset == "hq"
    monkeypatch.setenv("VOCALMINE_DASK_ADDRESS", "tcp://env:8786")
    monkeypatch.setenv("VOCALMINE_DATA_DIR", str(tmp_path / "env-data"))
    settings = get_settings(config, max_duration_s=200)
    assert settings.dask_address == "tcp://env:8786"
    assert settings.max_duration_s == 200
    assert settings.catalog_url.endswith("env-data/catalog.db")


def test_yaml_files_and_bad_values_are_reported(tmp_path: Path) -> None:
    good = tmp_path / "c.yaml"
    good.write_text("segment_skip_s: 0\n")
    assert get_settings(good).segment_skip_s == 0
    bad = tmp_path / "bad.toml"
    bad.write_text('stft_preset = "huge"\n')
    with pytest.raises(ValueError, match="stft_preset"):
        get_settings(bad)


def test_config_show_prints_effective_settings_with_passwords_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOCALMINE_CATALOG_URL", "postgresql://miner:s3cret@db:5432/vocalmine")
    result = CliRunner().invoke(register(), ["config", "show", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["catalog_url"] == "postgresql://miner:***@db:5432/vocalmine"
    assert "s3cret" not in result.output
    broken = tmp_path / "broken.toml"
    broken.write_text("this is = = not toml")
    result = CliRunner().invoke(register(), ["config", "show", "--config", str(broken)])
    assert result.exit_code == 2


def test_a_light_verb_does_not_import_the_heavy_ones() -> None:
    """`vocalmine config show` must answer at once: it imports no torch, museval or Prefect."""
    probe = (
        "import sys; from vocalmine.cli import main\n"
        "sys.argv = ['vocalmine', 'config', 'show', '--json']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', sorted(m for m in ('torch', 'museval', 'prefect') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert '"stft_preset"' in out
    assert "HEAVY []" in out
