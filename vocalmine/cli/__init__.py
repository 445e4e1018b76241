"""The ``vocalmine`` command line: one module per verb (see :mod:`vocalmine.cli.app`)."""

from __future__ import annotations

from vocalmine.cli.app import VERBS, app, main, register
from vocalmine.cli.common import fail, load_settings, print_counts, progress_bar

__all__ = [
    "VERBS",
    "app",
    "fail",
    "load_settings",
    "main",
    "print_counts",
    "progress_bar",
    "register",
]
