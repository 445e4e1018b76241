"""The package's shape: one installed name, and the layering every change must keep.

- ``pip install vocalmine`` adds one top-level package, ``vocalmine``: the stage folders install
  under it, so no ``flows``, ``mining`` or ``storage`` module of ours shadows another project's.
- The import-linter contracts in pyproject.toml hold: cli → flows → separation → training →
  mining | testlib → storage → core, never upwards, and no import cycles inside a package.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = (
    "pyproject.toml",
    "README.md",
    "vocalmine",
    "flows",
    "mining",
    "training",
    "separation",
    "storage",
)


def test_the_wheel_installs_one_top_level_package_holding_every_stage(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(
                path, source / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(path, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        + ["-w", str(tmp_path / "dist"), str(source)],
        check=True,
    )
    (wheel,) = (tmp_path / "dist").glob("vocalmine-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names}
    assert {name for name in top_level if not name.endswith(".dist-info")} == {"vocalmine"}
    for module in (
        "vocalmine/cli/__init__.py",
        "vocalmine/core/settings.py",
        "vocalmine/flows/mine.py",
        "vocalmine/mining/titles.py",
        "vocalmine/training/models/unet.py",
        "vocalmine/separation/masks.py",
        "vocalmine/storage/catalog.py",
        "vocalmine/storage/migrations/versions/0001_initial_catalog_schema.py",
        "vocalmine/testlib/builder.py",
    ):
        assert module in names


def test_the_import_layering_and_acyclicity_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout
