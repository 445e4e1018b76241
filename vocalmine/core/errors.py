"""The one error type a command turns into one line: ``error: <what>: <cause>``, no traceback.

Raised where the cause is known in words (a catalog that cannot be reached, a setting that
does not parse, a Dask scheduler that does not answer); the CLI prints ``str()`` as it is, and
shows the traceback only with ``--verbose``.
"""

from __future__ import annotations


class OneLineError(Exception):
    """A failure whose message is one line naming the file, URL or setting and the cause."""
