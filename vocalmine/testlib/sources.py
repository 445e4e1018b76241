"""Song sources: where a library's songs come from, as stems and the original mix.

The three sources, by name (:data:`SOURCES`):

* ``mir1k``: MIR-1K clips grouped by ``<singer>_<song>`` and joined in clip order; mix = L + R,
  accompaniment = L, vocals = R; 16 kHz mono (files stay 16 kHz or are upsampled).
* ``musdb``: MUSDB18-7 ``*.stem.mp4`` previews; original = the mixture stream, accompaniment =
  drums + bass + other, vocals = the vocals stream; 44.1 kHz stereo.
* ``synthetic``: :func:`vocalmine.testlib.synth.synthesize_song` at 44.1 kHz stereo.

Each source yields a :class:`SourceSong` by key (artist, title, album, stems ``(channels,
samples)`` float32, the mix, and on request an extended outro or a remix's accompaniment);
:func:`_open_source` opens one by name. :class:`LibraryBuildError` is the generator's one error
(missing data here, bad arguments or a non-empty output in :mod:`vocalmine.testlib.builder`);
:func:`_rng` gives the seeded random streams that make one seed give identical bytes.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vocalmine.core.audio import ffmpeg_decode, load_audio, resample
from vocalmine.testlib.synth import synthesize_song

SOURCES = ("musdb", "mir1k", "synthetic")
WORDS_A = (
    "Midnight",
    "Golden",
    "Silent",
    "Electric",
    "Broken",
    "Summer",
    "Crystal",
    "Velvet",
    "Neon",
    "Wild",
    "Lonely",
    "Distant",
    "Burning",
    "Paper",
    "Silver",
    "Hidden",
    "Café",
    "Dorada",
    "Eternal",
    "Little",
    "Last",
    "Blue",
    "Frozen",
    "Sweet",
)
WORDS_B = (
    "Harbor",
    "Dreams",
    "Rain",
    "Heart",
    "Highway",
    "Garden",
    "Lights",
    "River",
    "Letters",
    "Skyline",
    "Fire",
    "Season",
    "Canción",
    "Mañana",
    "Echoes",
    "Window",
    "Train",
    "Horizon",
    "Promise",
    "Shadows",
    "Tides",
    "Morning",
    "Station",
    "Balloon",
)
SYLLABLES = ("ka", "lo", "mi", "ra", "ven", "so", "ta", "el", "no", "ri", "an", "de", "zu", "ma")
ALBUMS = (
    "Songs from the Attic",
    "Northern Lights",
    "First Light",
    "Tape Sessions",
    "Blue Hours",
    "City Lines",
    "Open Roads",
    "Paper Moons",
    "Late Shows",
    "Sundown",
)


class LibraryBuildError(Exception):
    """A library cannot be built (missing data, bad arguments, non-empty output)."""


@dataclass
class SourceSong:
    """One song from a source: stems ``(channels, samples)`` float32 and the original mix."""

    key: str
    artist: str
    title: str
    album: str
    sample_rate: int
    vocals: np.ndarray
    accompaniment: np.ndarray
    mix: np.ndarray
    outro: np.ndarray | None = None  # extra accompaniment for an extended instrumental
    remix_accompaniment: np.ndarray | None = None  # different audio, same title


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), *stream])


def _name_hash(text: str) -> int:
    return int.from_bytes(text.encode()[:8].ljust(8, b"\0"), "little") ^ len(text) * 2654435761


def _song_title(rng: np.random.Generator) -> str:
    return f"{WORDS_A[rng.integers(len(WORDS_A))]} {WORDS_B[rng.integers(len(WORDS_B))]}"


def _artist_name(rng: np.random.Generator) -> str:
    def word() -> str:
        return "".join(SYLLABLES[i] for i in rng.integers(len(SYLLABLES), size=rng.integers(2, 4)))

    return f"{word().title()} {word().title()}" if rng.random() < 0.6 else f"The {word().title()}s"


def _speed_up(audio: np.ndarray, sr: int, factor: float = 1.04) -> np.ndarray:
    """Play ``factor`` × faster (pitch rises with it, like a DJ edit): a remix's different audio."""
    return resample(audio, int(round(sr * factor)), sr)


def _vamp_outro(acc: np.ndarray, sr: int, seconds: float) -> np.ndarray:
    """An extended outro for real songs: the accompaniment's last bars looped, fading out."""
    n = int(round(seconds * sr))
    tail = acc[:, -min(acc.shape[1], 4 * sr) :]
    reps = int(np.ceil(n / tail.shape[1]))
    loop = np.tile(tail, (1, reps))[:, :n]
    return (loop * np.linspace(1.0, 0.0, n, dtype=np.float32) ** 2).astype(np.float32)


def _tile_to(x: np.ndarray, n: int) -> np.ndarray:
    return np.tile(x, (1, int(np.ceil(n / x.shape[1]))))[:, :n]


class Mir1kSource:
    """MIR-1K songs: clips of one ``<singer>_<song>`` joined in clip order (16 kHz mono)."""

    name = "mir1k"

    def __init__(self, root: Path) -> None:
        clips = sorted(root.glob("*_*_*.flac"))
        if not clips:
            raise LibraryBuildError(f"{root}: no MIR-1K clips (<singer>_<song>_<clip>.flac) here")
        self.songs: dict[str, list[Path]] = {}
        for clip in clips:
            singer, song, number = clip.stem.rsplit("_", 2)
            self.songs.setdefault(f"{singer}_{song}", []).append(clip)
        for key, paths in self.songs.items():
            self.songs[key] = sorted(paths, key=lambda p: int(p.stem.rsplit("_", 1)[1]))

    def keys(self) -> list[str]:
        return sorted(self.songs)

    def load(
        self,
        key: str,
        rng: np.random.Generator,
        *,
        extra_outro_s: float = 0.0,
        min_duration_s: float = 0.0,
        remix: bool = False,
    ) -> SourceSong:
        parts = [load_audio(p)[0] for p in self.songs[key]]
        audio = np.concatenate(parts, axis=1)
        acc, voc = audio[0:1], audio[1:2]
        sr = 16000
        if min_duration_s:
            n = int(np.ceil(min_duration_s * sr))
            acc, voc = _tile_to(acc, n), _tile_to(voc, n)
        singer, number = key.split("_")
        title_rng = _rng(_name_hash(singer), int(number))
        return SourceSong(
            key=f"mir1k:{key}",
            artist=singer.title(),
            title=_song_title(title_rng),
            album=ALBUMS[_name_hash(singer) % len(ALBUMS)],
            sample_rate=sr,
            vocals=voc,
            accompaniment=acc,
            mix=acc + voc,
            outro=_vamp_outro(acc, sr, extra_outro_s) if extra_outro_s else None,
            remix_accompaniment=_speed_up(acc, sr) if remix else None,
        )


class MusdbSource:
    """MUSDB18-7 previews ``Artist - Title.stem.mp4``: mixture, drums, bass, other, vocals."""

    name = "musdb"

    def __init__(self, root: Path) -> None:
        self.files = {p.name.removesuffix(".stem.mp4"): p for p in root.glob("*.stem.mp4")}
        if not self.files:
            raise LibraryBuildError(f"{root}: no MUSDB18 *.stem.mp4 files here")
        if shutil.which("ffmpeg") is None:
            raise LibraryBuildError(f"{root}: decoding stem files needs ffmpeg, not installed")

    def keys(self) -> list[str]:
        return sorted(self.files)

    @staticmethod
    def _stream(path: Path, index: int) -> np.ndarray:
        return ffmpeg_decode(path, 2, stream=index, remix=True, sample_rate=44100).T.copy()

    def load(
        self,
        key: str,
        rng: np.random.Generator,
        *,
        extra_outro_s: float = 0.0,
        min_duration_s: float = 0.0,
        remix: bool = False,
    ) -> SourceSong:
        path, sr = self.files[key], 44100
        streams = [self._stream(path, k) for k in range(5)]
        n = min(s.shape[1] for s in streams)
        mix, drums, bass, other, voc = (s[:, :n] for s in streams)
        acc = drums + bass + other
        if min_duration_s:
            m = int(np.ceil(min_duration_s * sr))
            mix, acc, voc = _tile_to(mix, m), _tile_to(acc, m), _tile_to(voc, m)
        artist, _, title = key.partition(" - ")
        return SourceSong(
            key=f"musdb:{key}",
            artist=artist.strip(),
            title=title.strip() or key,
            album=ALBUMS[_name_hash(artist) % len(ALBUMS)],
            sample_rate=sr,
            vocals=voc,
            accompaniment=acc,
            mix=mix,
            outro=_vamp_outro(acc, sr, extra_outro_s) if extra_outro_s else None,
            remix_accompaniment=_speed_up(acc, sr) if remix else None,
        )


class SyntheticSource:
    """Synthetic songs (:mod:`.synth`); artists with a few songs each, one album each."""

    name = "synthetic"

    def __init__(self, seed: int, count: int, duration_range: tuple[float, float]) -> None:
        self.seed, self.count, self.duration_range = seed, count, duration_range
        rng = _rng(seed, 7)
        n_artists = max(1, int(np.ceil(count / 3)))
        artists: list[str] = []
        while len(artists) < n_artists:
            name = _artist_name(rng)
            if name not in artists:
                artists.append(name)
        self.meta: list[tuple[str, str, str, float]] = []
        used: set[tuple[str, str]] = set()
        for _ in range(count):
            artist = artists[int(rng.integers(n_artists))]
            title = _song_title(rng)
            while (artist, title) in used:
                title = _song_title(rng)
            used.add((artist, title))
            album = ALBUMS[(artists.index(artist) + seed) % len(ALBUMS)]
            duration = float(rng.uniform(*duration_range))
            self.meta.append((artist, title, album, round(duration, 3)))

    def keys(self) -> list[str]:
        return [f"{i:04d}" for i in range(self.count)]

    def load(
        self,
        key: str,
        rng: np.random.Generator,
        *,
        extra_outro_s: float = 0.0,
        min_duration_s: float = 0.0,
        remix: bool = False,
    ) -> SourceSong:
        i = int(key)
        artist, title, album, duration = self.meta[i]
        duration = max(duration, min_duration_s)
        song = synthesize_song((self.seed, i), duration, extra_outro_s=extra_outro_s)
        n = int(round(duration * song.sample_rate))
        other = None
        if remix:
            style = "remix" if rng.random() < 0.5 else "live"
            other = synthesize_song((self.seed, i), duration, style=style).accompaniment
        return SourceSong(
            key=f"synthetic:{self.seed}:{i}",
            artist=artist,
            title=title,
            album=album,
            sample_rate=song.sample_rate,
            vocals=song.vocals[:, :n],
            accompaniment=song.accompaniment[:, :n],
            mix=song.mix[:, :n],
            outro=song.accompaniment[:, n:] if extra_outro_s else None,
            remix_accompaniment=other,
        )


def _open_source(
    source: str, data_root: Path, seed: int, count: int | None, duration_range: tuple[float, float]
):  # noqa: ANN202 (one of three classes)
    if source == "mir1k":
        return Mir1kSource(data_root / "mir1k")
    if source == "musdb":
        return MusdbSource(data_root / "musdb18-7" / "test")
    if source == "synthetic":
        return SyntheticSource(seed, 20 if count is None else count, duration_range)
    raise LibraryBuildError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")


__all__: Sequence[str] = (
    "SOURCES",
    "LibraryBuildError",
    "Mir1kSource",
    "MusdbSource",
    "SourceSong",
    "SyntheticSource",
)
