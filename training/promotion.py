"""When a retrained model replaces the current one: its score, and the promotion rule.

Pure functions over an ``evaluate`` summary (:mod:`flows.evaluate`); the retrain flow reads the
registry, calls these and writes the decision.
"""

from __future__ import annotations

import math
from typing import Any


def model_score(summary: dict[str, Any], metric: str = "SDR", source: str = "vocals") -> float:
    """The model's median ``metric`` for ``source`` from an ``evaluate`` summary (NaN if none)."""
    value = summary.get("scores", {}).get("model", {}).get(source, {}).get(metric, {}).get("median")
    return float("nan") if value is None else float(value)


def should_promote(candidate: float, current: float | None, min_improvement: float = 0.0) -> bool:
    """Promote a scored candidate over no model, or over one it beats by ``min_improvement``."""
    if math.isnan(candidate):
        return False
    if current is None or math.isnan(current):
        return True
    return candidate > current + min_improvement


def promotion_reason(
    name: str,
    version: int,
    current_version: int | None,
    candidate: float,
    current: float | None,
    promoted: bool,
    min_improvement: float,
    label: str,
    incumbent: str | None = None,
) -> str:
    """The one-line reason recorded with a promotion decision; ``incumbent`` names the model
    compared with when it is not ``name``'s current version (the model a fine-tuned candidate
    started from, while ``name`` has no current version)."""
    if current_version is None and incumbent is None:
        return f"first model of {name!r}: promoted ({label} {candidate:.2f} dB)"
    verdict = "beats" if promoted else "does not beat"
    return (
        f"v{version} {verdict} {incumbent or f'current v{current_version}'} by more than "
        f"{min_improvement:g} dB: {candidate:.2f} vs {current:.2f} ({label})"
    )
