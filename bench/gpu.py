"""GPU check and training benchmark in one run: what ``bench/gpu.sh`` runs on a lent GPU machine.

It needs torch, numpy, pyarrow (and rich for the table) and this checkout on ``PYTHONPATH``,
nothing installed. For each ``KIND[:PRESET]`` (default ``unet`` on ``paper`` shards and
``spleeter`` on ``spleeter`` shards, as written by ``bench/gpu_prepare.py``):

1. **forward check**: the same seeded model in eval mode on a batch of shard patches, on the CPU
   and on the device in fp32 (TF32 off): the largest absolute difference of the masks; also the
   difference of the device's bf16-autocast, channels-last forward;
2. **compute**: training steps (forward, loss, backward, Adam) under bf16 autocast with
   channels-last tensors on a batch already on the device, at a few batch sizes: samples/s and
   achieved TFLOP/s from :func:`training.models.flops.conv_macs` (a step ≈ 3 forwards, 2 FLOP
   per multiply-add), and its fraction of the bf16 matmul peak measured first (a large
   ``torch.matmul``; fp32 on the CPU);
3. **trainer**: :func:`training.trainer.train` on the shards for a fixed number of steps, loader
   workers included: samples/s after warm-up, first and last loss, validation L1.

A kind this checkout does not have is skipped with a message. Results go to ``gpu.json`` in
``--out`` (default ``$OUT``, else ``bench/results``), rewritten after every kind so a run cut
short keeps what it measured. ``--cpu`` (or no GPU) runs the same on the CPU with tiny sizes.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import vocalmine.training  # noqa: E402
from vocalmine.core.atomic import atomic_write_text  # noqa: E402
from vocalmine.storage.shard_schema import read_manifest  # noqa: E402
from vocalmine.training.config import MODEL_KINDS, TrainConfig  # noqa: E402
from vocalmine.training.dataset import ShardDataset  # noqa: E402
from vocalmine.training.losses import separation_loss  # noqa: E402
from vocalmine.training.models import SeparationModel, build_model  # noqa: E402
from vocalmine.training.models.flops import conv_macs  # noqa: E402
from vocalmine.training.trainer import train  # noqa: E402

SHARDS = ROOT / "bench" / "gpu-shards"
DEFAULT_KINDS = ["unet", "spleeter:spleeter"]
#: Batch sizes of the compute measurement per preset, on a GPU.
GPU_BATCHES = {"paper": [16, 64], "spleeter": [4, 16]}
#: Trainer batch per preset, on a GPU.
GPU_TRAIN_BATCH = {"paper": 32, "spleeter": 8}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kinds", nargs="*", default=DEFAULT_KINDS, help="KIND[:PRESET] to run")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU with tiny sizes")
    parser.add_argument("--shards", type=Path, default=SHARDS, help="bench/gpu_prepare.py output")
    parser.add_argument(
        "--out", type=Path, default=Path(os.environ.get("OUT") or ROOT / "bench/results")
    )
    parser.add_argument("--width", type=int, help="first layer's channels (GPU 16, CPU 4)")
    parser.add_argument("--steps", type=int, help="trainer steps (GPU 60, CPU 3)")
    parser.add_argument("--compute-steps", type=int, help="timed compute steps (GPU 20, CPU 2)")
    parser.add_argument("--workers", type=int, help="trainer loader workers (GPU 4, CPU 0)")
    parser.add_argument("--budget-s", type=float, default=420.0, help="skip phases after this")
    return parser.parse_args(argv)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def checkout_report() -> dict[str, Any]:
    """Where vocalmine was imported from: it must be this checkout, not an installed copy."""
    training = Path(vocalmine.training.__file__).resolve()
    if not training.is_relative_to(ROOT):
        raise SystemExit(f"vocalmine.training comes from {training}, not from {ROOT}")
    shm = shutil.disk_usage("/dev/shm").total if Path("/dev/shm").exists() else None
    return {
        "vocalmine_training": str(training),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "dev_shm_bytes": shm,
    }


def matmul_peak(device: torch.device, size: int, iters: int) -> dict[str, Any]:
    """Achieved TFLOP/s of a ``size``² matmul: bf16 on a GPU, fp32 on the CPU (also the peak
    ``bench/training.py`` reports)."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        torch.matmul(a, b)
    sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        torch.matmul(a, b)
    sync(device)
    seconds = (time.perf_counter() - start) / iters
    return {
        "dtype": str(dtype).removeprefix("torch."),
        "size": size,
        "tflops": 2 * size**3 / seconds / 1e12,
    }


def shard_batch(
    shards: Path, preset: str, model: SeparationModel, batch: int
) -> dict[str, torch.Tensor]:
    """The first ``batch`` train patches, scaled as the model reads them."""
    dataset = ShardDataset(
        str(shards),
        preset,
        "train",
        batch_size=batch,
        shuffle=False,
        normalise=model.input_scaling == "peak",
    )
    return next(iter(dataset))


def forward_check(
    model: SeparationModel, mix: torch.Tensor, device: torch.device
) -> dict[str, Any]:
    """Max |CPU − device| of the masks in fp32 (TF32 off), and of the device's bf16 forward."""
    model = copy.deepcopy(model).eval()
    with torch.no_grad():
        reference = model(mix)
        flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        try:
            model.to(device)
            fp32 = model(mix.to(device)).cpu()
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags
        model.to(memory_format=torch.channels_last)
        fast = mix.to(device).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            bf16 = model(fast).float().cpu()
    return {
        "batch": mix.shape[0],
        "fp32_max_abs_diff": (fp32 - reference).abs().max().item(),
        "bf16_max_abs_diff": (bf16 - reference).abs().max().item(),
        "mask_range": [reference.min().item(), reference.max().item()],
        "input_max": mix.max().item(),
    }


def compute_throughput(
    model: SeparationModel,
    sample: dict[str, torch.Tensor],
    device: torch.device,
    batch: int,
    steps: int,
    step_flops: float,
    peak: float,
) -> dict[str, Any]:
    """Samples/s and TFLOP/s of training steps on one batch resident on the device."""
    gpu = device.type == "cuda"
    model = copy.deepcopy(model).to(device).train()
    model.to(memory_format=torch.channels_last)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)
    repeat = -(-batch // sample["mix"].shape[0])
    mix = sample["mix"].repeat(repeat, 1, 1, 1)[:batch].to(device)
    mix = mix.contiguous(memory_format=torch.channels_last)
    targets = sample["targets"].repeat(repeat, 1, 1, 1, 1)[:batch].to(device)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=gpu):
            masks = model(mix)
        loss, _ = separation_loss(masks, mix, targets)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    if gpu:
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(3):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    rate = batch * steps / (time.perf_counter() - start)
    tflops = rate * step_flops / 1e12
    row = {
        "batch": batch,
        "samples_per_s": rate,
        "tflops": tflops,
        "fraction_of_peak": tflops / peak,
    }
    if gpu:
        row["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return row


def trainer_run(
    args: argparse.Namespace, kind: str, preset: str, batch: int, workers: int, device: torch.device
) -> dict[str, Any]:
    """:func:`train` for ``args.steps`` steps; samples/s after the first quarter of them."""
    times: list[float] = []
    with tempfile.TemporaryDirectory() as run_dir:
        config = TrainConfig(
            shard_root=str(args.shards),
            dataset=preset,
            run_dir=run_dir,
            name=f"gpu-{kind}",
            model=kind,
            preset=preset,
            width=args.width,
            batch_size=batch,
            steps_per_epoch=args.steps + 1,
            max_steps=args.steps,
            num_workers=workers,
            shuffle_buffer=8,
            checkpoint_every=args.steps,
            val_max_batches=1,
            log_every=max(1, args.steps // 4),
            device=device.type,
            tensorboard=False,
        )
        result = train(config, on_step=lambda step, loss: times.append(time.perf_counter()))
    warm = max(1, len(times) // 4)
    rate = (
        batch * (len(times) - 1 - warm) / (times[-1] - times[warm])
        if len(times) > warm + 1
        else None
    )
    return {
        "batch": batch,
        "workers": workers,
        "steps": result["steps"],
        "samples_per_s": rate,
        "first_loss": result["losses"][0],
        "last_loss": result["losses"][-1],
        "val_l1": result["validation"].get("l1"),
    }


def bench_kind(
    args: argparse.Namespace, spec: str, device: torch.device, peak: float, deadline: float
) -> dict[str, Any]:
    """The three measurements of one ``KIND[:PRESET]``; ``skipped`` says why one was not run."""
    kind, _, preset = spec.partition(":")
    preset = preset or ("spleeter" if kind == "spleeter" else "paper")
    out: dict[str, Any] = {"kind": kind, "preset": preset, "width": args.width}
    if kind not in MODEL_KINDS:
        out["skipped"] = (
            f"model kind {kind!r} does not exist in this checkout ({', '.join(MODEL_KINDS)})"
        )
        return out
    if not (args.shards / preset / "manifest.json").exists():
        out["skipped"] = f"no {preset!r} shards in {args.shards}: run python bench/gpu_prepare.py"
        return out
    shape = tuple(read_manifest(str(args.shards), preset)["shape"])
    torch.manual_seed(0)
    model = build_model(kind, preset, width=args.width)
    macs = conv_macs(model, shape)["total"]
    step_flops = 3 * 2 * macs
    out.update(
        shape=list(shape),
        forward_gmac=macs / 1e9,
        parameters=sum(p.numel() for p in model.parameters()),
    )
    gpu = device.type == "cuda"
    batches = GPU_BATCHES.get(preset, [8]) if gpu else [2]
    sample = shard_batch(args.shards, preset, model, min(max(batches), 8))
    out["forward_check"] = forward_check(model, sample["mix"][:2], device)
    out["compute"] = []
    for batch in batches:
        if time.perf_counter() > deadline:
            out["compute"].append({"batch": batch, "skipped": "time budget spent"})
            continue
        row = compute_throughput(model, sample, device, batch, args.compute_steps, step_flops, peak)
        out["compute"].append(row)
        print(
            f"{kind}/{preset} compute batch {batch}: {row['samples_per_s']:.1f} samples/s, "
            f"{row['tflops']:.2f} TFLOP/s ({row['fraction_of_peak']:.1%} of peak)",
            flush=True,
        )
    del model
    if gpu:
        torch.cuda.empty_cache()
    if time.perf_counter() > deadline:
        out["trainer"] = {"skipped": "time budget spent"}
        return out
    batch = GPU_TRAIN_BATCH.get(preset, 8) if gpu else 2
    try:
        out["trainer"] = trainer_run(args, kind, preset, batch, args.workers, device)
    except RuntimeError as error:  # e.g. loader workers killed for want of shared memory
        if not args.workers:
            raise
        print(f"trainer with {args.workers} workers failed ({error}); again with 0", flush=True)
        out["trainer"] = {"error": str(error), **trainer_run(args, kind, preset, batch, 0, device)}
    rate = out["trainer"]["samples_per_s"]
    if rate:
        out["trainer"]["tflops"] = rate * step_flops / 1e12
        out["trainer"]["fraction_of_peak"] = out["trainer"]["tflops"] / peak
    return out


def table_rows(row: dict[str, Any], peak: float) -> list[list[str]]:
    """Table lines of one kind: the forward check, each compute batch, the trainer."""
    head = [row["kind"], row["preset"]]
    if "skipped" in row or "error" in row:
        return [[*head, "", "", "", "", row.get("skipped") or row["error"]]]
    check = row["forward_check"]
    diffs = f"fp32 {check['fp32_max_abs_diff']:.1e}, bf16 {check['bf16_max_abs_diff']:.1e}"
    lines = [[*head, "forward |cpu − device|", str(check["batch"]), "", "", diffs]]
    for what, values in [*(("compute", c) for c in row["compute"]), ("trainer", row["trainer"])]:
        rate = values.get("samples_per_s")
        if rate is None:
            lines.append(
                [*head, what, str(values.get("batch", "")), "", "", values.get("skipped", "")]
            )
            continue
        tflops = values.get("tflops", 0.0)
        note = (
            f"loss {values['first_loss']:.4f} → {values['last_loss']:.4f}"
            if what == "trainer"
            else ""
        )
        lines.append(
            [
                *head,
                what,
                str(values["batch"]),
                f"{rate:.1f}",
                f"{tflops:.3f} ({tflops / peak:.1%})",
                note,
            ]
        )
    return lines


def print_table(report: dict[str, Any]) -> None:
    """A summary table of the checks and measurements."""
    from rich.console import Console
    from rich.table import Table

    peak = report["peak"]
    table = Table(
        title=f"{report['device']}: {peak['dtype']} matmul peak {peak['tflops']:.2f} TFLOP/s"
    )
    for column in ("kind", "preset", "what", "batch", "samples/s", "TFLOP/s (of peak)", "note"):
        table.add_column(column)
    for row in report["kinds"]:
        for line in table_rows(row, peak["tflops"]):
            table.add_row(*line)
    Console(width=160).print(table)


def main(argv: list[str] | None = None) -> int:
    """Run the checks and measurements; writes ``gpu.json``."""
    args = parse_args(argv)
    started = time.perf_counter()
    deadline = started + args.budget_s
    gpu = torch.cuda.is_available() and not args.cpu
    device = torch.device("cuda" if gpu else "cpu")
    args.width = args.width or (16 if gpu else 4)
    args.steps = args.steps or (60 if gpu else 3)
    args.compute_steps = args.compute_steps or (20 if gpu else 2)
    args.workers = (4 if gpu else 0) if args.workers is None else args.workers
    if gpu:
        torch.backends.cudnn.benchmark = True
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if gpu else f"{platform.machine()} CPU",
        "checkout": checkout_report(),
        "peak": matmul_peak(device, *((8192, 50) if gpu else (1024, 5))),
        "kinds": [],
    }
    print(f"{report['device']}: matmul peak {report['peak']['tflops']:.1f} TFLOP/s", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "gpu.json"
    for spec in args.kinds:
        try:
            row = bench_kind(args, spec, device, report["peak"]["tflops"], deadline)
        except Exception as error:  # one kind's failure must not cost the others' figures
            traceback.print_exc()
            kind, _, preset = spec.partition(":")
            row = {"kind": kind, "preset": preset, "error": f"{type(error).__name__}: {error}"}
        if "skipped" in row:
            print(f"{spec}: skipped: {row['skipped']}", flush=True)
        report["kinds"].append(row)
        report["seconds"] = time.perf_counter() - started
        atomic_write_text(path, json.dumps(report, indent=1))
    report["seconds"] = time.perf_counter() - started
    atomic_write_text(path, json.dumps(report, indent=1))
    print_table(report)
    print(f"wrote {path} in {report['seconds']:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
