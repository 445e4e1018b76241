"""``vocalmine models``: import a pretrained model into the registry, list registered models."""

from __future__ import annotations

from typing import Annotated

import typer

from vocalmine.cli.common import ConfigOption, DataDirOption, console, fail, load_settings

#: training.pretrained.PRETRAINED's names, for the help without importing torch; a test checks
#: that the two agree.
PRETRAINED_NAMES = ("spleeter-2stems",)

models_app = typer.Typer(
    help="Pretrained and registered models.", no_args_is_help=True, rich_markup_mode=None
)


def models_import_command(
    pretrained: Annotated[
        str,
        typer.Argument(help=f"pretrained model: {', '.join(PRETRAINED_NAMES)}", show_default=False),
    ],
    name: Annotated[
        str | None,
        typer.Option("--name", help="register under this name (default: the pretrained name)"),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="register a new version even if already imported")
    ] = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Convert a pretrained model shipped by an installed package and register it, with a card
    (origin, licence, geometry, measured scores). Nothing is downloaded."""
    settings = load_settings(config, data_dir=data_dir)
    from vocalmine.storage.registry import open_registry
    from vocalmine.training.pretrained import PRETRAINED, PretrainedUnavailable, load_pretrained

    try:
        model = load_pretrained(pretrained)
    except (PretrainedUnavailable, ValueError, OSError) as exc:
        fail(exc)
    info = PRETRAINED[pretrained]
    target = name or info.name
    with open_registry(settings.model_root, settings.catalog_url) as registry:
        earlier = [
            r
            for r in registry.list(target)
            if (r.get("config") or {}).get("pretrained", {}).get("name") == info.name
        ]
        if earlier and not force:
            version = earlier[-1]["version"]
            console.print(
                f"{info.name} is already registered as {target} v{version} "
                f"({settings.model_root}); --force registers another version",
                highlight=False,
            )
            return
        version = registry.register(
            model,
            name=target,
            config={"pretrained": info.card()},
            manifest=None,
            metrics=dict(info.scores),
        )
        if registry.current(target) is None:
            registry.promote(target, version)
    console.print(
        f"registered {info.name} as {target} v{version} in {settings.model_root} "
        f"({model.parameter_count():,} parameters; {info.licence})",
        highlight=False,
    )


def models_list_command(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Every registered model version: kind, preset, origin, and which one is current."""
    settings = load_settings(config, data_dir=data_dir)
    from rich.console import Console
    from rich.table import Table

    from vocalmine.cli.catalogs import existing_catalog
    from vocalmine.storage.registry import ModelRegistry

    catalog = existing_catalog(settings.catalog_url)
    if catalog is None:
        console.print(
            f"no models registered in {settings.data_dir} "
            "(`vocalmine models import spleeter-2stems` adds the pretrained one)",
            highlight=False,
        )
        return
    try:
        registry = ModelRegistry(settings.model_root, catalog)
        records = registry.list()
        default = registry.default_name() if records else None
    except (LookupError, OSError) as exc:
        fail(exc)
    finally:
        catalog.dispose()
    table = Table(title=f"models in {settings.model_root}")
    table.add_column("name", no_wrap=True)
    table.add_column("version")
    table.add_column("kind/preset", no_wrap=True)
    for column in ("origin", "current"):
        table.add_column(column)
    for record in records:
        origin = (record.get("config") or {}).get("pretrained", {}).get("label", "trained here")
        current = "yes" if record["is_current"] else ""
        if record["is_current"] and record["name"] == default:
            current = "yes (default)"
        table.add_row(
            record["name"],
            str(record["version"]),
            f"{record.get('kind') or '?'}/{record.get('preset') or '?'}",
            origin,
            current,
        )
    Console().print(table)
