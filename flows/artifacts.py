"""Artifacts every flow publishes to the Prefect UI, the ops dashboard.

Thin wrappers over :mod:`prefect.artifacts` so flows stay one line per artifact:

- keys are made valid for Prefect (lowercase letters, digits and dashes), so a flow can pass
  ``"mine-counts"`` or ``"Mine counts"`` alike;
- table cells become plain JSON values (numpy scalars, paths, None);
- plots are drawn with matplotlib's object API into PNG data URIs inside a markdown artifact, so
  the UI shows them inline with no file server, next to a small table of the same numbers;
- publishing is best effort: outside a flow or task run it does nothing (there is no run to attach
  to), and an API error is logged as a warning, never raised: a dashboard outage must not fail a
  mining or training run.
"""

from __future__ import annotations

import io
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import PurePath
from typing import Any
from uuid import UUID

import numpy as np
from matplotlib.figure import Figure
from prefect import artifacts
from prefect.context import FlowRunContext, TaskRunContext

from vocalmine.core.markdown import image_data_url, markdown_table

log = logging.getLogger(__name__)

_KEY_BAD = re.compile(r"[^a-z0-9-]+")


def artifact_key(name: str) -> str:
    """``name`` as a valid Prefect artifact key: lowercase, digits and dashes only."""
    key = _KEY_BAD.sub("-", name.lower()).strip("-")
    key = re.sub(r"-{2,}", "-", key)
    if not key:
        raise ValueError(f"{name!r}: artifact key has no letters or digits")
    return key


def plain(value: Any) -> Any:
    """A JSON-friendly version of one table cell (numpy scalars, paths, NaN)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, PurePath):
        return str(value)
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


def count_rows(counts: Mapping[str, Any], prefix: str = "") -> list[dict[str, Any]]:
    """``{"pairs": 3, "rejected": {"too_long": 2}}`` → rows ``what | count``, nested as ``a: b``."""
    rows: list[dict[str, Any]] = []
    for key, value in counts.items():
        what = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows.extend(count_rows(dict(sorted(value.items())), prefix=f"{what}: "))
        else:
            rows.append({"what": what, "count": plain(value)})
    return rows


def _in_run() -> bool:
    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def _publish(create: Callable[..., UUID], key: str, **kwargs: Any) -> UUID | None:
    if not _in_run():
        return None
    try:
        return create(key=artifact_key(key), **kwargs)
    except Exception as exc:  # noqa: BLE001 - the dashboard must never fail a run
        log.warning("could not publish artifact %s: %s", key, exc)
        return None


def publish_table(
    key: str, rows: Sequence[Mapping[str, Any]], description: str | None = None
) -> UUID | None:
    """A table artifact with one row per mapping (cells made JSON-friendly)."""
    table = [{str(k): plain(v) for k, v in row.items()} for row in rows]
    return _publish(artifacts.create_table_artifact, key, table=table, description=description)


def publish_counts(key: str, title: str, counts: Mapping[str, Any]) -> UUID | None:
    """Counts (pairs found, accepted, rejected by reason, ...) as a two-column table."""
    return publish_table(key, count_rows(counts), description=title)


def publish_markdown(key: str, markdown: str, description: str | None = None) -> UUID | None:
    """A markdown artifact (promotion decisions, notes, embedded plots)."""
    return _publish(
        artifacts.create_markdown_artifact, key, markdown=markdown, description=description
    )


def figure_markdown(figure: Figure, alt: str) -> str:
    """``figure`` as an inline markdown image (PNG data URI)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return f"![{alt}]({image_data_url(buffer.getvalue())})"


def _figure(title: str, xlabel: str, ylabel: str) -> tuple[Figure, Any]:
    figure = Figure(figsize=(6.0, 3.2))
    axes = figure.subplots()
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    return figure, axes


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    return markdown_table(rows, header, lambda cell: str(plain(cell)))


def histogram_markdown(
    values: Sequence[float],
    title: str,
    bins: int = 20,
    value_range: tuple[float, float] | None = None,
    xlabel: str = "value",
) -> str:
    """A histogram plot plus the counts of its non-empty bins, as markdown."""
    data = np.asarray(values, dtype=float)
    data = data[np.isfinite(data)]
    if data.size == 0:
        return f"## {title}\n\nNo values."
    counts, edges = np.histogram(data, bins=bins, range=value_range)
    figure, axes = _figure(title, xlabel, "count")
    axes.bar(edges[:-1], counts, width=np.diff(edges), align="edge", edgecolor="white")
    rows = [
        (f"{lo:.3g} – {hi:.3g}", int(n))
        for lo, hi, n in zip(edges[:-1], edges[1:], counts, strict=True)
        if n
    ]
    summary = (
        f"{data.size} values, median {np.median(data):.3g}, "
        f"min {data.min():.3g}, max {data.max():.3g}"
    )
    return "\n\n".join(
        [
            f"## {title}",
            summary,
            figure_markdown(figure, title),
            _markdown_table(("bin", "count"), rows),
        ]
    )


def publish_histogram(
    key: str,
    values: Sequence[float],
    title: str,
    bins: int = 20,
    value_range: tuple[float, float] | None = None,
    xlabel: str = "value",
) -> UUID | None:
    """A histogram (e.g. label quality of the mined segments) as a markdown artifact."""
    if not _in_run():
        return None
    markdown = histogram_markdown(values, title, bins, value_range, xlabel)
    return publish_markdown(key, markdown, description=title)


def curves_markdown(
    curves: Mapping[str, Sequence[tuple[float, float]]],
    title: str,
    xlabel: str = "step",
    ylabel: str = "value",
) -> str:
    """Line plots of named ``(x, y)`` series (train/validation loss) plus their last values."""
    figure, axes = _figure(title, xlabel, ylabel)
    rows = []
    for name, points in curves.items():
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        axes.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=name)
        best = min(ys)
        rows.append((name, len(xs), ys[-1], best))
    if not rows:
        return f"## {title}\n\nNo values."
    axes.legend()
    return "\n\n".join(
        [
            f"## {title}",
            figure_markdown(figure, title),
            _markdown_table(("series", "points", "last", "min"), rows),
        ]
    )


def publish_curves(
    key: str,
    curves: Mapping[str, Sequence[tuple[float, float]]],
    title: str,
    xlabel: str = "step",
    ylabel: str = "loss",
) -> UUID | None:
    """Training curves as a markdown artifact with an inline plot."""
    if not _in_run():
        return None
    return publish_markdown(key, curves_markdown(curves, title, xlabel, ylabel), description=title)


def decision_markdown(decision: Mapping[str, Any]) -> str:
    """A model promotion decision: verdict first, then every recorded field."""
    verdict = "promoted" if decision.get("promoted") else "not promoted"
    lines = [f"## Model {decision.get('name', '')} v{decision.get('version', '?')}: {verdict}"]
    if decision.get("reason"):
        lines.append(str(decision["reason"]))
    rows = [(key, value) for key, value in decision.items() if key != "reason"]
    lines.append(_markdown_table(("field", "value"), rows))
    return "\n\n".join(lines)


def publish_decision(key: str, decision: Mapping[str, Any]) -> UUID | None:
    """A promotion decision (candidate vs current score, promoted or not) as markdown."""
    return publish_markdown(key, decision_markdown(decision), description="promotion decision")
