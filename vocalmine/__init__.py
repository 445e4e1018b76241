"""vocalmine: mine (original, instrumental) pairs, train a U-Net, separate vocals.

The core (``vocalmine.core``: settings, STFT presets, audio I/O, atomic writes, reason codes,
console output) and the CLI (``vocalmine.cli``) live here; the stage folders at the repository
top (``flows/ mining/ training/ separation/ storage/``) install as ``vocalmine.flows`` …
``vocalmine.storage`` (see docs/architecture.md).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vocalmine")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
