"""``vocalmine scan``: read a library's tags, headers and content hashes into the catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vocalmine.cli.common import (
    CatalogOption,
    ConfigOption,
    DataDirOption,
    fail,
    load_settings,
    print_counts,
    progress_bar,
)


def scan_command(
    library: Annotated[Path, typer.Argument(help="library folder to scan")],
    workers: Annotated[int, typer.Option(min=1, help="files read in parallel")] = 4,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    catalog_url: CatalogOption = None,
) -> None:
    """Scan LIBRARY into the catalog: tags, headers, content hashes; incremental."""
    settings = load_settings(config, data_dir=data_dir, catalog_url=catalog_url)
    if not library.is_dir():
        fail(f"{library}: library folder does not exist")
    from vocalmine.mining.scan import scan_library
    from vocalmine.storage.catalog import open_catalog

    catalog = open_catalog(settings.catalog_url)
    with progress_bar() as bar:
        task = bar.add_task("scanning", total=None)

        def report(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = scan_library(
            library, catalog, hash_bytes=settings.hash_bytes, workers=workers, progress=report
        )
    catalog.dispose()
    print_counts("scan", result.as_dict())
