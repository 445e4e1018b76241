"""Training runs with torch, numpy and pyarrow alone: no orchestration, database or audio stack.

A GPU machine (``bench/gpu.sh``) or a training node has only those; the trainer, the dataset,
the models and what they import must not need Prefect, SQLAlchemy, librosa, soundfile, pandas,
Dask or museval. A child Python makes those unimportable and imports vocalmine from this
checkout (not through the editable install), then trains a few steps on the CPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.test_shards import TINY, make_segments
from vocalmine.storage.shard_writer import ShardWriter

ROOT = Path(__file__).resolve().parents[1]
BLOCKED = ("prefect", "sqlalchemy", "librosa", "soundfile", "pandas", "dask", "museval")

#: Loaded at start-up by every Python that has its folder on PYTHONPATH (loader workers too).
SITECUSTOMIZE = f'''"""Hides the packages training must not need; forgets the editable install."""
import sys

BLOCKED = {BLOCKED!r}


class Hiding:
    """A meta path finder that finds nothing in BLOCKED, as if it were not installed."""

    def __init__(self, finder):
        self.finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            return None
        return self.finder.find_spec(name, path, target)

    def __getattr__(self, name):
        return getattr(self.finder, name)


sys.meta_path[:] = [
    Hiding(finder)
    for finder in sys.meta_path
    if "editable" not in getattr(finder, "__module__", "")
]
'''

SCRIPT = """
import json, sys
from pathlib import Path

import sitecustomize
import vocalmine.training
from vocalmine.training.dataset import ShardDataset
from vocalmine.training.trainer import TrainConfig, train

try:
    import librosa  # noqa: F401
except ModuleNotFoundError:
    blocked = True
else:
    blocked = False
shards, run = sys.argv[1], sys.argv[2]
config = TrainConfig(
    shard_root=shards, dataset="ds", run_dir=run, width=2, batch_size=4, max_steps=3,
    steps_per_epoch=3, checkpoint_every=3, num_workers=1, shuffle_buffer=4, tensorboard=False,
    device="cpu",
)
result = train(config)
assert ShardDataset(shards, "ds").num_rows() > 0
print(json.dumps({
    "steps": result["steps"], "blocked": blocked, "training": vocalmine.training.__file__,
    "loaded": sorted(m for m in sys.modules if m.partition(".")[0] in sitecustomize.BLOCKED),
}))
"""


def lean_env(folder: Path) -> dict[str, str]:
    """An environment whose Pythons cannot import :data:`BLOCKED` and import vocalmine only
    from this checkout (its sitecustomize.py is written to ``folder``)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return {**os.environ, "PYTHONPATH": f"{folder}{os.pathsep}{ROOT}", "PYTHONUNBUFFERED": "1"}


def test_the_trainer_imports_and_trains_without_the_heavy_packages(tmp_path: Path) -> None:
    with ShardWriter(str(tmp_path / "shards"), "ds", TINY, rows_per_group=4) as writer:
        for pair in range(4):
            writer.write_pair(pair, make_segments(pair, 2))
    child = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "shards"), str(tmp_path / "run")],
        env=lean_env(tmp_path / "site"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    report = json.loads(child.stdout.strip().splitlines()[-1])
    assert report == {
        "steps": 3,
        "blocked": True,
        "training": str(ROOT / "vocalmine" / "training" / "__init__.py"),
        "loaded": [],
    }
