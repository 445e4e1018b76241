"""Library layout: the folder and file name of each library file, one folder style per artist.

The styles (a profile's ``layouts``) and the numbering are described on :class:`_Layout`;
untagged files are named ``Artist - Title (Instrumental).<ext>`` (or ``Artist - Title.<ext>``) by
the caller in every style, and names are made file-system safe by :func:`_safe`.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from pathlib import Path


def _safe(name: str) -> str:
    """A file-system-safe path component (keeps accents and spaces)."""
    return re.sub(r'[/\\:*?"<>|]', "_", name).strip(" .") or "_"


class _Layout:
    """Hands out library paths, one folder style per artist (from the profile's ``layouts``):

    * ``album``: ``<Artist>/<Album>/<NN Title>.ext``, per-album track numbers;
    * ``flat``: ``<Artist> - <Album>/<NN> - <Artist> - <Title>.ext``;
    * ``artist``: ``<Artist>/<Title>.ext`` (no album folder, no numbers).

    Untagged files come unnumbered, named ``Artist - Title ...`` by the caller in every style.
    A layout made ``like`` another shares its used names but numbers on its own (decoys added
    beside a song never shift the numbers of the songs built after it).
    """

    def __init__(
        self, root: Path, layouts: Sequence[str] = ("album",), like: _Layout | None = None
    ) -> None:
        self.root = root
        self.layouts = tuple(layouts)
        self.numbers: dict[tuple[str, str], int] = {}
        self.used: set[str] = like.used if like else set()

    def style(self, artist: str) -> str:
        if len(self.layouts) == 1:
            return self.layouts[0]
        return self.layouts[zlib.crc32(artist.encode()) % len(self.layouts)]

    def path(
        self,
        artist: str,
        album: str,
        stem: str,
        ext: str,
        numbered: bool = True,
        file_artist: str | None = None,
    ) -> str:
        """A new path; ``file_artist``: whose name a flat file carries (compilations)."""
        style = self.style(artist)
        key = (artist, album)
        self.numbers[key] = self.numbers.get(key, 0) + 1
        number = self.numbers[key]
        if style == "flat":
            folder = f"{_safe(artist)} - {_safe(album)}"
            name = f"{number:02d} - {file_artist or artist} - {stem}" if numbered else stem
        elif style == "artist":
            folder, name = _safe(artist), stem
        else:
            folder = f"{_safe(artist)}/{_safe(album)}"
            name = f"{number:02d} {stem}" if numbered else stem
        rel = f"{folder}/{_safe(name)}.{ext}"
        k = 2
        while rel.lower() in self.used:
            rel = f"{folder}/{_safe(name)} ({k}).{ext}"
            k += 1
        self.used.add(rel.lower())
        return rel
