"""``bench/gpu.sh`` on the CPU: the script a GPU machine runs, with tiny sizes, no installed
package and none of the heavy dependencies (as on that machine)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.test_training_imports import ROOT, lean_env


def test_gpu_bench_runs_on_the_cpu_and_skips_unknown_kinds(tmp_path: Path) -> None:
    shards, out = tmp_path / "shards", tmp_path / "out"
    prepare = [sys.executable, "bench/gpu_prepare.py", "--presets", "paper", "--rows", "4"]
    subprocess.run([*prepare, "--out", str(shards)], cwd=ROOT, check=True, timeout=120)
    env = {**lean_env(tmp_path / "site"), "PYTHON": sys.executable}
    command = [str(ROOT / "bench" / "gpu.sh"), "--cpu", "--shards", str(shards), "--out", str(out)]
    command += ["--steps", "3", "--compute-steps", "1", "unet", "nosuch"]
    child = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert child.returncode == 0, child.stderr[-3000:]
    assert "nosuch: skipped" in child.stdout
    report = json.loads((out / "gpu.json").read_text())
    unet, unknown = report["kinds"]
    assert report["peak"]["tflops"] > 0 and report["checkout"]["vocalmine_training"].startswith(
        str(ROOT)
    )
    assert unet["forward_check"]["fp32_max_abs_diff"] == 0.0  # CPU against CPU
    assert unet["compute"][0]["samples_per_s"] > 0 and unet["compute"][0]["tflops"] > 0
    assert unet["trainer"]["steps"] == 3 and unet["trainer"]["samples_per_s"] > 0
    assert "does not exist" in unknown["skipped"]
