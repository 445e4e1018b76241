"""``vocalmine mine`` (the mining flow) and ``vocalmine pairs --why`` (its decisions, explained)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from vocalmine.cli.common import (
    CatalogOption,
    ConfigOption,
    DataDirOption,
    check_catalog,
    fail,
    load_settings,
    print_counts,
    start_flow_server,
)

SHARDS = "Shards and cluster"


def mine_command(
    library: Annotated[Path, typer.Argument(help="library folder to mine")],
    shard_root: Annotated[
        str | None, typer.Option(help="shard root (path or fsspec URL)", rich_help_panel=SHARDS)
    ] = None,
    dataset: Annotated[
        str | None, typer.Option(help="shard dataset name", rich_help_panel=SHARDS)
    ] = None,
    preset: Annotated[
        str | None, typer.Option(help="STFT preset: paper or hq", rich_help_panel=SHARDS)
    ] = None,
    segment_skip_s: Annotated[
        float | None,
        typer.Option(help="seconds skipped at start and end (0 for short clips)"),
    ] = None,
    dask_address: Annotated[
        str | None,
        typer.Option(help="Dask scheduler (default: a LocalCluster)", rich_help_panel=SHARDS),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="LocalCluster worker processes", rich_help_panel=SHARDS),
    ] = None,
    resweep: Annotated[
        bool,
        typer.Option(
            "--resweep",
            help="forget the stored fingerprint checks and query every recording against the "
            "index again; default: only recordings not swept under the current settings",
        ),
    ] = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    catalog_url: CatalogOption = None,
) -> None:
    """Mine LIBRARY: scan, match, fingerprint, verify, align, gain, derive vocals, write shards.

    Defaults come from the settings (vocalmine config show).
    """
    settings = load_settings(
        config,
        data_dir=data_dir,
        catalog_url=catalog_url,
        shard_root=shard_root,
        dataset=dataset,
        dask_address=dask_address,
        dask_workers=workers,
        stft_preset=preset,
        segment_skip_s=segment_skip_s,
    )
    if not library.is_dir():
        fail(f"{library}: library folder does not exist")
    check_catalog(settings.catalog_url)
    if settings.dask_address:
        check_scheduler(settings.dask_address)
    start_flow_server("vocalmine.flows.mine")
    from vocalmine.flows.mine import configured_mine_flow

    totals = configured_mine_flow(settings)(
        str(library),
        data_dir=str(settings.data_dir),
        catalog_url=settings.catalog_url,
        shard_root=settings.shard_root,
        dataset=settings.dataset,
        stft_preset=settings.stft_preset,
        segment_skip_s=settings.segment_skip_s,
        config=str(config) if config else None,
        resweep=resweep,
    )
    for key in ("tracks", "pairs", "rejections", "shards"):
        print_counts(f"mining: {key}", totals.get(key, {}))


#: Seconds :func:`check_scheduler` waits for a Dask scheduler to answer.
SCHEDULER_TIMEOUT_S = 10.0


def check_scheduler(address: str, timeout_s: float = SCHEDULER_TIMEOUT_S) -> None:
    """Fail in one line unless a Dask scheduler answers at ``address`` within ``timeout_s``:
    checked before the flow starts, so a wrong address costs seconds, not a scan."""
    import asyncio

    from distributed.comm import connect

    async def probe() -> None:
        comm = await connect(address, timeout=timeout_s)
        await comm.close()

    try:
        asyncio.run(probe())
    except ValueError as exc:
        fail(f"malformed Dask scheduler address {address!r} ({exc})")
    except Exception as exc:  # a timeout, a refusal, or garbage from a server that is not Dask
        text = " ".join(str(exc).split())
        cause = "no answer" if "Timed out" in text else text.rsplit(": ", 1)[-1]
        if isinstance(exc, MemoryError):
            cause = "something that is not a Dask scheduler answered"
        fail(
            f"no Dask scheduler at {address} after {timeout_s:g} s "
            f"({cause or type(exc).__name__}); check --dask-address / VOCALMINE_DASK_ADDRESS"
        )


def pairs_command(
    why: Annotated[str, typer.Option("--why", help="pair id or file path to explain")],
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    catalog_url: CatalogOption = None,
) -> None:
    """Explain every decision about a pair or a file: status, reason code, detail, numbers."""
    settings = load_settings(config, data_dir=data_dir, catalog_url=catalog_url)
    from vocalmine.cli.catalogs import existing_catalog
    from vocalmine.storage import mining_store as store

    catalog = existing_catalog(settings.catalog_url)
    if catalog is None:
        fail(f"{why}: no catalog at {settings.catalog_url} (scan or mine the library first)", 1)
    try:
        decisions = store.explain(catalog, why)
    finally:
        catalog.dispose()
    if not decisions:
        fail(f"{why}: not in the catalog (scan or mine the library first)", 1)
    for decision in decisions:
        typer.echo("\n".join(explain_lines(decision)) + "\n")


def _number(value: float) -> str:
    """Three significant digits; whole numbers from 1000 up."""
    if value == 0 or value != value:  # zero, NaN
        return "0" if value == 0 else "nan"
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items() if v not in (None, [], ""))
    return str(value)


def explain_lines(decision: dict[str, Any]) -> list[str]:
    """A decision as ``key: value`` lines, then its evidence trail: how the pair was found, how
    it was oriented, each check with its value and threshold, copy groups, audio figures."""
    evidence = decision.pop("evidence", None) or {}
    lines = [f"{k}: {_fmt(v)}" for k, v in decision.items() if v not in (None, [], "")]
    for how, facts in (evidence.get("found") or {}).items():
        lines.append(f"found by {how}: {_fmt(facts)}")
    if evidence.get("fingerprints"):
        lines.append(f"fingerprint verification: {_fmt(evidence['fingerprints'])}")
    if evidence.get("orientation"):
        lines.append(f"orientation: {_fmt(evidence['orientation'])}")
    for title in evidence.get("titles") or []:
        name = title.get("check", "title")
        lines.append(f"{name}: {_fmt({k: v for k, v in title.items() if k != 'check'})}")
    for role, group in (evidence.get("copy_groups") or {}).items():
        lines.append(f"copy group of the {role}: {_fmt(group)}")
    for check in evidence.get("checks") or []:
        mark = "pass" if check.get("passed") else "FAIL"
        lines.append(
            f"check {check.get('check')}: {_fmt(check.get('value'))} "
            f"({check.get('rule')} {_fmt(check.get('threshold'))}) {mark}"
        )
    if evidence.get("audio"):
        lines.append(f"audio: {_fmt(evidence['audio'])}")
    return lines
