"""Markdown pieces shared by the evaluation report and the Prefect artifacts: tables and inline
PNG images."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["image_data_url", "markdown_table"]


def markdown_table(
    rows: Iterable[Sequence[Any]], header: Sequence[str], cell: Callable[[Any], str] = str
) -> str:
    """A GitHub-flavoured markdown table: ``header`` then one line per row, each value written
    by ``cell``."""
    names = [str(name) for name in header]
    lines = ["| " + " | ".join(names) + " |", "|" + "|".join("---" for _ in names) + "|"]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def image_data_url(image: str | os.PathLike[str] | bytes) -> str:
    """A PNG (a file, or its bytes) as a ``data:`` URL, for Prefect artifacts and inline
    markdown."""
    data = image if isinstance(image, bytes) else Path(image).read_bytes()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")
