"""The training loop: Adam on the masked-spectrogram loss, DDP, checkpoints, early stopping.

One function, :func:`train`, runs in every process of a job (see :mod:`training.ddp`). It
follows the thesis's protocol (Prétet 2018 §4.2): an *epoch* is a fixed number of optimiser
steps, after which the model is validated on the ``valid`` split and the best version so far
is kept; training stops after ``patience`` epochs without improvement, at ``max_epochs`` or at
``max_steps``. The trainer writes files only: checkpoints, ``metrics.jsonl`` (every scalar, also
in TensorBoard) and ``result.json`` naming the best checkpoint; the train flow
(:mod:`flows.train`) records the metrics in the catalog and registers the best weights.

Resuming is exact: a checkpoint holds the model, Adam's state, every rank's RNG state, the
step (which fixes the position in the data stream, see :mod:`training.dataset`) and the
early-stopping state; a run restarted from it produces the same losses as one that never
stopped. On GPUs the forward pass runs under bf16 autocast with channels-last tensors.

Fine-tuning (:mod:`training.finetune`): a fresh run can start from an init weights file
(``init_from``) and keep batch norms or the encoder fixed (``freeze``). Patches reach the model
as it wants them: divided by their peak, or raw (``SeparationModel.input_scaling``).
"""

from __future__ import annotations

import json
import math
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from vocalmine.core.atomic import atomic_path, atomic_write_text
from vocalmine.core.stft import STFTPreset, preset_from_dict
from vocalmine.storage.shard_schema import manifest_summary, read_manifest
from vocalmine.training.config import AugmentConfig, TrainConfig
from vocalmine.training.dataset import ShardDataset
from vocalmine.training.ddp import DistInfo, all_reduce_sum, barrier, cleanup, init_distributed
from vocalmine.training.finetune import freeze, init_model, set_training, trainable_parameters
from vocalmine.training.losses import per_source_error, separation_loss
from vocalmine.training.models import SOURCES, SeparationModel, build_model

CHECKPOINT = "last.pt"
BEST = "best.pt"
RESULT = "result.json"
METRICS = "metrics.jsonl"

#: How DataLoader workers start (see where it is used).
LOADER_CONTEXT = "forkserver"


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
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


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
    """Writes scalars to TensorBoard and to the run's :data:`METRICS` file (main rank only).

    ``metrics.jsonl`` holds one JSON object per scalar (``split``, ``name``, ``value``,
    ``step``, ``epoch``). A resumed run first drops the rows logged after the checkpoint it
    resumes from (they are logged again), so the file always describes one run, once; the train
    flow copies it into the catalog after the processes finish.
    """

    def __init__(self, config: TrainConfig, info: DistInfo, resume_step: int) -> None:
        self.enabled = info.is_main
        self.path = Path(config.run_dir) / METRICS
        self.writer = None
        self.pending: list[dict[str, Any]] = []
        if not self.enabled:
            return
        if config.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(Path(config.run_dir) / "tensorboard"))
        kept = [row for row in read_metrics(self.path) if row["step"] <= resume_step]
        atomic_write_text(self.path, "".join(json.dumps(row) + "\n" for row in kept))

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
        if self.pending:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.writelines(json.dumps(row) + "\n" for row in self.pending)
        self.pending = []

    def close(self) -> None:
        self.flush()
        if self.writer is not None:
            self.writer.close()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a run's ``metrics.jsonl`` (none when it does not exist); a line cut short by
    a killed process is skipped."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


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


def evaluate(
    model: SeparationModel,
    loader: DataLoader,
    device: torch.device,
    *,
    amp: bool,
    channels_last: bool,
    max_batches: int | None = None,
) -> dict[str, float]:
    """Mean L1 and MSE of ``mask ⊙ X − Y`` per source over the loader, summed over ranks.

    Every submodule's mode is restored afterwards (frozen batch norms stay in eval mode)."""
    modes = [(module, module.training) for module in model.modules()]
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
    for module, training in modes:
        module.training = training
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

    ``on_step(step, loss)`` is called on every rank after each step (tests use it). Writes files
    only: checkpoints, ``metrics.jsonl``, TensorBoard and :data:`RESULT`; recording the metrics
    and registering the best checkpoint is the train flow's work.
    """
    info = init_distributed(config.device)
    try:
        return _train(config, info, on_step)
    finally:
        cleanup()


@dataclass
class _Run:
    """One rank's training run, as set up by :func:`_setup`."""

    config: TrainConfig
    info: DistInfo
    amp: bool
    channels_last: bool
    checkpoints: Path
    manifest: dict[str, Any]
    model: SeparationModel
    net: torch.nn.Module
    frozen_norms: list[torch.nn.Module]
    optimiser: torch.optim.Optimizer
    state: TrainState
    workers: int
    stream: Iterator[dict[str, torch.Tensor]]
    val_split: str
    val_loader: DataLoader
    sink: MetricSink
    window_start: float = 0.0
    window_steps: int = 0
    recent: list[torch.Tensor] = field(default_factory=list)

    @property
    def device(self) -> torch.device:
        return self.info.device

    @property
    def is_main(self) -> bool:
        return self.info.is_main


def _train(
    config: TrainConfig, info: DistInfo, on_step: Callable[[int, float], None] | None
) -> dict[str, Any]:
    run = _setup(config, info)
    state, total = run.state, config.total_steps
    validated_at, start_step = -1, state.step
    run.window_start = time.perf_counter()
    set_training(run.net, run.frozen_norms)
    while state.step < total and not state.stopped_early:
        _train_step(run)
        if state.step % config.log_every == 0 or state.step == total:
            _log_progress(run, total)
        if on_step is not None:
            on_step(state.step, float(run.recent[-1]) if run.recent else state.losses[-1])
        if state.step % config.steps_per_epoch == 0:
            _end_epoch(run)
            validated_at = state.step
        if state.step % config.checkpoint_every == 0:
            _keep_recent_losses(run)
            _save_checkpoint(run)
    _keep_recent_losses(run)
    if validated_at != state.step and state.step > start_step and not state.stopped_early:
        _validate(run)
    _save_checkpoint(run)
    return _finish(run)


def _setup(config: TrainConfig, info: DistInfo) -> _Run:
    """Datasets, model, optimiser, the resumed state and the loaders of one rank."""
    device = info.device
    on_gpu = device.type == "cuda"
    amp = on_gpu if config.amp is None else config.amp and on_gpu
    channels_last = on_gpu if config.channels_last is None else config.channels_last
    if config.batch_size % info.world_size:
        raise ValueError(
            f"global batch size {config.batch_size} is not divisible by {info.world_size} ranks"
        )
    per_rank = config.batch_size // info.world_size
    checkpoints = Path(config.run_dir) / "checkpoints"
    if info.is_main:
        checkpoints.mkdir(parents=True, exist_ok=True)
    barrier()

    manifest = read_manifest(config.shard_root, config.dataset)
    preset = preset_from_dict(manifest["preset"])
    if config.preset and config.preset != preset.name:
        raise ValueError(
            f"{config.shard_root}/{config.dataset}: shards use preset {preset.name!r}, "
            f"not {config.preset!r}"
        )
    model = _build_model(config, info, preset, amp=amp, channels_last=channels_last)
    resuming = (checkpoints / CHECKPOINT).exists()
    if config.init_from and not resuming:
        init_model(model, config.init_from)
        if info.is_main:
            print(f"initialised from {config.init_from}", flush=True)
    frozen_norms = _freeze(model, config, info)
    optimiser = torch.optim.Adam(trainable_parameters(model), lr=config.lr)
    state = _resume(model, optimiser, checkpoints / CHECKPOINT, config, info)
    normalise = model.input_scaling == "peak"
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
        normalise=normalise,
    )

    net: torch.nn.Module = model
    if info.world_size > 1:
        net = DistributedDataParallel(model, device_ids=[device.index] if on_gpu else None)

    workers = _loader_workers(train_set, config.num_workers, info.world_size)
    train_set.start_batch = state.step
    loader_args: dict[str, Any] = {
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
    val_split, val_loader = _validation_loader(
        config, info, manifest, per_rank, loader_args, normalise=normalise
    )
    sink = MetricSink(config, info, state.step)
    return _Run(
        config=config,
        info=info,
        amp=amp,
        channels_last=channels_last,
        checkpoints=checkpoints,
        manifest=manifest,
        model=model,
        net=net,
        frozen_norms=frozen_norms,
        optimiser=optimiser,
        state=state,
        workers=workers,
        stream=iter(DataLoader(train_set, **loader_args)),
        val_split=val_split,
        val_loader=val_loader,
        sink=sink,
    )


def _build_model(
    config: TrainConfig, info: DistInfo, preset: STFTPreset, *, amp: bool, channels_last: bool
) -> SeparationModel:
    """The seeded model on this rank's device; then each rank's own dropout stream."""
    device = info.device
    torch.manual_seed(config.seed)
    model = build_model(config.model, preset, width=config.width, dropout=config.dropout)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    torch.manual_seed(config.seed + 1 + info.rank)  # per-rank dropout streams
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed patch sizes: let cuDNN pick its kernels
    if info.is_main:
        print(
            f"model {config.model} (preset {preset.name}, width {config.width}): "
            f"{model.parameter_count():,} parameters; {info.world_size} process(es) on "
            f"{device.type}{' with bf16 autocast' if amp else ''}; global batch "
            f"{config.batch_size}",
            flush=True,
        )
    return model


def _freeze(model: SeparationModel, config: TrainConfig, info: DistInfo) -> list[torch.nn.Module]:
    """Apply ``config.freeze``; returns the batch norms to keep in eval mode."""
    frozen_norms = freeze(model, config.freeze)
    if config.freeze != "none" and info.is_main:
        total = sum(p.numel() for p in model.parameters())
        print(
            f"freeze {config.freeze}: {model.parameter_count():,} of {total:,} parameters "
            f"trained, {len(frozen_norms)} batch norms in eval mode",
            flush=True,
        )
    return frozen_norms


def _resume(
    model: SeparationModel,
    optimiser: torch.optim.Optimizer,
    checkpoint_path: Path,
    config: TrainConfig,
    info: DistInfo,
) -> TrainState:
    """A fresh state, or the checkpoint's (model, optimiser and RNG restored in place)."""
    state = TrainState(run_id=config.run_id or uuid.uuid4().hex[:12])
    if not checkpoint_path.exists():
        return state
    device = info.device
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
    return state


def _validation_loader(
    config: TrainConfig,
    info: DistInfo,
    manifest: dict[str, Any],
    per_rank: int,
    loader_args: dict[str, Any],
    *,
    normalise: bool,
) -> tuple[str, DataLoader]:
    """The split validated on (``valid``, else ``train``) and its loader."""
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
        normalise=normalise,
    )
    val_workers = min(loader_args["num_workers"], max(0, len(val_set.groups()) // info.world_size))
    val_args = {**loader_args, "num_workers": val_workers}
    if not val_workers:
        val_args.pop("multiprocessing_context", None)
    return val_split, DataLoader(val_set, **val_args)


def _train_step(run: _Run) -> None:
    """One optimiser step on the next batch; its loss (mean over ranks) joins ``run.recent``."""
    config, device = run.config, run.device
    mix, targets = _to_device(next(run.stream), device, run.channels_last)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=run.amp):
        masks = run.net(mix)
    loss, _ = separation_loss(
        masks, mix, targets, loss=config.loss, volume_balance=config.volume_balance
    )
    run.optimiser.zero_grad(set_to_none=True)
    loss.backward()
    run.optimiser.step()
    run.state.step += 1
    run.window_steps += 1
    run.recent.append(all_reduce_sum(loss.detach().clone()) / run.info.world_size)


def _log_progress(run: _Run, total: int) -> None:
    """Keep the recent losses, log the last one and the rate, print a progress line."""
    config, state = run.config, run.state
    values = torch.stack(run.recent).tolist()
    state.losses.extend(values)
    run.recent = []
    elapsed = time.perf_counter() - run.window_start
    rate = run.window_steps / elapsed if elapsed > 0 else 0.0
    run.sink.add("train", config.loss, values[-1], state.step, state.epoch)
    run.sink.add("train", "steps_per_s", rate, state.step, state.epoch)
    if run.is_main:
        print(
            f"step {state.step}/{total} epoch {state.epoch} loss {values[-1]:.5f} "
            f"{rate:.2f} steps/s {rate * config.batch_size:.1f} samples/s "
            f"ETA {_format_eta((total - state.step) / rate if rate else 0)}",
            flush=True,
        )
    run.window_start, run.window_steps = time.perf_counter(), 0


def _keep_recent_losses(run: _Run) -> None:
    if run.recent:
        run.state.losses.extend(torch.stack(run.recent).tolist())
    run.recent = []


def _end_epoch(run: _Run) -> None:
    """Validate at the end of an epoch; stop early after ``patience`` epochs without gain."""
    state = run.state
    state.epoch += 1
    _validate(run)
    if state.bad_epochs >= run.config.patience:
        state.stopped_early = True
        if run.is_main:
            print(f"early stop: no improvement for {run.config.patience} epochs", flush=True)


def _validate(run: _Run) -> dict[str, float]:
    """Score the validation split; keep the best weights in ``best.pt``."""
    config, state = run.config, run.state
    scores = evaluate(
        run.model,
        run.val_loader,
        run.device,
        amp=run.amp,
        channels_last=run.channels_last,
        max_batches=config.val_max_batches,
    )
    for key, value in scores.items():
        run.sink.add(run.val_split, key, value, state.step, state.epoch)
    current = scores[config.loss]
    state.validations.append({"step": state.step, "epoch": state.epoch, **scores})
    if current < state.best_val:
        state.best_val, state.best_step, state.bad_epochs = current, state.step, 0
        state.best_metrics = scores
        if run.is_main:
            _atomic_torch_save(run.model.state_dict(), run.checkpoints / BEST)
    else:
        state.bad_epochs += 1
    if run.is_main:
        print(
            f"epoch {state.epoch} step {state.step}: {run.val_split} {config.loss} "
            f"{current:.5f} (best {state.best_val:.5f} at step {state.best_step})",
            flush=True,
        )
    run.sink.flush()
    return scores


def _save_checkpoint(run: _Run) -> None:
    """Model, optimiser, state and every rank's RNG state into ``last.pt`` (main rank)."""
    rng = _gather(_rng_state(run.device), run.info)
    if run.is_main:
        _atomic_torch_save(
            {
                "model": run.model.state_dict(),
                "optimiser": run.optimiser.state_dict(),
                "state": asdict(run.state),
                "rng": rng,
                "config": run.config.to_dict(),
                "layout": {"world_size": run.info.world_size, "workers": run.workers},
            },
            run.checkpoints / CHECKPOINT,
        )
    barrier()


def _finish(run: _Run) -> dict[str, Any]:
    """The run's result; the main rank writes it to :data:`RESULT` in the run folder.

    ``best_checkpoint`` names the weights to register: ``best.pt``, or the last checkpoint when
    no validation ever improved (a resumed run that only validated before it stopped).
    """
    run.sink.close()
    config, state = run.config, run.state
    best = run.checkpoints / BEST
    result = {
        "name": config.name,
        "run_id": state.run_id,
        "steps": state.step,
        "epochs": state.epoch,
        "stopped_early": state.stopped_early,
        "best_step": state.best_step,
        "val_split": run.val_split,
        "validation": state.best_metrics,
        "losses": state.losses,
        "validations": state.validations,
        "parameters": sum(p.numel() for p in run.model.parameters()),
        "trainable_parameters": run.model.parameter_count(),
        "model": run.model.spec(),
        "manifest": manifest_summary(run.manifest),
        "best_checkpoint": str(best if best.exists() else run.checkpoints / CHECKPOINT),
        "metrics_file": str(run.sink.path),
    }
    if run.is_main:
        (Path(config.run_dir) / RESULT).write_text(json.dumps(result, indent=1))
    barrier()
    return result


def checkpoint_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The model weights of ``best.pt`` (a state dict) or of a full checkpoint (``last.pt``)."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    return saved["model"] if "optimiser" in saved else saved


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
