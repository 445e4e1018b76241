"""``vocalmine evaluate``: museval scores of a model beside the MIX and IRM1 baselines.

Scores are kept in the results folder as each track is scored; SIGTERM or Ctrl-C ends the
command within seconds (exit code 143 or 130, with the one line :func:`vocalmine.cli.app.main`
prints), and the same command run again resumes from there: the default folder is the same for
the same dataset, model and variants (:func:`flows.evaluate.default_out_dir`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from vocalmine.cli.common import ConfigOption, DataDirOption, console, fail

BASELINES = "Baselines"


def evaluate_command(
    dataset: Annotated[
        Path | None,
        typer.Argument(help="musdb folder, MIR-1K folder or library manifest (default: MUSDB18-7)"),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model", "-m", help="registered NAME[:VERSION], or untrained[:PRESET] for a demo"
        ),
    ] = None,
    variants: Annotated[
        str,
        typer.Option(
            "--post",
            help="comma-separated: none, binarize[=A], gate[=B], wiener[=N], zero-above "
            "(Spleeter's rule: no vocals above the model's band); + combines",
        ),
    ] = "none",
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="results folder; scores already in it are reused (default: one per dataset, "
            "model and variants under the data dir)",
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="first N tracks only")] = None,
    device: Annotated[str, typer.Option("--device", help="cpu or cuda")] = "cpu",
    baselines: Annotated[
        bool,
        typer.Option(
            "--baselines/--no-baselines", help="score MIX and IRM1 too", rich_help_panel=BASELINES
        ),
    ] = True,
    irm_n_fft: Annotated[
        int | None,
        typer.Option(
            "--irm-n-fft", help="IRM1 frame size (default: the oracle's)", rich_help_panel=BASELINES
        ),
    ] = None,
    irm_hop: Annotated[
        int | None,
        typer.Option(
            "--irm-hop", help="IRM1 hop (default: the oracle's)", rich_help_panel=BASELINES
        ),
    ] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Score separations with museval (BSSEval v4, 1 s frames) beside the MIX and IRM1 oracles.

    Without --model only the baselines are scored (a check of the evaluation pipeline). Each
    track's scores are saved as it is scored: run the same command again (same --out) after an
    interruption and it resumes where it stopped.
    """
    from vocalmine.flows.evaluate import evaluate
    from vocalmine.separation.eval_datasets import recognise_dataset

    if dataset is not None:  # a wrong path is one line here, before the flow runs
        try:
            recognise_dataset(dataset)
        except FileNotFoundError as exc:
            fail(exc)
    oracle = {"irm_n_fft": irm_n_fft, "irm_hop": irm_hop}
    try:
        summary = evaluate(
            dataset=str(dataset) if dataset else None,
            model=model,
            variants=[v for v in variants.split(",") if v.strip()],
            out_dir=str(out_dir) if out_dir else None,
            limit=limit,
            device=device,
            baselines=baselines,
            config=str(config) if config else None,
            data_dir=str(data_dir) if data_dir else None,
            **{k: v for k, v in oracle.items() if v is not None},
        )
    except (LookupError, ValueError, OSError) as exc:
        fail(exc)
    print_summary(summary)


def print_summary(summary: dict[str, Any]) -> None:
    """Median SDR/SIR/SAR/NSDR per system and source as a table (stdout)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{summary['dataset']} ({len(summary['tracks'])} tracks, median)")
    for column in ("system", "source", "SDR", "SIR", "SAR", "NSDR"):
        table.add_column(column)
    for system, sources in summary["scores"].items():
        for source, metrics in sources.items():
            cells = [
                "–" if metrics.get(m, {}).get("median") is None else f"{metrics[m]['median']:.2f}"
                for m in ("SDR", "SIR", "SAR", "NSDR")
            ]
            table.add_row(system, source, *cells)
    Console().print(table)
    console.print(f"report: {summary['files']['report']}", highlight=False)
