"""Training benchmark: throughput against the FLOP floor, loader speed, and a variant comparison.

What it measures (``python bench/training.py --help`` for the knobs):

1. The device's matmul peak (a big matmul: fp32 on CPU, bf16 on GPU), as the yardstick.
2. Training-step throughput (forward + backward + Adam) of the U-Net of Jansson et al. 2017 on
   512×128 patches, in samples/s, next to the FLOP floor: one forward is 0.754 GMAC (encoder
   0.269, decoder 0.485), a training step ≈ 3 forwards, so achieved TFLOP/s = samples/s × 3 × 2
   × 0.754e9. On a GPU it runs with bf16 autocast and channels-last and tries several batch sizes.
3. The shard loader alone (ShardDataset + DataLoader), in samples/s.
4. A real training comparison: ``unet``, ``spectrogram-channels`` and ``no-skip`` trained for
   the same number of steps on shards built from MIR-1K (mix = L + R, instrumental = L,
   vocals = max(|X_mix| − |X_instr|, 0); paper preset, no skip; clips of one song joined in
   order; one singer held out for validation), with their validation L1 beside two trivial
   baselines (mask 0.5 for both sources; vocals 0 / accompaniment 1).

Prints rich tables and writes ``bench/results/training.json``. The defaults fit in a few minutes
on 2 CPU cores; raise ``--steps`` for a more telling comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from torch import nn
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.gpu import matmul_peak, sync  # noqa: E402
from vocalmine.core.atomic import atomic_write_text  # noqa: E402
from vocalmine.core.audio import load_audio  # noqa: E402
from vocalmine.core.stft import PRESETS, magnitude  # noqa: E402
from vocalmine.storage.shard_schema import Segment  # noqa: E402
from vocalmine.storage.shard_writer import ShardWriter  # noqa: E402
from vocalmine.training.dataset import ShardDataset  # noqa: E402
from vocalmine.training.models import MODEL_KINDS, SOURCES, UNet, build_model  # noqa: E402
from vocalmine.training.models.flops import conv_macs  # noqa: E402
from vocalmine.training.trainer import TrainConfig, evaluate, train  # noqa: E402

MIR1K = ROOT.parent / "shared" / "data" / "mir1k"
RESULTS = ROOT / "bench" / "results" / "training.json"
console = Console(width=200)


def device_name(device: torch.device) -> str:
    """A human name of the device."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def step_throughput(
    model: nn.Module,
    shape: tuple[int, int, int],
    device: torch.device,
    batch: int,
    iters: int,
    *,
    amp: bool,
    channels_last: bool,
) -> float:
    """Samples/s of full training steps (forward, L1 loss, backward, Adam) on random patches."""
    model = model.to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(batch, *shape, device=device)
    y = torch.rand(batch, *shape, device=device) * x
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            out = model(x)
        est = out.reshape(batch, -1, *shape)[:, 0] * x
        loss = (est.float() - y).abs().mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    for _ in range(2):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        step()
    sync(device)
    return batch * iters / (time.perf_counter() - start)


def throughput_rows(args: argparse.Namespace, peak: float) -> list[dict[str, Any]]:
    """Training-step throughput of the paper U-Net (and the two-network separator)."""
    preset = PRESETS["paper"]
    shape = (preset.channels, preset.bins, preset.patch_frames)
    macs = conv_macs(UNet(1, 1), shape)
    step_flops = 3 * 2 * macs["total"]
    rows = []
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    for device in devices:
        on_gpu = device.type == "cuda"
        torch.backends.cudnn.benchmark = on_gpu
        if on_gpu:  # bf16 + channels-last at each batch size, and one fp32 reference
            configs = [(b, True, True) for b in args.gpu_batch_sizes]
            configs.append((args.gpu_batch_sizes[0], False, False))
        else:
            configs = [(args.cpu_batch, False, False)]
        device_peak = peak if device.type == args.peak_device else None
        if device_peak is None:
            device_peak = matmul_peak(device, args.matmul_size, args.matmul_iters)["tflops"]
        for batch, amp, channels_last in configs:
            torch.manual_seed(0)
            try:
                rate = step_throughput(
                    UNet(1, 1),
                    shape,
                    device,
                    batch,
                    args.iters if not on_gpu else 20,
                    amp=amp,
                    channels_last=channels_last,
                )
            except torch.OutOfMemoryError:
                torch.cuda.empty_cache()
                continue
            achieved = rate * step_flops / 1e12
            rows.append(
                {
                    "model": "paper U-Net (one source)",
                    "device": device_name(device),
                    "batch": batch,
                    "precision": "bf16 autocast" if amp else "fp32",
                    "channels_last": channels_last,
                    "samples_per_s": rate,
                    "tflops": achieved,
                    "peak_tflops": device_peak,
                    "fraction_of_peak": achieved / device_peak,
                }
            )
        if not on_gpu:
            torch.manual_seed(0)
            separator = build_model("unet", "paper")
            rate = step_throughput(
                _FirstSource(separator),
                shape,
                device,
                args.cpu_batch,
                args.iters,
                amp=False,
                channels_last=False,
            )
            rows.append(
                {
                    "model": "unet separator (two U-Nets)",
                    "device": device_name(device),
                    "batch": args.cpu_batch,
                    "precision": "fp32",
                    "channels_last": False,
                    "samples_per_s": rate,
                    "tflops": rate * 2 * step_flops / 1e12,
                    "peak_tflops": device_peak,
                    "fraction_of_peak": rate * 2 * step_flops / 1e12 / device_peak,
                }
            )
    return rows


class _FirstSource(nn.Module):
    """Adapts a separator so ``step_throughput`` trains both of its networks."""

    def __init__(self, separator: nn.Module) -> None:
        super().__init__()
        self.separator = separator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.separator(x).sum(dim=1)


def build_mir1k_shards(mir1k: Path, root: Path, valid_singer: str) -> dict[str, Any]:
    """Shards of MIR-1K songs (clips of a song joined in order), paper preset, no skip."""
    preset = PRESETS["paper"]
    songs: dict[tuple[str, str], list[Path]] = defaultdict(list)
    for path in sorted(mir1k.glob("*.flac")):
        match = re.fullmatch(r"(.+)_(\d+)_(\d+)", path.stem)
        if match:
            songs[(match[1], match[2])].append(path)
    if not songs:
        raise FileNotFoundError(f"{mir1k}: no MIR-1K clips (<singer>_<song>_<clip>.flac)")
    writer = ShardWriter(str(root), "mir1k", preset, rows_per_shard=64, rows_per_group=8)
    for pair_id, ((singer, _song), clips) in enumerate(sorted(songs.items())):
        audio = np.concatenate(
            [load_audio(p, sr=preset.sample_rate)[0] for p in sorted(clips)], axis=1
        )
        mix = magnitude(audio[:1] + audio[1:2], preset)
        instrumental = magnitude(audio[:1], preset)
        vocals = np.maximum(mix - instrumental, 0.0)
        segments = []
        for index in range(mix.shape[-1] // preset.patch_frames):
            cut = slice(index * preset.patch_frames, (index + 1) * preset.patch_frames)
            energy = float(np.square(mix[..., cut]).sum()) or 1.0
            segments.append(
                Segment(
                    pair_id=pair_id,
                    segment_index=index,
                    start_s=index * preset.patch_seconds,
                    artist=singer,
                    split="valid" if singer == valid_singer else "train",
                    quality=min(1.0, float(np.square(vocals[..., cut]).sum()) / energy),
                    mix=mix[..., cut],
                    instrumental=instrumental[..., cut],
                    vocals=vocals[..., cut],
                )
            )
        writer.write_pair(pair_id, segments)
    return writer.close()


def loader_rows(root: Path, batch: int, workers_list: list[int], samples: int) -> list[dict]:
    """Samples/s of the shard loader alone (decode, normalise, shuffle, batch)."""
    rows = []
    for workers in workers_list:
        dataset = ShardDataset(str(root), "mir1k", "train", batch_size=batch, repeat=True)
        loader = iter(DataLoader(dataset, batch_size=None, num_workers=workers))
        next(loader)
        start = time.perf_counter()
        seen = 0
        while seen < samples:
            seen += len(next(loader)["pair_id"])
        rows.append(
            {
                "workers": workers,
                "batch": batch,
                "samples": seen,
                "samples_per_s": seen / (time.perf_counter() - start),
            }
        )
        del loader
    return rows


class ConstantMasks(nn.Module):
    """A 'model' that predicts fixed masks: the trivial baselines."""

    def __init__(self, vocals: float, accompaniment: float) -> None:
        super().__init__()
        self.values = (vocals, accompaniment)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.full_like(x, v) for v in self.values], dim=1)


def variant_rows(args: argparse.Namespace, root: Path, work: Path) -> list[dict[str, Any]]:
    """Train each variant for the same budget; validation L1 on the held-out singer."""
    valid = ShardDataset(str(root), "mir1k", "valid", batch_size=args.batch, shuffle=False)
    loader = DataLoader(valid, batch_size=None)
    rows = []
    for label, masks in (
        ("baseline: masks 0.5 / 0.5", (0.5, 0.5)),
        ("baseline: vocals 0, accompaniment 1", (0.0, 1.0)),
    ):
        scores = evaluate(
            ConstantMasks(*masks), loader, torch.device("cpu"), amp=False, channels_last=False
        )
        rows.append(_variant_row(label, scores, steps=0, seconds=0.0, parameters=0))
    for kind in args.variants:
        config = TrainConfig(
            shard_root=str(root),
            dataset="mir1k",
            run_dir=str(work / f"run-{kind}"),
            name=f"bench-{kind}",
            model=kind,
            width=args.width,
            lr=args.lr,
            batch_size=args.batch,
            steps_per_epoch=args.steps,
            max_steps=args.steps,
            num_workers=args.workers,
            log_every=max(1, args.steps // 4),
            checkpoint_every=args.steps,
            tensorboard=False,
            seed=args.seed,
        )
        console.print(f"[bold]training {kind}[/bold] for {args.steps} steps of {args.batch}")
        start = time.perf_counter()
        result = train(config)
        seconds = time.perf_counter() - start
        rows.append(
            _variant_row(kind, result["validation"], args.steps, seconds, result["parameters"])
        )
    return rows


def _variant_row(
    label: str, scores: dict[str, float], steps: int, seconds: float, parameters: int
) -> dict[str, Any]:
    return {
        "variant": label,
        "parameters": parameters,
        "steps": steps,
        "seconds": seconds,
        "val_l1": scores["l1"],
        **{f"val_l1_{s}": scores[f"l1_{s}"] for s in SOURCES},
        "val_samples": scores["samples"],
    }


def show(title: str, rows: list[dict[str, Any]]) -> None:
    """Print rows as a rich table."""
    if not rows:
        return
    table = Table(title=title)
    for key in rows[0]:
        table.add_column(key)
    for row in rows:
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.values()))
    console.print(table)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mir1k", type=Path, default=MIR1K, help="MIR-1K clip folder")
    parser.add_argument("--steps", type=int, default=25, help="training steps per variant")
    parser.add_argument("--batch", type=int, default=4, help="batch size for the comparison")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--width", type=int, default=16, help="first-layer channels (16 = paper)")
    parser.add_argument("--workers", type=int, default=1, help="loader workers while training")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="*", default=list(MODEL_KINDS))
    parser.add_argument("--valid-singer", default="yifen", help="MIR-1K singer held out")
    parser.add_argument("--cpu-batch", type=int, default=4, help="batch of the CPU throughput run")
    parser.add_argument("--iters", type=int, default=4, help="timed CPU training steps")
    parser.add_argument("--gpu-batch-sizes", type=int, nargs="*", default=[16, 32, 64, 128])
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--matmul-iters", type=int, default=10)
    parser.add_argument("--loader-samples", type=int, default=400)
    parser.add_argument("--skip-variants", action="store_true", help="throughput only")
    parser.add_argument("--shard-dir", type=Path, help="keep the MIR-1K shards here")
    parser.add_argument(
        "--shards-only",
        action="store_true",
        help="only build the MIR-1K shards in --shard-dir (e.g. to train on them) and exit",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.peak_device = "cuda" if torch.cuda.is_available() else "cpu"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.shards_only:
        if args.shard_dir is None:
            raise SystemExit("--shards-only needs --shard-dir")
        manifest = build_mir1k_shards(args.mir1k, args.shard_dir, args.valid_singer)
        console.print(f"MIR-1K shards in {args.shard_dir / 'mir1k'}: {manifest['counts']}")
        return 0
    started = time.perf_counter()
    report: dict[str, Any] = {
        "command": " ".join(["python", "bench/training.py", *(argv or sys.argv[1:])]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    preset = PRESETS["paper"]
    macs = conv_macs(UNet(1, 1), (preset.channels, preset.bins, preset.patch_frames))
    report["flop_floor"] = {
        "forward_gmac": macs["total"] / 1e9,
        "encoder_gmac": macs["encoder"] / 1e9,
        "decoder_gmac": (macs["decoder"] + macs["head"]) / 1e9,
        "training_step_gflop_per_sample": 3 * 2 * macs["total"] / 1e9,
        "parameters": sum(p.numel() for p in UNet(1, 1).parameters()),
    }
    show("FLOP floor of the paper U-Net (512×128 patch)", [report["flop_floor"]])
    peak_device = torch.device(args.peak_device)
    report["matmul_peak"] = {
        "device": device_name(peak_device),
        **matmul_peak(
            peak_device, args.matmul_size if peak_device.type == "cpu" else 8192, args.matmul_iters
        ),
    }
    if peak_device.type == "cuda":
        cpu_peak = matmul_peak(torch.device("cpu"), args.matmul_size, args.matmul_iters)
        report["matmul_peak_cpu"] = {"device": device_name(torch.device("cpu")), **cpu_peak}
    show("Matmul peak", [report["matmul_peak"]])
    report["throughput"] = throughput_rows(args, report["matmul_peak"]["tflops"])
    show("Training-step throughput (forward + backward + Adam)", report["throughput"])

    work = Path(tempfile.mkdtemp(prefix="vocalmine-bench-"))
    try:
        if args.mir1k.is_dir():
            shard_root = args.shard_dir or work / "shards"
            start = time.perf_counter()
            manifest = build_mir1k_shards(args.mir1k, shard_root, args.valid_singer)
            report["shards"] = {
                "seconds": time.perf_counter() - start,
                "counts": manifest["counts"],
                "bytes": sum(s["bytes"] for s in manifest["shards"]),
            }
            console.print(f"MIR-1K shards: {manifest['counts']}")
            report["loader"] = loader_rows(shard_root, args.batch, [0, 2], args.loader_samples)
            show("Shard loader alone", report["loader"])
            if not args.skip_variants:
                report["variants"] = variant_rows(args, shard_root, work)
                show(
                    f"Validation L1 after {args.steps} steps of {args.batch} "
                    f"(held-out singer {args.valid_singer})",
                    report["variants"],
                )
        else:
            console.print(f"[yellow]{args.mir1k} not found: loader and variant runs skipped")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["seconds"] = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(report, indent=1))
    console.print(f"wrote {args.out} in {report['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
