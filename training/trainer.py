"""The training loop: Adam on the masked-spectrogram loss, DDP, checkpoints, early stopping.

One function, :func:`train`, runs in every process of a job (see :mod:`training.ddp`). It
follows the thesis's protocol (seeds/003 §4.2): an *epoch* is a fixed number of optimiser
steps, after which the model is validated on the ``valid`` split and the best version so far
is kept; training stops after ``patience`` epochs without improvement, at ``max_epochs`` or at
``max_steps``. The best weights go to the model registry with their config, the shard manifest
and their validation scores.

Resuming is exact: a checkpoint holds the model, Adam's state, every rank's RNG state, the
step (which fixes the position in the data stream, see :mod:`training.dataset`) and the
early-stopping state; a run restarted from it produces the same losses as one that never
stopped. On GPUs the forward pass runs under bf16 autocast with channels-last tensors.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from vocalmine.storage.shards import manifest_summary, preset_from_dict, read_manifest
from vocalmine.training.augment import AugmentConfig
from vocalmine.training.dataset import ShardDataset
from vocalmine.training.ddp import DistInfo, all_reduce_sum, barrier, cleanup, init_distributed
from vocalmine.training.losses import per_source_error, separation_loss
from vocalmine.training.models import SOURCES, SeparationModel, build_model

CHECKPOINT = "last.pt"
BEST = "best.pt"
RESULT = "result.json"
REGISTERED = "registered.json"

#: How DataLoader workers start (see where it is used).
LOADER_CONTEXT = "forkserver"


@dataclass
class TrainConfig:
    """Everything a training run needs; saved with checkpoints and in the model card."""

    shard_root: str
    dataset: str
    run_dir: str
    name: str = "vocalmine"
    model: str = "unet"
    preset: str | None = None
    width: int = 16
    dropout: float = 0.5
    loss: str = "l1"
    volume_balance: bool = False
    lr: float = 1e-4
    batch_size: int = 8
    steps_per_epoch: int = 800
    max_epochs: int = 500
    max_steps: int | None = None
    patience: int = 10
    min_quality: float = 0.0
    augment: dict[str, Any] = field(default_factory=dict)
    num_workers: int = 2
    shuffle_buffer: int = 256
    seed: int = 0
    checkpoint_every: int = 200
    val_max_batches: int | None = None
    log_every: int = 10
    device: str = "auto"
    amp: bool | None = None
    channels_last: bool | None = None
    tensorboard: bool = True
    model_root: str | None = None
    catalog_url: str | None = None
    register: bool = True
    promote: bool = False
    run_id: str | None = None

    def __post_init__(self) -> None:
        if self.loss not in ("l1", "mse"):
            raise ValueError(f"unknown loss {self.loss!r}; choose 'l1' or 'mse'")
        if self.batch_size < 1 or self.steps_per_epoch < 1 or self.checkpoint_every < 1:
            raise ValueError("batch_size, steps_per_epoch and checkpoint_every must be >= 1")
        AugmentConfig(**self.augment)

    @property
    def total_steps(self) -> int:
        """The step budget: ``max_steps`` or ``max_epochs × steps_per_epoch``."""
        budget = self.max_epochs * self.steps_per_epoch
        return min(budget, self.max_steps) if self.max_steps else budget

    def to_dict(self) -> dict[str, Any]:
        """Plain values (JSON)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown training options {sorted(unknown)}")
        return cls(**data)


@dataclass
class TrainState:
    """Progress that a checkpoint must carry besides weights and optimiser."""

    step: int = 0
    epoch: int = 0
    best_val: float = math.inf
    best_step: int = 0
    best_metrics: dict[str, float] = field(default_factory=dict)
    bad_epochs: int = 0
    stopped_early: bool = False
    losses: list[float] = field(default_factory=list)
    validations: list[dict[str, float]] = field(default_factory=list)
    run_id: str = ""


def _atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _rng_state(device: torch.device) -> dict[str, Any]:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _gather(obj: Any, info: DistInfo) -> list[Any]:
    if info.world_size == 1:
        return [obj]
    out: list[Any] = [None] * info.world_size
    torch.distributed.all_gather_object(out, obj)
    return out


class MetricSink:
    """Writes scalars to TensorBoard and the catalog's TrainingMetric table (main rank only)."""

    def __init__(self, config: TrainConfig, info: DistInfo, run_id: str) -> None:
        self.enabled = info.is_main
        self.name = config.name
        self.run_id = run_id
        self.writer = None
        self.catalog = None
        self.pending: list[dict[str, Any]] = []
        if not self.enabled:
            return
        if config.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(Path(config.run_dir) / "tensorboard"))
        if config.catalog_url:
            from vocalmine.storage.catalog import Catalog

            self.catalog = Catalog(config.catalog_url)
            self.catalog.upgrade()

    def add(self, split: str, name: str, value: float, step: int, epoch: int) -> None:
        if not self.enabled:
            return
        if self.writer is not None:
            self.writer.add_scalar(f"{split}/{name}", value, step)
        self.pending.append(
            {"split": split, "name": name, "value": float(value), "step": step, "epoch": epoch}
        )

    def flush(self) -> None:
        if not self.enabled:
            return
        if self.writer is not None:
            self.writer.flush()
        if self.catalog is not None and self.pending:
            from vocalmine.storage.catalog import TrainingMetric

            with self.catalog.session() as session:
                session.add_all(
                    TrainingMetric(model_name=self.name, run_id=self.run_id, **row)
                    for row in self.pending
                )
        self.pending = []

    def close(self) -> None:
        self.flush()
        if self.writer is not None:
            self.writer.close()
        if self.catalog is not None:
            self.catalog.dispose()


def _format_eta(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _loader_workers(dataset: ShardDataset, requested: int, world: int) -> int:
    """Loader workers per rank, lowered so every rank × worker stream gets row groups."""
    groups = len(dataset.groups())
    if groups < world:
        raise ValueError(
            f"{dataset.reader.dir}: split {dataset.split!r} has {groups} row groups for "
            f"{world} ranks; write smaller row groups or use fewer processes"
        )
    return min(requested, groups // world)


def _unwrap(model: torch.nn.Module) -> SeparationModel:
    return model.module if isinstance(model, DistributedDataParallel) else model  # type: ignore[return-value]


def evaluate(
    model: SeparationModel,
    loader: DataLoader,
    device: torch.device,
    *,
    amp: bool,
    channels_last: bool,
    max_batches: int | None = None,
) -> dict[str, float]:
    """Mean L1 and MSE of ``mask ⊙ X − Y`` per source over the loader, summed over ranks."""
    was_training = model.training
    model.eval()
    sums = torch.zeros(2 * len(SOURCES) + 1, dtype=torch.float64, device=device)
    with torch.no_grad():
        for index, batch in enumerate(loader):
            if max_batches is not None and index >= max_batches:
                break
            mix, targets = _to_device(batch, device, channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                masks = model(mix)
            count = mix.shape[0]
            sums[: len(SOURCES)] += per_source_error(masks, mix, targets, "l1").double() * count
            sums[len(SOURCES) : -1] += per_source_error(masks, mix, targets, "mse").double() * count
            sums[-1] += count
    all_reduce_sum(sums)
    model.train(was_training)
    count = max(sums[-1].item(), 1.0)
    values = (sums[:-1] / count).tolist()
    out: dict[str, float] = {"samples": int(sums[-1].item())}
    for i, source in enumerate(SOURCES):
        out[f"l1_{source}"] = values[i]
        out[f"mse_{source}"] = values[len(SOURCES) + i]
    out["l1"] = sum(out[f"l1_{s}"] for s in SOURCES)
    out["mse"] = sum(out[f"mse_{s}"] for s in SOURCES)
    return out


def _to_device(
    batch: dict[str, torch.Tensor], device: torch.device, channels_last: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    mix = batch["mix"].to(device, non_blocking=True)
    targets = batch["targets"].to(device, non_blocking=True)
    if channels_last:
        mix = mix.contiguous(memory_format=torch.channels_last)
    return mix, targets


def train(
    config: TrainConfig, on_step: Callable[[int, float], None] | None = None
) -> dict[str, Any]:
    """Train as configured in this process (one rank of the job); returns the run's result.

    ``on_step(step, loss)`` is called on every rank after each step (tests use it).
    """
    info = init_distributed(config.device)
    try:
        return _train(config, info, on_step)
    finally:
        cleanup()


def _train(
    config: TrainConfig, info: DistInfo, on_step: Callable[[int, float], None] | None
) -> dict[str, Any]:
    device = info.device
    on_gpu = device.type == "cuda"
    amp = on_gpu if config.amp is None else config.amp and on_gpu
    channels_last = on_gpu if config.channels_last is None else config.channels_last
    if config.batch_size % info.world_size:
        raise ValueError(
            f"global batch size {config.batch_size} is not divisible by {info.world_size} ranks"
        )
    per_rank = config.batch_size // info.world_size
    run_dir = Path(config.run_dir)
    checkpoints = run_dir / "checkpoints"
    if info.is_main:
        checkpoints.mkdir(parents=True, exist_ok=True)
    barrier()

    manifest = read_manifest(config.shard_root, config.dataset)
    train_set = ShardDataset(
        config.shard_root,
        config.dataset,
        "train",
        min_quality=config.min_quality,
        batch_size=per_rank,
        shuffle=True,
        buffer_size=config.shuffle_buffer,
        seed=config.seed,
        repeat=True,
        augment=AugmentConfig(**config.augment),
        rank=info.rank,
        world_size=info.world_size,
    )
    preset = train_set.preset
    if config.preset and config.preset != preset.name:
        raise ValueError(
            f"{config.shard_root}/{config.dataset}: shards use preset {preset.name!r}, "
            f"not {config.preset!r}"
        )

    torch.manual_seed(config.seed)
    model = build_model(config.model, preset, width=config.width, dropout=config.dropout)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    torch.manual_seed(config.seed + 1 + info.rank)  # per-rank dropout streams
    if on_gpu:
        torch.backends.cudnn.benchmark = True  # fixed patch sizes: let cuDNN pick its kernels
    if info.is_main:
        print(
            f"model {config.model} (preset {preset.name}, width {config.width}): "
            f"{model.parameter_count():,} parameters; {info.world_size} process(es) on "
            f"{device.type}{' with bf16 autocast' if amp else ''}; global batch "
            f"{config.batch_size}",
            flush=True,
        )
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    state = TrainState(run_id=config.run_id or uuid.uuid4().hex[:12])

    checkpoint_path = checkpoints / CHECKPOINT
    if checkpoint_path.exists():
        saved = torch.load(checkpoint_path, map_location=device, weights_only=True)
        model.load_state_dict(saved["model"])
        optimiser.load_state_dict(saved["optimiser"])
        state = TrainState(**saved["state"])
        layout = saved.get("layout", {})
        if layout.get("world_size") != info.world_size and info.is_main:
            print(
                f"resuming a {layout.get('world_size')}-process run on {info.world_size} "
                "processes: the data order will differ from the original run",
                file=sys.stderr,
            )
        rng = saved["rng"]
        _set_rng_state(rng[info.rank % len(rng)], device)
        if info.is_main:
            print(f"resumed {checkpoint_path} at step {state.step}", flush=True)

    net: torch.nn.Module = model
    if info.world_size > 1:
        net = DistributedDataParallel(model, device_ids=[device.index] if on_gpu else None)

    workers = _loader_workers(train_set, config.num_workers, info.world_size)
    train_set.start_batch = state.step
    loader_args = {
        "batch_size": None,
        "num_workers": workers,
        "pin_memory": on_gpu,
        # A private generator keeps loader start-up from consuming the dropout RNG stream.
        "generator": torch.Generator().manual_seed(config.seed),
    }
    if workers:
        # Workers start from a clean forkserver, not a fork of this process: inside a Prefect
        # flow run this process holds server threads and locks that a forked child inherits
        # half-taken (the child then dies at start).
        loader_args["multiprocessing_context"] = LOADER_CONTEXT
    val_split = "valid" if manifest["counts"]["splits"].get("valid", {}).get("rows") else "train"
    if val_split == "train" and info.is_main:
        print("no 'valid' rows in the shards: validating on the train split", file=sys.stderr)
    val_set = ShardDataset(
        config.shard_root,
        config.dataset,
        val_split,
        min_quality=config.min_quality,
        batch_size=per_rank,
        shuffle=False,
        rank=info.rank,
        world_size=info.world_size,
    )
    val_workers = min(workers, max(0, len(val_set.groups()) // info.world_size))
    val_args = {**loader_args, "num_workers": val_workers}
    if not val_workers:
        val_args.pop("multiprocessing_context", None)
    val_loader = DataLoader(val_set, **val_args)

    sink = MetricSink(config, info, state.run_id)
    total = config.total_steps
    stream = iter(DataLoader(train_set, **loader_args))
    window_start, window_steps = time.perf_counter(), 0
    recent: list[torch.Tensor] = []
    net.train()

    def save_checkpoint() -> None:
        rng = _gather(_rng_state(device), info)
        if info.is_main:
            _atomic_torch_save(
                {
                    "model": model.state_dict(),
                    "optimiser": optimiser.state_dict(),
                    "state": asdict(state),
                    "rng": rng,
                    "config": config.to_dict(),
                    "layout": {"world_size": info.world_size, "workers": workers},
                },
                checkpoint_path,
            )
        barrier()

    def validate() -> dict[str, float]:
        scores = evaluate(
            model,
            val_loader,
            device,
            amp=amp,
            channels_last=channels_last,
            max_batches=config.val_max_batches,
        )
        for key, value in scores.items():
            sink.add(val_split, key, value, state.step, state.epoch)
        current = scores[config.loss]
        state.validations.append({"step": state.step, "epoch": state.epoch, **scores})
        if current < state.best_val:
            state.best_val, state.best_step, state.bad_epochs = current, state.step, 0
            state.best_metrics = scores
            if info.is_main:
                _atomic_torch_save(model.state_dict(), checkpoints / BEST)
        else:
            state.bad_epochs += 1
        if info.is_main:
            print(
                f"epoch {state.epoch} step {state.step}: {val_split} {config.loss} {current:.5f} "
                f"(best {state.best_val:.5f} at step {state.best_step})",
                flush=True,
            )
        sink.flush()
        return scores

    validated_at, start_step = -1, state.step
    while state.step < total and not state.stopped_early:
        batch = next(stream)
        mix, targets = _to_device(batch, device, channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            masks = net(mix)
        loss, _ = separation_loss(
            masks, mix, targets, loss=config.loss, volume_balance=config.volume_balance
        )
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        state.step += 1
        window_steps += 1
        recent.append(all_reduce_sum(loss.detach().clone()) / info.world_size)

        if state.step % config.log_every == 0 or state.step == total:
            values = torch.stack(recent).tolist()
            state.losses.extend(values)
            recent = []
            elapsed = time.perf_counter() - window_start
            rate = window_steps / elapsed if elapsed > 0 else 0.0
            sink.add("train", config.loss, values[-1], state.step, state.epoch)
            sink.add("train", "steps_per_s", rate, state.step, state.epoch)
            if info.is_main:
                print(
                    f"step {state.step}/{total} epoch {state.epoch} loss {values[-1]:.5f} "
                    f"{rate:.2f} steps/s {rate * config.batch_size:.1f} samples/s "
                    f"ETA {_format_eta((total - state.step) / rate if rate else 0)}",
                    flush=True,
                )
            window_start, window_steps = time.perf_counter(), 0
        if on_step is not None:
            on_step(state.step, float(recent[-1]) if recent else state.losses[-1])

        if state.step % config.steps_per_epoch == 0:
            state.epoch += 1
            validate()
            validated_at = state.step
            if state.bad_epochs >= config.patience:
                state.stopped_early = True
                if info.is_main:
                    print(f"early stop: no improvement for {config.patience} epochs", flush=True)
        if state.step % config.checkpoint_every == 0:
            state.losses.extend(torch.stack(recent).tolist() if recent else [])
            recent = []
            save_checkpoint()

    if recent:
        state.losses.extend(torch.stack(recent).tolist())
    if validated_at != state.step and state.step > start_step and not state.stopped_early:
        validate()
    save_checkpoint()
    sink.close()
    result = {
        "name": config.name,
        "run_id": state.run_id,
        "steps": state.step,
        "epochs": state.epoch,
        "stopped_early": state.stopped_early,
        "best_step": state.best_step,
        "val_split": val_split,
        "validation": state.best_metrics,
        "losses": state.losses,
        "validations": state.validations,
        "parameters": model.parameter_count(),
        "version": None,
    }
    if info.is_main:
        # A finished run started again registers nothing new: it reports the version it made.
        marker = checkpoints / REGISTERED
        done = json.loads(marker.read_text()) if marker.exists() else {}
        if done.get("step") == state.step:
            result["version"] = done["version"]
        else:
            result["version"] = _register(config, state, manifest, result, checkpoints)
            marker.write_text(json.dumps({"step": state.step, "version": result["version"]}))
        (run_dir / RESULT).write_text(json.dumps(result, indent=1))
    barrier()
    return result


def _register(
    config: TrainConfig,
    state: TrainState,
    manifest: dict[str, Any],
    result: dict[str, Any],
    checkpoints: Path,
) -> int | None:
    """Put the best weights (or the last, if never validated better) into the registry."""
    if not (config.register and config.model_root and config.catalog_url):
        return None
    from vocalmine.storage.catalog import Catalog
    from vocalmine.storage.registry import ModelRegistry

    best_path = checkpoints / BEST
    if not best_path.exists():
        best_path = checkpoints / CHECKPOINT
    saved = torch.load(best_path, map_location="cpu", weights_only=True)
    preset = preset_from_dict(manifest["preset"])
    model = build_model(config.model, preset, width=config.width, dropout=config.dropout)
    model.load_state_dict(saved["model"] if "optimiser" in saved else saved)
    metrics = {
        **{f"val_{k}": v for k, v in state.best_metrics.items()},
        "val_split": result["val_split"],
        "best_step": state.best_step,
        "steps": state.step,
        "epochs": state.epoch,
        "train_loss": state.losses[-1] if state.losses else None,
        "run_id": state.run_id,
    }
    catalog = Catalog(config.catalog_url)
    catalog.upgrade()
    try:
        registry = ModelRegistry(config.model_root, catalog)
        version = registry.register(
            model,
            name=config.name,
            config=config.to_dict(),
            manifest=manifest_summary(manifest),
            metrics=metrics,
        )
        if config.promote:
            registry.promote(config.name, version)
    finally:
        catalog.dispose()
    print(f"registered model {config.name!r} version {version}", flush=True)
    return version


def run_config_file(path: str | Path) -> dict[str, Any]:
    """Train from a JSON config file (what every torchrun process does)."""
    config = TrainConfig.from_dict(json.loads(Path(path).read_text()))
    return train(config)


def main(argv: list[str] | None = None) -> int:
    """``python -m vocalmine.training.trainer CONFIG.json`` (the torchrun entry)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m vocalmine.training.trainer CONFIG.json", file=sys.stderr)
        return 2
    run_config_file(args[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
