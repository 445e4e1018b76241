"""Opening the catalog for a verb that only reads it: never create one as a side effect."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vocalmine.storage.catalog import Catalog


def sqlite_file(url: str) -> Path | None:
    """The database file of a ``sqlite:///PATH`` URL (None for other databases, or memory)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def existing_catalog(url: str) -> Catalog | None:
    """The catalog at ``url`` (schema brought up to date), or None where a SQLite catalog file
    does not exist, so a verb that only reads it leaves no empty ``catalog.db`` behind."""
    from vocalmine.storage.catalog import open_catalog

    path = sqlite_file(url)
    if path is not None and not path.is_file():
        return None
    return open_catalog(url)


def registered_models(model_root: str, catalog: Catalog) -> list[dict[str, Any]]:
    """Every registered version as ``{"name", "version", "is_current"}``, by name then version."""
    from vocalmine.storage.registry import ModelRegistry

    return [
        {"name": r["name"], "version": r["version"], "is_current": r["is_current"]}
        for r in ModelRegistry(model_root, catalog).list()
    ]


def model_names(records: list[dict[str, Any]]) -> str:
    """``vocalmine v1, v2 (current); other v1`` for an error message; ``none`` when empty."""
    names: dict[str, list[str]] = {}
    for record in records:
        label = f"v{record['version']}" + (" (current)" if record["is_current"] else "")
        names.setdefault(record["name"], []).append(label)
    return "; ".join(f"{name} {', '.join(v)}" for name, v in names.items()) or "none"
