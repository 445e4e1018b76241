"""Evaluation datasets: a mixture and its true stems per track, from musdb, MIR-1K or a test
library's answer key.

MUSDB references are decoded to 16-bit PCM (ffmpeg ``s16le``) because museval's SIR/SAR are
unstable with float decodes of AAC (shared/data/README.md); every dataset says how its audio was
decoded (:class:`Dataset`'s ``decoding``), and every result repeats it.
"""

from __future__ import annotations

import json
import random
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import soundfile as sf

from vocalmine.core.audio import AudioError, ffmpeg_decode, load_audio, require_ffmpeg

MUSDB_STREAMS = {"mixture": 0, "drums": 1, "bass": 2, "other": 3, "vocals": 4}
DECODING = "references and mixtures decoded to 16-bit PCM (ffmpeg s16le), scored as float"
MIR1K_DECODING = "16-bit FLAC clips read as 16-bit PCM, scored as float"
LIBRARY_DECODING = "24-bit FLAC true stems; originals decoded by libsndfile/ffmpeg to float"


@dataclass
class EvalTrack:
    """A mixture and its true stems, ``(C, N)`` float32 at ``sample_rate``."""

    name: str
    mixture: np.ndarray
    references: dict[str, np.ndarray]
    sample_rate: int
    note: str = ""

    def load(self) -> EvalTrack:
        """The track itself (a decoded track is its own :class:`LazyTrack`)."""
        return self


@dataclass(frozen=True)
class LazyTrack:
    """A track's name, known without decoding its audio; ``load()`` decodes it.

    An evaluation that resumes looks a track up by name and decodes only the ones it still has
    to score."""

    name: str
    load: Callable[[], EvalTrack]


#: A system under evaluation: one track in, an estimate per source out.
System = Callable[[EvalTrack], dict[str, np.ndarray]]


def decode_stream_pcm16(path: Path, stream: int) -> tuple[np.ndarray, int]:
    """Audio stream ``stream`` of a (stem) file as 16-bit PCM, returned as float32 ``(C, N)``."""
    require_ffmpeg(path, "to decode stem files (apt-get install -y ffmpeg)")
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", f"a:{stream}", "-show_entries",
         "stream=sample_rate,channels", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    fields = probe.stdout.strip().split(",")
    if probe.returncode != 0 or len(fields) != 2:
        raise AudioError(path, f"has no audio stream {stream}")
    rate, channels = int(fields[0]), int(fields[1])
    return ffmpeg_decode(path, channels, stream=stream, pcm="s16le").T, rate


def musdb_entries(root: str | Path, limit: int | None = None) -> list[LazyTrack]:
    """The tracks of a musdb-format folder of ``*.stem.mp4``, by name, not yet decoded."""
    files = sorted(Path(root).glob("*.stem.mp4"))
    if not files:
        raise FileNotFoundError(f"{root}: no *.stem.mp4 files (expected a musdb-format folder)")
    return [
        LazyTrack(path.name.removesuffix(".stem.mp4"), partial(load_musdb_track, path))
        for path in files[:limit]
    ]


def musdb_tracks(root: str | Path, limit: int | None = None) -> Iterator[EvalTrack]:
    """Tracks of a musdb-format folder of ``*.stem.mp4`` (accompaniment = drums + bass + other)."""
    return (entry.load() for entry in musdb_entries(root, limit))


def load_musdb_track(path: str | Path) -> EvalTrack:
    """One ``*.stem.mp4``: mixture, vocals, and accompaniment = drums + bass + other."""
    path = Path(path)
    streams = {name: decode_stream_pcm16(path, i) for name, i in MUSDB_STREAMS.items()}
    rate = streams["mixture"][1]
    length = min(a.shape[1] for a, _ in streams.values())
    audio = {name: a[:, :length] for name, (a, _) in streams.items()}
    accompaniment = audio["drums"] + audio["bass"] + audio["other"]
    return EvalTrack(
        name=path.name.removesuffix(".stem.mp4"),
        mixture=audio["mixture"],
        references={"vocals": audio["vocals"], "accompaniment": accompaniment},
        sample_rate=rate,
        note=track_quirks(audio["mixture"], audio["vocals"], accompaniment),
    )


def track_quirks(mixture: np.ndarray, vocals: np.ndarray, accompaniment: np.ndarray) -> str:
    """Data problems worth reporting: a mixture that is not the sum of its stems, no vocals."""
    notes = []
    mix_energy = float(np.sum(mixture.astype(np.float64) ** 2)) + 1e-12
    residual = float(np.sum((mixture - vocals - accompaniment).astype(np.float64) ** 2))
    if residual / mix_energy > 0.01:
        share = 100 * np.sqrt(residual / mix_energy)
        notes.append(f"mixture differs from the sum of its stems by {share:.0f} %")
    vocal_db = 10 * np.log10(float(np.sum(vocals.astype(np.float64) ** 2)) / mix_energy + 1e-12)
    if vocal_db < -20:
        notes.append(f"almost no vocals ({-vocal_db:.0f} dB below the mixture)")
    return "; ".join(notes)


def mir1k_entries(root: str | Path, count: int | None = 100, seed: int = 0) -> list[LazyTrack]:
    """MIR-1K clips by name, not yet read: ``count`` drawn with ``random.Random(seed)``, as in
    shared/data/README.md."""
    files = sorted(Path(root).glob("*.flac"))
    if not files:
        raise FileNotFoundError(f"{root}: no MIR-1K .flac clips")
    if count is not None and count < len(files):
        files = sorted(random.Random(seed).sample(files, count))
    return [LazyTrack(path.stem, partial(load_mir1k_clip, path)) for path in files]


def mir1k_tracks(root: str | Path, count: int | None = 100, seed: int = 0) -> Iterator[EvalTrack]:
    """MIR-1K clips (left = accompaniment, right = vocals), mono mixture = left + right."""
    return (entry.load() for entry in mir1k_entries(root, count, seed))


def load_mir1k_clip(path: Path) -> EvalTrack:
    """One MIR-1K clip read as 16-bit PCM: left = accompaniment, right = vocals."""
    audio, rate = sf.read(path, dtype="int16", always_2d=True)
    clip = audio.T.astype(np.float32) / 32768.0
    left, right = clip[:1], clip[1:2]
    return EvalTrack(
        name=path.stem,
        mixture=left + right,
        references={"vocals": right, "accompaniment": left},
        sample_rate=rate,
    )


def manifest_entries(
    manifest: str | Path, limit: int | None = None, library: str | Path | None = None
) -> list[LazyTrack]:
    """Songs of a test library's answer key (``vocalmine.testlib.builder``, schema 1 or 2: 2 adds
    decoys, the songs are the same), by name, not yet decoded.

    Every song with an original file and true stems is a track. Library paths are relative to
    ``library`` (default: the manifest folder's name without ``.truth``), stem paths to the
    manifest folder.
    """
    path = Path(manifest)
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("schema_version") not in (1, 2) or "songs" not in data:
        raise ValueError(f"{path}: not a library answer key (schema_version 1 or 2 with songs)")
    truth = path.parent
    root = Path(library) if library else truth.with_name(truth.name.removesuffix(".truth"))
    songs = [s for s in data["songs"] if s.get("original") and s.get("stems")]
    return [
        LazyTrack(_song_name(song), partial(load_library_song, song, root, truth))
        for song in songs[:limit]
    ]


def manifest_tracks(
    manifest: str | Path, limit: int | None = None, library: str | Path | None = None
) -> Iterator[EvalTrack]:
    """The songs of :func:`manifest_entries`, decoded one at a time."""
    return (entry.load() for entry in manifest_entries(manifest, limit, library))


def _song_name(song: dict) -> str:
    return f"{song['id']} {song['artist']} - {song['title']}"


def load_library_song(song: dict, root: Path, truth: Path) -> EvalTrack:
    """One answer-key song: its original (under ``root``) and true stems (under ``truth``).

    Stems are on the original's timeline and rate, and a decoded MP3 original starts
    ``codec_delay_samples`` late, so that many samples are dropped before comparing.
    """
    original = song["original"]
    mixture, rate = load_audio(root / original["path"])
    vocals, _ = load_audio(truth / song["stems"]["vocals"], sr=rate)
    accompaniment, _ = load_audio(truth / song["stems"]["accompaniment"], sr=rate)
    delay = int(original.get("codec_delay_samples") or 0)
    n = min(vocals.shape[1], accompaniment.shape[1], mixture.shape[1] - delay)
    channels = mixture.shape[0]
    lossy = original.get("codec") == "mp3"
    return EvalTrack(
        name=_song_name(song),
        mixture=mixture[:, delay : delay + n],
        references={
            "vocals": _channels(vocals[:, :n], channels),
            "accompaniment": _channels(accompaniment[:, :n], channels),
        },
        sample_rate=rate,
        note=f"original is {original['bitrate_kbps']} kbps MP3" if lossy else "",
    )


def _channels(audio: np.ndarray, channels: int) -> np.ndarray:
    if audio.shape[0] == channels:
        return audio
    return np.repeat(audio.mean(axis=0, keepdims=True), channels, axis=0)


def default_dataset() -> Path | None:
    """``../shared/data/musdb18-7/test`` beside the working directory or the project, if present."""
    here = Path(__file__).resolve().parents[1]
    for base in (Path.cwd(), here):
        candidate = (base / ".." / "shared" / "data" / "musdb18-7" / "test").resolve()
        if candidate.is_dir():
            return candidate
    return None


@dataclass
class Dataset:
    """Tracks to score (by name, decoded on demand), a label for reports, how their audio was
    decoded, and ``key``: what identifies the dataset's audio (its kind and resolved path), so
    stored scores are reused only for the same files."""

    label: str
    entries: list[LazyTrack]
    decoding: str
    key: str

    @property
    def tracks(self) -> Iterator[EvalTrack]:
        """The tracks, decoded one at a time."""
        return (entry.load() for entry in self.entries)


def recognise_dataset(path: str | Path) -> tuple[str, Path]:
    """What ``path`` holds, without reading any audio: ``("library", manifest)``, ``("musdb",
    folder)`` or ``("mir1k", folder)``. A path that is none of them is a one-line
    FileNotFoundError, raised before any work starts."""
    root = Path(path)
    if root.is_file() and root.suffix == ".json":
        return "library", root
    for manifest in (root / "manifest.json", root.parent / f"{root.name}.truth" / "manifest.json"):
        if manifest.is_file():
            return "library", manifest
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such dataset folder or manifest")
    if any(root.glob("*.stem.mp4")):
        return "musdb", root
    if any(root.glob("*.flac")):
        return "mir1k", root
    raise FileNotFoundError(f"{root}: not a musdb folder, a MIR-1K folder or a library answer key")


def open_dataset(path: str | Path, limit: int | None = None) -> Dataset:
    """Recognise a dataset: a musdb folder (``*.stem.mp4``), a MIR-1K folder (``*.flac``), a
    test library's answer key (its ``manifest.json``, the ``.truth`` folder holding it, or the
    library folder beside that)."""
    kind, root = recognise_dataset(path)
    key = f"{kind}:{root.resolve()}"
    if kind == "library":
        name = root.parent.name.removesuffix(".truth")
        return Dataset(f"library:{name}", manifest_entries(root, limit), LIBRARY_DECODING, key)
    if kind == "musdb":
        label = f"musdb:{root.parent.name}/{root.name}"
        return Dataset(label, musdb_entries(root, limit), DECODING, key)
    entries = mir1k_entries(root, count=limit or 100)
    return Dataset(f"mir1k:{root.name}", entries, MIR1K_DECODING, key)
