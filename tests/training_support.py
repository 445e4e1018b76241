"""Train a narrow model for a few steps and record it as the train flow does (tests, < 1 min).

No Prefect, no torchrun: the same config builder, trainer and recording as
:func:`flows.train.train`, in this process, with validation once at the end.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vocalmine.core.settings import get_settings
from vocalmine.flows.train import build_config, record_run
from vocalmine.training.trainer import train


def train_tiny(
    shards: str,
    *,
    dataset: str | None = None,
    name: str = "tiny",
    model: str = "unet",
    width: int = 4,
    max_steps: int = 20,
    batch_size: int = 4,
    data_dir: str | None = None,
    catalog_url: str | None = None,
    run_dir: str | None = None,
    promote: bool = True,
) -> dict[str, Any]:
    """Train, then record the metrics and register (and promote) the best model."""
    config = build_config(
        shards=shards,
        dataset=dataset,
        run_dir=run_dir,
        data_dir=data_dir,
        catalog_url=catalog_url,
        name=name,
        model=model,
        width=width,
        max_steps=max_steps,
        steps_per_epoch=max_steps,
        batch_size=batch_size,
        lr=1e-3,
        num_workers=0,
        log_every=max(1, max_steps // 5),
        checkpoint_every=max_steps,
        device="cpu",
    )
    settings = get_settings(data_dir=data_dir, catalog_url=catalog_url)
    folder = Path(config.run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config.to_dict(), indent=1))
    train(config)
    return record_run(
        folder, catalog_url=settings.catalog_url, model_root=settings.model_root, promote=promote
    )
