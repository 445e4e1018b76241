"""``vocalmine config show``: the effective settings."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from vocalmine.cli.common import ConfigOption, DataDirOption, load_settings

config_app = typer.Typer(
    help="Show the effective configuration.", no_args_is_help=True, rich_markup_mode=None
)


def config_show(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Print the effective settings (defaults < file < VOCALMINE_* env < options)."""
    settings = load_settings(config, data_dir=data_dir)
    values = settings.public_dict()
    if as_json:
        typer.echo(json.dumps(values, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("setting", "value", title="vocalmine settings")
    for key, value in values.items():
        table.add_row(key, str(value))
    Console().print(table)
