"""An evaluation rendered for people: a markdown table, box plots, and Prefect artifacts.

The table shows, per system and source, the median over tracks of the per-track median SDR, SIR
and SAR (the SiSEC convention) and NSDR; box plots show the spread over tracks of each metric.
Plots are drawn with matplotlib's Agg backend (no display needed); ``flows/evaluate.py``
publishes the same table, report and plots as Prefect artifacts.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from vocalmine.core.atomic import atomic_write_text  # noqa: E402
from vocalmine.core.markdown import image_data_url  # noqa: E402
from vocalmine.core.markdown import markdown_table as _markdown_table  # noqa: E402
from vocalmine.separation.scoring import EvaluationResult  # noqa: E402
from vocalmine.training.models.base import SOURCES  # noqa: E402

TABLE_METRICS: tuple[str, ...] = ("SDR", "SIR", "SAR", "NSDR")
PLOT_METRICS: tuple[str, ...] = ("SDR", "SIR", "SAR")


def summary_table(result: EvaluationResult) -> pd.DataFrame:
    """One row per (system, source): median over tracks of each metric, plus mean SDR."""
    summary = result.summary()
    median = summary.pivot_table(
        index=["system", "source"], columns="metric", values="median", sort=False
    )
    mean = summary[summary.metric == "SDR"].set_index(["system", "source"])["mean"]
    table = median.reindex(columns=[m for m in TABLE_METRICS if m in median.columns])
    table["SDR mean"] = mean
    tracks = summary[summary.metric == "SDR"].set_index(["system", "source"])["tracks"]
    table["tracks"] = tracks
    return table.reset_index()


def _two_decimals(value: object) -> str:
    if isinstance(value, float):
        return "–" if pd.isna(value) else f"{value:.2f}"
    return str(value)


def markdown_table(table: pd.DataFrame) -> str:
    """A DataFrame as a GitHub-flavoured markdown table, two decimals, '–' for undefined values."""
    return _markdown_table(table.itertuples(index=False), table.columns, _two_decimals)


def box_plots(result: EvaluationResult, out_dir: Path) -> dict[str, Path]:
    """One PNG per metric: per-track medians, one box per system, a panel per source."""
    tracks = result.tracks()
    systems = list(dict.fromkeys(tracks.system))
    paths: dict[str, Path] = {}
    for metric in PLOT_METRICS:
        fig, axes = plt.subplots(1, len(SOURCES), figsize=(5 + 1.2 * len(systems), 4), sharey=False)
        for ax, source in zip(axes, SOURCES, strict=True):
            data = []
            for system in systems:
                values = tracks[
                    (tracks.system == system)
                    & (tracks.source == source)
                    & (tracks.metric == metric)
                ]["value"].dropna()
                data.append(values.to_numpy())
            ax.boxplot(data, tick_labels=systems, showfliers=True)
            ax.set_title(f"{source} {metric}")
            ax.set_ylabel("dB")
            ax.tick_params(axis="x", labelrotation=30)
            ax.grid(axis="y", alpha=0.3)
        fig.suptitle(f"{result.dataset}: {metric} per track (median over 1 s frames)")
        fig.tight_layout()
        path = out_dir / f"{metric.lower()}_boxplot.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths[metric] = path
    return paths


def render_report(result: EvaluationResult, out_dir: str | Path) -> Path:
    """Write ``report.md`` (table, systems, notes, plots) into ``out_dir``; returns its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = box_plots(result, out)
    lines = [
        f"# Separation evaluation: {result.dataset}",
        "",
        f"{result.frames.track.nunique()} tracks; museval v4, 1 s frames; median over frames, "
        "then median over tracks (SDR mean also shown). NSDR = SDR − SDR of the mixture.",
        f"Decoding: {result.decoding}.",
        "",
        markdown_table(summary_table(result)),
        "",
    ]
    if result.systems:
        lines += ["## Systems", ""]
        lines += [f"- **{name}**: {text}" for name, text in result.systems.items()]
        lines.append("")
    if result.notes:
        lines += ["## Track notes", ""]
        lines += [f"- {name}: {text}" for name, text in sorted(result.notes.items())]
        lines.append("")
    lines += ["## Distributions over tracks", ""]
    lines += [f"![{metric}]({path.name})" for metric, path in plots.items()]
    return atomic_write_text(out / "report.md", "\n".join(lines) + "\n")


def inline_report(report: Path) -> str:
    """The markdown report with its plot links replaced by inline data URLs."""
    text = report.read_text(encoding="utf-8")
    for png in sorted(report.parent.glob("*_boxplot.png")):
        text = text.replace(f"]({png.name})", f"]({image_data_url(png)})")
    return text
