"""The options of a training run, without torch: the trainer, the train flow and the command
line (whose defaults are these fields' defaults) all read them from here."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

#: The architectures :func:`vocalmine.training.models.build_model` makes.
MODEL_KINDS: tuple[str, ...] = ("unet", "spectrogram-channels", "no-skip", "spleeter")

#: What :attr:`TrainConfig.freeze` may keep fixed while fine-tuning, ``+``-joined (or ``none``):
#: see :func:`training.finetune.freeze`.
FREEZE_PARTS: tuple[str, ...] = ("norm", "encoder", "vocals", "accompaniment")


@dataclass(frozen=True)
class AugmentConfig:
    """Which transforms to apply; all off by default (the paper trains without them)."""

    p: float = 0.5
    channel_swap: bool = False
    gain: float = 0.0
    time_stretch: float = 0.0
    pitch_shift: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"augmentation probability {self.p} is not in [0, 1]")
        for name in ("gain", "time_stretch", "pitch_shift"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"augmentation range {name}={getattr(self, name)} not in [0, 1)")

    @property
    def enabled(self) -> bool:
        """True when any transform can fire."""
        active = self.channel_swap or self.gain or self.time_stretch or self.pitch_shift
        return bool(active) and self.p > 0

    def to_dict(self) -> dict[str, Any]:
        """Plain values for configs and model cards."""
        return asdict(self)


@dataclass
class TrainConfig:
    """Everything a training run needs; saved with checkpoints and in the model card.

    Fine-tuning: ``init_from`` names a weights file (:func:`training.finetune.save_init_weights`)
    that a fresh run starts from (a resumed run takes its own checkpoint's weights); ``freeze``
    keeps every batch norm (``"norm"``) or the encoder (``"encoder"``) fixed.
    """

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
    run_id: str | None = None
    init_from: str | None = None
    freeze: str = "none"

    def __post_init__(self) -> None:
        if self.loss not in ("l1", "mse"):
            raise ValueError(f"unknown loss {self.loss!r}; choose 'l1' or 'mse'")
        parts = [] if self.freeze == "none" else self.freeze.split("+")
        if not all(part in FREEZE_PARTS for part in parts):
            raise ValueError(
                f"unknown freeze {self.freeze!r}; choose none or any of "
                f"{'+'.join(FREEZE_PARTS)} joined by +"
            )
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
        """Inverse of :meth:`to_dict`; unknown keys are an error, except the persistence options
        that older run folders saved (recording and registering is now the train flow's work),
        which are dropped."""
        known = {f.name for f in fields(cls)}
        retired = {"model_root", "catalog_url", "register", "promote"}
        data = {k: v for k, v in data.items() if k not in retired}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown training options {sorted(unknown)}")
        return cls(**data)
