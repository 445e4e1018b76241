"""Rules of a training run folder: what a resumed run may change, and what a result reports.

Pure functions over plain values; the train flow reads and writes the files.
"""

from __future__ import annotations

from typing import Any

#: Options a resumed run may change; the rest stay as the run started.
RESUMABLE = ("max_steps", "max_epochs", "patience", "log_every", "checkpoint_every")


def resumed_config(saved: dict[str, Any], requested: dict[str, Any]) -> dict[str, Any]:
    """The config a resumed run trains with: the saved one, with the :data:`RESUMABLE` options
    of the new request."""
    return {**saved, **{k: v for k, v in requested.items() if k in RESUMABLE}}


def registration_metrics(result: dict[str, Any]) -> dict[str, Any]:
    """The validation scores and progress that go with the run's best model into the registry."""
    return {
        **{f"val_{k}": v for k, v in result["validation"].items()},
        "val_split": result["val_split"],
        "best_step": result["best_step"],
        "steps": result["steps"],
        "epochs": result["epochs"],
        "train_loss": result["losses"][-1] if result["losses"] else None,
        "run_id": result["run_id"],
    }


def already_registered(marker: dict[str, Any] | None, result: dict[str, Any]) -> int | None:
    """The version a finished run registered before, if it has not trained further since.

    A run started again after it finished registers nothing new: it reports the version it made.
    """
    if marker and marker.get("step") == result["steps"]:
        return int(marker["version"])
    return None
