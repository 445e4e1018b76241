"""Check the import-linter contracts in pyproject.toml against the source tree.

The stage folders (``flows/ mining/ training/ separation/ storage/``) sit at the repository top
and install as ``vocalmine.flows`` … through setuptools' package-dir mapping. import-linter's
graph builder (grimp) finds a package's modules by walking the folder of its ``__init__``, so it
would see only ``vocalmine/`` and none of the stages. This script lays the installed shape out
in a temporary folder (``vocalmine/`` with each stage copied under it), puts that folder first
on ``PYTHONPATH`` and runs ``lint-imports`` there. Exit status is import-linter's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("flows", "mining", "training", "separation", "storage")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")


def stage_tree(target: Path) -> Path:
    """Copy the package as it installs (``vocalmine`` with the stages under it) into target."""
    package = target / "vocalmine"
    shutil.copytree(ROOT / "vocalmine", package, ignore=IGNORE)
    for stage in STAGES:
        shutil.copytree(ROOT / stage, package / stage, ignore=IGNORE)
    return target


def main(argv: list[str]) -> int:
    """Run lint-imports on the staged tree with the repository's contracts."""
    lint = Path(sys.executable).with_name("lint-imports")
    with tempfile.TemporaryDirectory(prefix="vocalmine-lint-") as tmp:
        stage_tree(Path(tmp))
        env = {**os.environ, "PYTHONPATH": tmp}
        command = [str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache", *argv]
        return subprocess.run(command, cwd=tmp, env=env, check=False).returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
