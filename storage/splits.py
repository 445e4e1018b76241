"""Train/valid/test split policy: every track of one artist lands in the same split.

The split is a SHA-256 of the normalised artist name mapped onto the split fractions, so it is
the same on every machine and every run, and no artist leaks from training into evaluation.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Sequence

SPLITS: tuple[str, ...] = ("train", "valid", "test")


def normalise_artist(artist: str) -> str:
    """Case-, accent- and punctuation-insensitive artist key ("Beyoncé " == "beyonce")."""
    decomposed = unicodedata.normalize("NFKD", artist or "")
    letters = "".join(c for c in decomposed if not unicodedata.combining(c))
    words = "".join(c if c.isalnum() else " " for c in letters.casefold()).split()
    return " ".join(words)


def split_for_artist(artist: str, fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> str:
    """Stable split of an artist: a SHA-256 of the normalised name mapped onto ``fractions``.

    Every track of one artist lands in the same split, on every machine and every run.
    """
    if len(fractions) != len(SPLITS) or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError(f"split fractions must be three non-negative numbers, got {fractions}")
    digest = hashlib.sha256(normalise_artist(artist).encode("utf-8")).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64 * sum(fractions)
    cumulative = 0.0
    for split, fraction in zip(SPLITS, fractions, strict=True):
        cumulative += fraction
        if position < cumulative:
            return split
    return SPLITS[-1]
