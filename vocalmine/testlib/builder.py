"""Build a realistic test music library with known ground truth, from real or synthetic songs.

Why hand-written: mining needs a library that looks like a real collection (tags, folders, mixed
codecs and rates, offsets, gains, title variants, decoys) *and* an exact answer key, so that pair
precision/recall, alignment error and gain error can be measured. No library does that.

Sources (each yields songs as vocals + accompaniment stems and the original mix):

* ``mir1k``: MIR-1K clips grouped by ``<singer>_<song>`` and joined in clip order; mix = L + R,
  accompaniment = L, vocals = R; 16 kHz mono (files stay 16 kHz or are upsampled).
* ``musdb``: MUSDB18-7 ``*.stem.mp4`` previews; original = the mixture stream, accompaniment =
  drums + bass + other, vocals = the vocals stream; 44.1 kHz stereo.
* ``synthetic``: :func:`vocalmine.testlib.synth.synthesize_song` at 44.1 kHz stereo.

Every song is peak-normalised (stems and mix by one factor) so its mix peaks at 0.89.

Profiles (``profile``; one seed and profile give identical bytes). They differ on purpose, so a
pipeline tuned on one is checked on the other:

* ``default``: lameenc MP3 (128–320 kbit/s), FLAC, WAV at 44.1/48 kHz (16 kHz sources also at
  16 kHz); layout ``<Artist>/<Album>/<NN Title>.<ext>``; original lead silence 0–0.5 s,
  instrumental 0–2 s (offsets −0.5…2 s); gains ±6 dB; markers :data:`TITLE_VARIANTS`; a cappella
  titles ``(A Cappella)``, ``- Acapella``, ``(Vocals Only)``.
* ``alt``: ffmpeg-encoded MP3 (libmp3lame, with its LAME/Xing gapless header), AAC in ``.m4a``
  (ffmpeg's native encoder; mono sources are written as dual mono) and Ogg Vorbis (``-q:a``
  3–6), plus FLAC and a little WAV, at 48/44.1/22.05 kHz (16 kHz sources: 16/22.05/48 kHz);
  per artist either ``<Artist> - <Album>/<NN> - <Artist> - <Title>.<ext>`` or
  ``<Artist>/<Title>.<ext>``; lead silences 0–3 s on both sides (offsets −3…3 s); gains
  −9…+4 dB; markers :data:`ALT_TITLE_VARIANTS` (``(Instrumental Mix)``, ``- Karaoke``,
  ``[Off Vocal Ver.]``, ``(Minus One)``, ...); a cappella titles ``(Acapella)``,
  ``[Acapella Version]``, ``(Vocal Only)``.

Untagged files are named ``Artist - Title (Instrumental).<ext>`` (or ``Artist - Title.<ext>``)
in every layout. The answer key lives apart from the library (default ``<library>.truth/``):
``manifest.json`` and ``stems/<id>.{vocals,accompaniment}.flac`` (24-bit FLAC).

Manifest schema (``schema_version`` 2; all paths relative: library files to the library root,
stems to the truth directory; no absolute paths or times, so one seed gives identical bytes)::

    {schema_version, source, profile ("default"|"alt"), seed, count,
     duration_range_s (synthetic) | null,
     thresholds {max_duration_s, max_duration_diff_s},
     songs: [{
       id, source_key, artist, title, album, kind, expected, discovery, content_duration_s,
       original: null | {path, codec ("mp3"|"flac"|"wav"|"mp3-ffmpeg"|"aac"|"vorbis"),
                  bitrate_kbps (MP3 and AAC, else null), vorbis_quality (Vorbis only),
                  sample_rate, channels, duration_s, lead_silence_s, trail_silence_s,
                  codec_delay_samples, codec_gain_db, tagged, tags},
       instrumental: null | {path, codec, bitrate_kbps, sample_rate, channels, duration_s,
                  content ("accompaniment"|"accompaniment_extended"|"mix"|"remix"),
                  offset_s, offset_samples, gain_db, codec_delay_samples, codec_gain_db,
                  lead_silence_s, trail_silence_s, extra_outro_s, title_variant, tagged, tags},
       stems: null | {vocals, accompaniment, sample_rate}}],
     decoys: [{kind, song_id, paths, expected,
               acceptable_reasons, file}],   # the last two: file decoys only (schema 2)
     corrupt: [{path, expected: ["decode_error", "not_audio"]}]}

Timing and level, precisely:

* Stems are on the ORIGINAL file's timeline and rate: stem sample ``k`` is original sample ``k``
  as written (before the codec). ``original file = vocals + accompaniment`` (musdb: the mixture
  stream, which is only approximately that sum).
* ``offset_s``: the instrumental content is delayed by ``offset_s`` relative to the original:
  original time ``t`` ↔ instrumental time ``t + offset_s`` (negative: the instrumental starts
  earlier). ``offset_samples = round(offset_s * instrumental.sample_rate)``.
* ``codec_delay_samples``: decoded files (:func:`vocalmine.core.audio.load_audio`) start that many
  samples late. lameenc MP3: 1105 (measured at build time on a noise burst); ffmpeg's MP3, AAC
  and Vorbis: measured on each file by cross-correlating the decoded file with what was written
  (0 in practice: the LAME gapless header, the MP4 edit list and the Ogg granule positions are
  honoured); lossless: 0. So accompaniment stem sample ``k`` (at time ``k / sr_orig``) is in
  the *decoded* instrumental at ``(k / sr_orig + offset_s) * sr_instr + codec_delay_samples``.
* ``gain_db``: the instrumental is ``10 ** (gain_db / 20)`` × the accompaniment stem (clamped
  so nothing clips). ``codec_gain_db`` is the level change the codec itself caused, measured by
  least squares on the decoded file (MP3 ≈ −0.4 dB; lossless 0), so the decoded instrumental is
  ``gain_db + codec_gain_db`` above the stem.

Expected outcomes (``expected``): ``pair`` (``discovery`` ``title`` or ``fingerprint``),
``no_instrumental`` (an original alone; must not be paired), ``no_counterpart`` (a lone
instrumental), ``fingerprint_mismatch`` (the "instrumental" is a remix's: 4 % faster, or another
synthetic performance), ``same_audio`` (the mix re-encoded), ``duration_mismatch`` (extended
outro, > 5 s longer), ``too_long`` (over ``max_duration_s``). Duplicates (byte-identical copies of
an original, expected ``duplicate``) and corrupt files are listed in ``decoys``/``corrupt`` only.

File decoys (schema 2): extra files made from a true pair (a song of kind ``pair``), one kind per
song, in the order of :data:`FILE_DECOYS` over the pair songs in a seeded order (all four once a
library has 4 such songs, i.e. ``count`` ≥ 11; fewer songs get the first kinds). Their ``paths``
are ``[decoy, related]`` (related: the song's original, or its instrumental for
``instrumental_copy``); ``expected`` is ``not_mined`` (in no mined pair) or ``mined_once`` (the
song's true pair is mined exactly once, with the copy standing in for its file or not, and the
copy is in no other pair); ``acceptable_reasons`` lists the rejection reasons that explain it
(``"no pair"``: never proposed):

* ``a_cappella`` (``not_mined``; ``a_cappella``, ``other_version``, ``role_mismatch``,
  ``fingerprint_mismatch``, ``no pair``): the vocal stem as rendered for the original (its
  rate and silences: offset 0, gain 0; any of the profile's codecs), tagged
  ``<Title> (A Cappella)`` or another of the profile's a cappella titles, same artist, in the
  song's album or ``<Album> (Acapellas)`` (alt: ``(Vocal Stems)``);
* ``a_cappella_untagged`` (``not_mined``; ``role_mismatch``, ``fingerprint_mismatch``,
  ``implausible_gain``, ``no pair``): the vocal stem with its own rate, lead silence and gain like
  an instrumental's, named neutrally: tagged ``Track NN`` or untagged ``Artist - Session N``;
* ``mix_copy`` (``mined_once``; ``duplicate``, ``same_audio``, ``no pair``): the original
  re-encoded (another codec, or the same lossy codec at another bitrate/quality; same rate;
  half of them with up to ±0.3 s more or less lead silence), tagged with the plain title, in
  ``Various Artists/<Compilation>/`` or ``<Artist>/<Album> (Remastered)/``;
* ``instrumental_copy`` (``mined_once``; same reasons): the instrumental re-encoded the same way,
  as ``<Title> (Instrumental)`` (alt: ``(Karaoke Version)``) on a ``Various Artists`` karaoke
  album, or as ``Track NN`` on ``<Album> (Bonus Tracks)``.

``file`` holds the decoy file's facts like a song file's, plus ``content`` (``vocals``, ``mix``,
``accompaniment``), ``offset_s``/``offset_samples``, ``gain_db`` and ``title_variant``, in the
instrumental's convention against the song's stems (``mix``: against the original as written):
stem sample ``k`` is in the decoded decoy at ``(k / sr_orig + offset_s) * sr_decoy +
codec_delay_samples``, ``gain_db + codec_gain_db`` above it. Copy decoys are skipped on a song
whose pair is not expected to be mined (over ``max_duration_s``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import unicodedata
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from vocalmine.core.atomic import atomic_path
from vocalmine.core.audio import AudioError, ffmpeg_decode, load_audio, resample, save_audio
from vocalmine.testlib.synth import synthesize_song

SOURCES = ("musdb", "mir1k", "synthetic")
SCHEMA_VERSION = 2
MAX_DURATION_S = 300.0  # vocalmine.core.settings.Settings.max_duration_s default
MAX_DURATION_DIFF_S = 5.0  # vocalmine.core.settings.Settings.max_duration_diff_s default
PEAK = 0.89
MP3_BITRATES = (128, 160, 192, 256, 320)
# The decoy kinds that take a whole song, in the order they are handed out when songs are few.
SONG_DECOYS = (
    "duration_mismatch",
    "same_audio",
    "remix",
    "lone_instrumental",
    "too_long",
    "original_only",
)
EXPECTED = {
    "pair": "pair",
    "oddly_named": "pair",
    "duration_mismatch": "duration_mismatch",
    "same_audio": "same_audio",
    "remix": "fingerprint_mismatch",
    "lone_instrumental": "no_counterpart",
    "too_long": "too_long",
    "original_only": "no_instrumental",
}
# (title template, untagged filename marker); {t} is the song title.
TITLE_VARIANTS = (
    ("{t} (Instrumental)", "(Instrumental)"),
    ("{t} - Instrumental Version", "(Instrumental)"),
    ("{t} [Karaoke Version]", "(Karaoke Version)"),
    ("{t} (Inst.)", "(Inst.)"),
    ("{t} (Off Vocal)", "(Off Vocal)"),
    ("{t} (Versión Instrumental)", "(Versión Instrumental)"),
    ("{t} (INSTRUMENTAL)", "(Instrumental)"),
    ("{t} (instrumental)", "(Instrumental)"),
)
# The alt profile's instrumental markers: other phrases found on real releases, each one
# parse_title reads as instrumental with the original's base title (tests check).
ALT_TITLE_VARIANTS = (
    ("{t} (Instrumental Mix)", "(Instrumental Mix)"),
    ("{t} - Karaoke", "(Karaoke)"),
    ("{t} [Off Vocal Ver.]", "[Off Vocal Ver.]"),
    ("{t} (Minus One)", "(Minus One)"),
    ("{t} (Backing Track)", "(Backing Track)"),
    ("{t} (No Vocals)", "(No Vocals)"),
    ("{t} (Instrumental) - 2015 Remaster", "(Instrumental)"),
    ("{t} [Instrumental]", "[Instrumental]"),
    ("{t} (Without Vocals)", "(Without Vocals)"),
)
# A cappella titles (parse_title puts "a cappella" in other_versions, same base title).
A_CAPPELLA_TITLES = ("{t} (A Cappella)", "{t} - Acapella", "{t} (Vocals Only)")
ALT_A_CAPPELLA_TITLES = ("{t} (Acapella)", "{t} [Acapella Version]", "{t} (Vocal Only)")
# Per-song file decoys (schema 2), handed to "pair" songs in this order when songs are few.
FILE_DECOYS = ("a_cappella", "a_cappella_untagged", "mix_copy", "instrumental_copy")
FILE_DECOY_EXPECTED = {
    "a_cappella": "not_mined",
    "a_cappella_untagged": "not_mined",
    "mix_copy": "mined_once",
    "instrumental_copy": "mined_once",
}
ACCEPTABLE_REASONS = {
    "a_cappella": [
        "a_cappella",
        "other_version",
        "role_mismatch",
        "fingerprint_mismatch",
        "no pair",
    ],
    "a_cappella_untagged": ["role_mismatch", "fingerprint_mismatch", "implausible_gain", "no pair"],
    "mix_copy": ["duplicate", "same_audio", "no pair"],
    "instrumental_copy": ["duplicate", "same_audio", "no pair"],
}
# File extension of each codec; the ffmpeg-encoded ones with (muxer, encoder).
CODEC_EXT = {
    "mp3": "mp3",
    "flac": "flac",
    "wav": "wav",
    "mp3-ffmpeg": "mp3",
    "aac": "m4a",
    "vorbis": "ogg",
}
FFMPEG_CODECS = {
    "mp3-ffmpeg": ("mp3", "libmp3lame"),
    "aac": ("ipod", "aac"),
    "vorbis": ("ogg", "libvorbis"),
}
LOSSLESS = ("flac", "wav")
FFMPEG_MP3_BITRATES = (96, 128, 160, 192, 256, 320)
AAC_BITRATES = (96, 128, 160, 192, 256)
VORBIS_QUALITIES = (3, 4, 5, 6)
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


@dataclass(frozen=True)
class Profile:
    """What a library looks like: codecs, rates, silences, gains, title markers and layouts."""

    name: str
    codecs: tuple[str, ...]
    codec_p: tuple[float, ...]
    rates_hi: tuple[int, ...]  # sources at >= 44.1 kHz
    rates_hi_p: tuple[float, ...]
    rates_lo: tuple[int, ...]  # 16 kHz sources (MIR-1K)
    rates_lo_p: tuple[float, ...]
    original_lead_s: float
    original_trail_s: float
    instrumental_lead_s: float
    instrumental_trail_s: float
    gain_db: tuple[float, float]
    title_variants: tuple[tuple[str, str], ...]
    a_cappella_titles: tuple[str, ...]
    a_cappella_album: str
    karaoke: tuple[str, str]  # (album, title template) of an instrumental copy
    compilations: tuple[str, ...]
    layouts: tuple[str, ...]  # "album", "flat", "artist" (see _Layout), chosen per artist


PROFILES = {
    "default": Profile(
        name="default",
        codecs=("mp3", "flac", "wav"),
        codec_p=(0.5, 0.35, 0.15),
        rates_hi=(44100, 48000),
        rates_hi_p=(0.6, 0.4),
        rates_lo=(16000, 44100, 48000),
        rates_lo_p=(0.5, 0.3, 0.2),
        original_lead_s=0.5,
        original_trail_s=1.0,
        instrumental_lead_s=2.0,
        instrumental_trail_s=2.0,
        gain_db=(-6.0, 6.0),
        title_variants=TITLE_VARIANTS,
        a_cappella_titles=A_CAPPELLA_TITLES,
        a_cappella_album="{a} (Acapellas)",
        karaoke=("Karaoke Hits", "{t} (Instrumental)"),
        compilations=("Now That's Music 42", "Summer Hits 2019", "Radio Favourites"),
        layouts=("album",),
    ),
    "alt": Profile(
        name="alt",
        codecs=("mp3-ffmpeg", "aac", "vorbis", "flac", "wav"),
        codec_p=(0.3, 0.25, 0.25, 0.15, 0.05),
        rates_hi=(48000, 44100, 22050),
        rates_hi_p=(0.45, 0.3, 0.25),
        rates_lo=(16000, 22050, 48000),
        rates_lo_p=(0.4, 0.35, 0.25),
        original_lead_s=3.0,
        original_trail_s=1.5,
        instrumental_lead_s=3.0,
        instrumental_trail_s=3.0,
        gain_db=(-9.0, 4.0),
        title_variants=ALT_TITLE_VARIANTS,
        a_cappella_titles=ALT_A_CAPPELLA_TITLES,
        a_cappella_album="{a} (Vocal Stems)",
        karaoke=("Sing Along Karaoke Vol. 3", "{t} (Karaoke Version)"),
        compilations=("The Best of 2016", "Drive Time Classics"),
        layouts=("flat", "artist"),
    ),
}


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


class LibraryBuildError(Exception):
    """A library cannot be built (missing data, bad arguments, non-empty output)."""


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


def _safe(name: str) -> str:
    """A file-system-safe path component (keeps accents and spaces)."""
    return re.sub(r'[/\\:*?"<>|]', "_", name).strip(" .") or "_"


def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


@lru_cache(maxsize=32)
def mp3_codec_delay(sample_rate: int, channels: int, bitrate_kbps: int) -> int:
    """Samples by which a decoded lameenc MP3 starts late, measured on a noise burst."""
    import tempfile

    from scipy.signal import correlate

    rng = np.random.default_rng(0)
    x = np.zeros((channels, 2 * sample_rate), np.float32)
    x[:, sample_rate // 2 : sample_rate] = 0.3 * rng.standard_normal((channels, sample_rate // 2))
    with tempfile.TemporaryDirectory() as tmp:
        path = save_audio(Path(tmp) / "probe.mp3", x, sample_rate, bitrate_kbps=bitrate_kbps)
        y, _ = load_audio(path)
    cc = correlate(y[0], x[0], mode="full", method="fft")
    return int(np.argmax(cc)) - (x.shape[1] - 1)


@lru_cache(maxsize=64)
def ffmpeg_codec_delay(
    codec: str, sample_rate: int, channels: int, bitrate_kbps: int | None, quality: int | None
) -> int:
    """Samples by which an ffmpeg-encoded file decodes late (:func:`load_audio`), measured on a
    noise burst; the fallback for a file whose own audio is silent."""
    import tempfile

    rng = np.random.default_rng(0)
    x = np.zeros((channels, 2 * sample_rate), np.float32)
    x[:, sample_rate // 2 : sample_rate] = 0.3 * rng.standard_normal((channels, sample_rate // 2))
    spec = _FileSpec(codec, sample_rate, bitrate_kbps, 0.0, 0.0, False, quality)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"probe.{CODEC_EXT[codec]}"
        _ffmpeg_encode(path, x, spec, None)
        y, _ = load_audio(path)
    return _measure_delay(y, x, sample_rate)


def _decoded_gain_db(decoded: np.ndarray, written: np.ndarray, delay: int) -> float:
    """Least-squares level of ``decoded`` (``delay`` samples late) against ``written``, in dB."""
    start = max(0, -delay)  # a file that starts early (negative delay) lost its first samples
    n = min(written.shape[1] - start, decoded.shape[1] - delay - start)
    w = written[:, start : start + n].astype(np.float64)
    d = decoded[:, start + delay : start + delay + n].astype(np.float64)
    gain = float((w * d).sum() / max(float((w * w).sum()), 1e-12))
    return round(20 * np.log10(max(gain, 1e-9)), 3) + 0.0  # never "-0.0"


def _codec_gain_db(path: Path, written: np.ndarray, delay: int) -> float:
    """Least-squares level of the decoded file against what was written, in dB (0 if lossless)."""
    if path.suffix in (".flac", ".wav"):
        return 0.0
    decoded, _ = load_audio(path)
    return _decoded_gain_db(decoded, written, delay)


def _measure_delay(decoded: np.ndarray, written: np.ndarray, sr: int, max_lag: int = 8192) -> int:
    """Samples by which ``decoded`` starts late against ``written``: the cross-correlation peak
    over the loudest 8 s of what was written, searched within ``±max_lag``."""
    from scipy.signal import correlate

    w, d = written.mean(axis=0), decoded.mean(axis=0)
    n = min(w.size, 8 * sr)
    frame = max(1, sr // 10)
    energy = np.add.reduceat(w.astype(np.float64) ** 2, np.arange(0, w.size, frame))
    window = max(1, n // frame)
    sums = np.convolve(energy, np.ones(window), mode="valid")
    start = min(int(np.argmax(sums)) * frame, w.size - n)
    ref = w[start : start + n]
    lo, hi = start - max_lag, start + n + max_lag
    seg = np.zeros(hi - lo, np.float32)
    a, b = max(lo, 0), min(hi, d.size)
    if b > a:
        seg[a - lo : b - lo] = d[a:b]
    cc = correlate(seg, ref, mode="valid", method="fft")
    return int(np.argmax(cc)) - max_lag


@dataclass
class _FileSpec:
    codec: str
    sample_rate: int
    bitrate_kbps: int | None
    lead_s: float
    trail_s: float
    tagged: bool
    quality: int | None = None  # Vorbis -q:a (variable bitrate; bitrate_kbps is None)


def _encoding(rng: np.random.Generator, codec: str, sr: int) -> tuple[int | None, int | None]:
    """(bitrate_kbps, vorbis quality) for one file; MPEG-2 rates (<= 24 kHz) cap MP3 at 160."""
    if codec in ("mp3", "mp3-ffmpeg"):
        rates = MP3_BITRATES if codec == "mp3" else FFMPEG_MP3_BITRATES
        return int(rng.choice([b for b in rates if sr > 24000 or b <= 160])), None
    if codec == "aac":
        return int(rng.choice([b for b in AAC_BITRATES if sr > 24000 or b <= 128])), None
    if codec == "vorbis":
        return None, int(rng.choice(VORBIS_QUALITIES))
    return None, None


def _choose_file(
    rng: np.random.Generator,
    native_sr: int,
    lead_max: float,
    trail_max: float,
    untagged_p: float,
    lossless: bool = False,
    profile: Profile = PROFILES["default"],
) -> _FileSpec:
    codec = str(rng.choice(list(profile.codecs), p=list(profile.codec_p)))
    if lossless and codec not in LOSSLESS:  # over-long decoys: lossy coding is the slow step
        codec = "flac"
    hi = native_sr >= 44100
    rates = list(profile.rates_hi if hi else profile.rates_lo)
    sr = int(rng.choice(rates, p=list(profile.rates_hi_p if hi else profile.rates_lo_p)))
    bitrate, quality = _encoding(rng, codec, sr)
    lead = round(float(rng.uniform(0, lead_max)) * sr) / sr  # whole samples at the file's rate
    trail = round(float(rng.uniform(0, trail_max)) * sr) / sr
    return _FileSpec(codec, sr, bitrate, lead, trail, bool(rng.random() >= untagged_p), quality)


def _render(audio: np.ndarray, sr_in: int, spec: _FileSpec) -> tuple[np.ndarray, int, int]:
    """Resample to the file's rate and pad with silence; returns (audio, lead, trail) samples."""
    x = resample(audio, sr_in, spec.sample_rate)
    lead = int(round(spec.lead_s * spec.sample_rate))
    trail = int(round(spec.trail_s * spec.sample_rate))
    c = x.shape[0]
    out = np.concatenate(
        [np.zeros((c, lead), np.float32), x, np.zeros((c, trail), np.float32)], axis=1
    )
    return out.astype(np.float32), lead, trail


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


def _assign_kinds(n: int, rng: np.random.Generator) -> list[str]:
    """Decoy kinds for ``n`` songs: each kind once when ``n`` allows, at least two true pairs."""
    kinds = list(SONG_DECOYS[: max(0, n - 2)])
    if n - len(kinds) >= 2:
        kinds.append("oddly_named")
    rest = n - len(kinds)
    extra_alone = int(0.1 * rest) if n > 20 else 0
    kinds += ["original_only"] * extra_alone + ["pair"] * (rest - extra_alone)
    return [kinds[i] for i in rng.permutation(n)]


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


def default_truth_dir(out: Path) -> Path:
    """Where the answer key goes unless told: beside the library, ``<name>.truth``."""
    return out.parent / (out.name + ".truth")


def build_library(
    source: str,
    out: Path,
    *,
    count: int | None = None,
    seed: int = 0,
    duration_range: tuple[float, float] = (120.0, 360.0),
    truth: Path | None = None,
    data_root: Path | None = None,
    progress: Callable[[str], None] | None = None,
    profile: str = "default",
) -> dict:
    """Write a library under ``out`` and its answer key under ``truth``; returns the manifest."""
    out, truth = Path(out), Path(truth) if truth else default_truth_dir(Path(out))
    if data_root is None:
        data_root = Path(__file__).resolve().parents[2] / "shared" / "data"
    if profile not in PROFILES:
        raise LibraryBuildError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    prof = PROFILES[profile]
    if any(c in FFMPEG_CODECS for c in prof.codecs) and shutil.which("ffmpeg") is None:
        raise LibraryBuildError(f"profile {profile!r} encodes with ffmpeg, not installed")
    lo, hi = duration_range
    if not 0 < lo <= hi:
        raise LibraryBuildError(f"duration range {lo}-{hi} s: need 0 < MIN <= MAX")
    if count is not None and count < 1:
        raise LibraryBuildError(f"count {count}: need at least 1 song")
    for d in (out, truth):
        if d.exists() and any(d.iterdir()):
            raise LibraryBuildError(f"{d}: output directory is not empty")
    src = _open_source(source, Path(data_root), seed, count, duration_range)
    keys = src.keys()
    if source != "synthetic":
        keys = [keys[i] for i in _rng(seed, 1).permutation(len(keys))]
    keys = keys[: count or len(keys)]
    kinds = _assign_kinds(len(keys), _rng(seed, 2))
    hosts = _assign_file_decoys(kinds, _rng(seed, 5))
    layout = _Layout(out, prof.layouts)
    decoy_layout = _Layout(out, prof.layouts, like=layout)
    songs: list[dict] = []
    decoys: list[dict] = []
    duplicate_done = False
    for index, (key, kind) in enumerate(zip(keys, kinds, strict=True)):
        rng = _rng(seed, 3, index)
        entry, rendered = _build_song(
            src, key, kind, f"s{index:03d}", rng, out, truth, layout, prof
        )
        songs.append(entry)
        paths = [f["path"] for f in (entry["original"], entry["instrumental"]) if f]
        if kind != "pair":
            decoys.append(
                {
                    "kind": kind,
                    "song_id": entry["id"],
                    "paths": paths,
                    "expected": entry["expected"],
                }
            )
        if kind == "pair" and not duplicate_done and entry["instrumental"]:
            decoys.append(_duplicate(entry, out, layout))
            duplicate_done = True
        if progress:
            progress(f"{entry['id']} {kind:18s} {entry['artist']} - {entry['title']}")
        decoy_kind = hosts.get(index)
        copy = decoy_kind in ("mix_copy", "instrumental_copy")
        if decoy_kind and rendered and not (copy and entry["expected"] != "pair"):
            decoy = _file_decoy(
                decoy_kind, entry, rendered, _rng(seed, 6, index), out, decoy_layout, prof
            )
            decoys.append(decoy)
            if progress:
                progress(f"{entry['id']} + {decoy_kind:16s} {decoy['paths'][0]}")
        del rendered
    corrupt = _write_corrupt(out, layout, _rng(seed, 4))
    for item in corrupt:
        decoys.append(
            {
                "kind": "corrupt",
                "song_id": None,
                "paths": [item["path"]],
                "expected": item["expected"],
            }
        )
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "source": source,
        "profile": profile,
        "seed": seed,
        "count": len(songs),
        "duration_range_s": list(duration_range) if source == "synthetic" else None,
        "thresholds": {
            "max_duration_s": MAX_DURATION_S,
            "max_duration_diff_s": MAX_DURATION_DIFF_S,
        },
        "songs": songs,
        "decoys": decoys,
        "corrupt": corrupt,
    }
    truth.mkdir(parents=True, exist_ok=True)
    with atomic_path(truth / "manifest.json") as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", "utf-8")
    return manifest


def _assign_file_decoys(kinds: list[str], rng: np.random.Generator) -> dict[int, str]:
    """Song index → file decoy kind: one kind per "pair" song, in :data:`FILE_DECOYS` order."""
    pairs = [i for i, k in enumerate(kinds) if k == "pair"]
    order = rng.permutation(len(pairs))
    return {pairs[int(j)]: kind for j, kind in zip(order, FILE_DECOYS, strict=False)}


def _ffmpeg_encode(path: Path, audio: np.ndarray, spec: _FileSpec, tags: dict | None) -> None:
    """Encode with the ``ffmpeg`` binary (LAME MP3 with its gapless header, native AAC in .m4a,
    libvorbis in .ogg), bit-exact so one seed gives identical bytes."""
    muxer, encoder = FFMPEG_CODECS[spec.codec]
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "f32le"]
    cmd += ["-ar", str(spec.sample_rate), "-ac", str(audio.shape[0]), "-i", "-"]
    cmd += ["-map_metadata", "-1", "-fflags", "+bitexact", "-flags:a", "+bitexact"]
    cmd += ["-c:a", encoder]
    if encoder == "aac":
        cmd += ["-aac_coder", "fast"]  # the default two-loop search is 2× slower
    if spec.quality is not None:
        cmd += ["-q:a", str(spec.quality)]
    else:
        cmd += ["-b:a", f"{spec.bitrate_kbps}k"]
    for key, value in (tags or {}).items():
        cmd += ["-metadata", f"{key}={value}"]
    pcm = np.ascontiguousarray(np.clip(audio, -1.0, 1.0).T, dtype="<f4").tobytes()
    with atomic_path(path) as tmp:
        cmd += ["-f", muxer, str(tmp)]
        proc = subprocess.run(cmd, input=pcm, capture_output=True, check=False)
        if proc.returncode != 0:
            lines = proc.stderr.decode(errors="replace").strip().splitlines()
            raise AudioError(path, f"ffmpeg cannot encode {spec.codec} ({lines[-1:]})")


def _write_file(
    out: Path, rel: str, audio: np.ndarray, spec: _FileSpec, tags: dict[str, str] | None
) -> dict:
    """Encode one library file; returns its manifest facts (codec delay and level measured)."""
    path = out / rel
    if spec.codec == "aac" and audio.shape[0] == 1:
        # Dual mono: mutagen reads 2 channels from any ffmpeg-written AAC, mono or not.
        audio = np.repeat(audio, 2, axis=0)
    tags = tags if spec.tagged else None
    delay, gain_db = 0, 0.0
    if spec.codec in FFMPEG_CODECS:
        _ffmpeg_encode(path, audio, spec, tags)
        decoded, _ = load_audio(path)
        if float(np.abs(audio).max()) > 1e-4:
            delay = _measure_delay(decoded, audio, spec.sample_rate)
            gain_db = _decoded_gain_db(decoded, audio, delay)
        else:  # nothing to correlate (a silent stem): the codec's delay on a noise burst
            delay = ffmpeg_codec_delay(
                spec.codec, spec.sample_rate, audio.shape[0], spec.bitrate_kbps, spec.quality
            )
    else:
        bitrate = spec.bitrate_kbps or 320
        save_audio(path, audio, spec.sample_rate, bitrate_kbps=bitrate, tags=tags)
        if spec.codec == "mp3":
            delay = mp3_codec_delay(spec.sample_rate, audio.shape[0], bitrate)
            gain_db = _codec_gain_db(path, audio, delay)
    facts = {
        "path": rel,
        "codec": spec.codec,
        "bitrate_kbps": spec.bitrate_kbps,
        "sample_rate": spec.sample_rate,
        "channels": int(audio.shape[0]),
        "duration_s": round(audio.shape[1] / spec.sample_rate, 6),
        "lead_silence_s": round(spec.lead_s, 6),
        "trail_silence_s": round(spec.trail_s, 6),
        "codec_delay_samples": delay,
        "codec_gain_db": gain_db,
        "tagged": spec.tagged,
        "tags": dict(tags) if tags else {},
    }
    if spec.quality is not None:
        facts["vorbis_quality"] = spec.quality
    return facts


@dataclass
class _Rendered:
    """What a song's file decoys are made of: audio as written, before the codec."""

    sample_rate: int  # the source's
    vocals: np.ndarray  # scaled, at the source's rate, no silence
    vocals_file: np.ndarray  # rendered like the original (its rate and silences)
    original: np.ndarray
    original_spec: _FileSpec
    instrumental: np.ndarray
    instrumental_spec: _FileSpec


def _build_song(
    src,  # noqa: ANN001
    key: str,
    kind: str,
    song_id: str,
    rng: np.random.Generator,
    out: Path,
    truth: Path,
    layout: _Layout,
    profile: Profile = PROFILES["default"],
) -> tuple[dict, _Rendered | None]:
    extra = float(rng.uniform(8.0, 15.0)) if kind == "duration_mismatch" else 0.0
    min_dur = (
        float(rng.uniform(MAX_DURATION_S + 5, MAX_DURATION_S + 20)) if kind == "too_long" else 0.0
    )
    song = src.load(key, rng, extra_outro_s=extra, min_duration_s=min_dur, remix=kind == "remix")
    sr = song.sample_rate
    peak = max(float(np.abs(song.mix).max()), float(np.abs(song.accompaniment).max()), 1e-6)
    scale = np.float32(PEAK / peak)
    voc, acc, mix = song.vocals * scale, song.accompaniment * scale, song.mix * scale
    content_s = mix.shape[1] / sr
    expected = EXPECTED[kind]
    if kind in ("pair", "oddly_named") and content_s > MAX_DURATION_S:
        expected = "too_long"
    entry: dict = {
        "id": song_id,
        "source_key": song.key,
        "artist": song.artist,
        "title": song.title,
        "album": song.album,
        "kind": kind,
        "expected": expected,
        "discovery": ("fingerprint" if kind == "oddly_named" else "title")
        if expected == "pair"
        else None,
        "content_duration_s": round(content_s, 6),
        "original": None,
        "instrumental": None,
        "stems": None,
    }
    long = content_s > MAX_DURATION_S
    o_spec = _choose_file(
        rng,
        sr,
        profile.original_lead_s,
        profile.original_trail_s,
        untagged_p=0.08,
        lossless=long,
        profile=profile,
    )
    i_spec = _choose_file(
        rng,
        sr,
        profile.instrumental_lead_s,
        profile.instrumental_trail_s,
        untagged_p=0.2,
        lossless=long,
        profile=profile,
    )
    variants = profile.title_variants
    template, file_marker = variants[int(rng.integers(len(variants)))]
    base_title = song.title
    if rng.random() < 0.3:
        base_title = _strip_accents(base_title)
    if rng.random() < 0.15:
        base_title = base_title.lower()
    separate_album = rng.random() < 0.3
    gain_db = float(rng.uniform(*profile.gain_db))
    orig_tags = {"title": song.title, "artist": song.artist, "album": song.album}

    if kind != "lone_instrumental":
        audio, lead, _ = _render(mix, sr, o_spec)
        stem = song.title if o_spec.tagged else f"{song.artist} - {song.title}"
        ext = CODEC_EXT[o_spec.codec]
        rel = layout.path(song.artist, song.album, stem, ext, numbered=o_spec.tagged)
        entry["original"] = _write_file(out, rel, audio, o_spec, orig_tags)
        stems = {}
        for name, x in (("vocals", voc), ("accompaniment", acc)):
            rendered, _, _ = _render(x, sr, o_spec)
            stem_rel = f"stems/{song_id}.{name}.flac"
            save_audio(truth / stem_rel, rendered, o_spec.sample_rate, subtype="PCM_24")
            stems[name] = stem_rel
            if name == "vocals":
                vocals_file = rendered
        entry["stems"] = {**stems, "sample_rate": o_spec.sample_rate}
        original_audio = audio
    if kind == "original_only":
        return entry, None

    content = {
        "remix": "remix",
        "same_audio": "mix",
        "duration_mismatch": "accompaniment_extended",
    }.get(kind, "accompaniment")
    if kind == "same_audio":
        if profile.name == "default":
            re_codec = "mp3" if o_spec.codec != "mp3" else "flac"
        else:
            re_codec = "aac" if o_spec.codec in LOSSLESS else "flac"
        i_spec = _FileSpec(
            re_codec,
            o_spec.sample_rate,
            192 if re_codec not in LOSSLESS else None,
            o_spec.lead_s,
            o_spec.trail_s,
            i_spec.tagged,
        )
        i_audio, gain_db = original_audio, 0.0
    else:
        signal = {"remix": song.remix_accompaniment, "accompaniment": song.accompaniment}.get(
            content, song.accompaniment
        )
        if content == "accompaniment_extended":
            signal = np.concatenate([song.accompaniment, song.outro], axis=1)
        signal = signal * scale
        headroom_db = 20 * np.log10(0.99 / max(float(np.abs(signal).max()), 1e-6))
        gain_db = round(min(gain_db, headroom_db), 3)
        i_audio, _, _ = _render(signal * np.float32(10 ** (gain_db / 20)), sr, i_spec)
    if kind == "oddly_named":
        i_title = f"Track {int(rng.integers(1, 20)):02d}"
        variant, i_tags = None, {"title": i_title, "artist": song.artist, "album": song.album}
        stem = i_title if i_spec.tagged else f"{song.artist} - {i_title}"
    else:
        variant = template
        i_title = template.format(t=base_title)
        album = f"{song.album} (Instrumentals)" if separate_album else song.album
        i_tags = {"title": i_title, "artist": song.artist, "album": album}
        stem = i_title if i_spec.tagged else f"{song.artist} - {base_title} {file_marker}"
    album_dir = i_tags["album"]
    ext = CODEC_EXT[i_spec.codec]
    rel = layout.path(song.artist, album_dir, stem, ext, numbered=i_spec.tagged)
    facts = _write_file(out, rel, i_audio, i_spec, i_tags)
    offset_s = 0.0
    if kind != "same_audio":
        offset_s = i_spec.lead_s - (o_spec.lead_s if entry["original"] else 0.0)
    entry["instrumental"] = {
        **facts,
        "content": content,
        "offset_s": round(offset_s, 9),
        "offset_samples": int(round(offset_s * i_spec.sample_rate)),
        "gain_db": gain_db,
        "extra_outro_s": round(song.outro.shape[1] / sr, 6)
        if content == "accompaniment_extended"
        else 0.0,
        "title_variant": variant,
    }
    rendered_song = None
    if kind == "pair" and entry["original"]:
        rendered_song = _Rendered(sr, voc, vocals_file, original_audio, o_spec, i_audio, i_spec)
    return entry, rendered_song


def _other_codec(rng: np.random.Generator, spec: _FileSpec, profile: Profile) -> _FileSpec:
    """A re-encode of ``spec``'s file: another codec, or the same lossy codec at another
    bitrate; same rate and silences."""
    codec = spec.codec
    if profile.name == "default":
        if codec in LOSSLESS:
            codec = "mp3"
        elif rng.random() < 0.6:
            codec = "flac"
    else:
        choices = [c for c in profile.codecs if c != codec and c != "wav"]
        if codec not in LOSSLESS and rng.random() < 0.4:
            choices = [codec]  # same codec, other bitrate
        codec = str(rng.choice(choices))
    bitrate, quality = _encoding(rng, codec, spec.sample_rate)
    if codec == "mp3" and codec == spec.codec:
        bitrate = 192 if spec.bitrate_kbps != 192 else 128
        if spec.sample_rate <= 24000:
            bitrate = 160 if spec.bitrate_kbps != 160 else 128
    elif codec == spec.codec:
        for _ in range(8):
            if (bitrate, quality) != (spec.bitrate_kbps, spec.quality):
                break
            bitrate, quality = _encoding(rng, codec, spec.sample_rate)
        if (bitrate, quality) == (spec.bitrate_kbps, spec.quality):
            codec, bitrate, quality = "flac", None, None
    elif codec == "mp3":
        bitrate = 192 if spec.sample_rate > 24000 else 160
    return _FileSpec(codec, spec.sample_rate, bitrate, spec.lead_s, spec.trail_s, True, quality)


def _shift_lead(audio: np.ndarray, spec: _FileSpec, delta_s: float) -> tuple[np.ndarray, _FileSpec]:
    """``audio`` (rendered with ``spec``'s lead silence) with ``delta_s`` more lead silence
    (less when negative, never below none); returns the audio and its spec."""
    sr = spec.sample_rate
    lead = int(round(spec.lead_s * sr))
    delta = max(int(round(delta_s * sr)), -lead)
    if delta >= 0:
        audio = np.concatenate([np.zeros((audio.shape[0], delta), np.float32), audio], axis=1)
    else:
        audio = audio[:, -delta:]
    spec = _FileSpec(
        spec.codec, sr, spec.bitrate_kbps, (lead + delta) / sr, spec.trail_s, True, spec.quality
    )
    return audio, spec


def _file_decoy(
    kind: str,
    entry: dict,
    r: _Rendered,
    rng: np.random.Generator,
    out: Path,
    layout: _Layout,
    profile: Profile,
) -> dict:
    """One of :data:`FILE_DECOYS` made from a true pair's audio; returns its ``decoys`` entry.

    ``file`` holds the decoy's facts like a song file's, with ``content`` (``vocals``, ``mix``,
    ``accompaniment``), ``offset_s``/``offset_samples`` and ``gain_db`` against the song's stems
    (or the mix written as the original), in the instrumental's convention.
    """
    artist, title, album = entry["artist"], entry["title"], entry["album"]
    o_spec, i_spec = r.original_spec, r.instrumental_spec
    o_lead = o_spec.lead_s
    variant = None
    if kind == "a_cappella":
        variant = str(rng.choice(list(profile.a_cappella_titles)))
        d_title = variant.format(t=title)
        if rng.random() < 0.5:
            album = profile.a_cappella_album.format(a=album)
        codec = str(rng.choice(list(profile.codecs), p=list(profile.codec_p)))
        bitrate, quality = _encoding(rng, codec, o_spec.sample_rate)
        spec = _FileSpec(
            codec, o_spec.sample_rate, bitrate, o_spec.lead_s, o_spec.trail_s, True, quality
        )
        audio, content, gain_db = r.vocals_file, "vocals", 0.0
        tags = {"title": d_title, "artist": artist, "album": album}
        rel = layout.path(artist, album, d_title, CODEC_EXT[codec], numbered=False)
        related = entry["original"]["path"]
    elif kind == "a_cappella_untagged":
        spec = _choose_file(
            rng,
            r.sample_rate,
            profile.instrumental_lead_s,
            profile.instrumental_trail_s,
            untagged_p=0.5,
            profile=profile,
        )
        headroom_db = 20 * np.log10(0.99 / max(float(np.abs(r.vocals).max()), 1e-6))
        gain_db = round(min(float(rng.uniform(*profile.gain_db)), headroom_db), 3)
        audio, _, _ = _render(r.vocals * np.float32(10 ** (gain_db / 20)), r.sample_rate, spec)
        content = "vocals"
        if spec.tagged:
            d_title = f"Track {int(rng.integers(1, 20)):02d}"
            stem = d_title
        else:
            d_title = f"Session {int(rng.integers(1, 10))}"
            stem = f"{artist} - {d_title}"
        tags = {"title": d_title, "artist": artist, "album": album}
        rel = layout.path(artist, album, stem, CODEC_EXT[spec.codec], numbered=False)
        related = entry["original"]["path"]
    elif kind == "mix_copy":
        spec = _other_codec(rng, o_spec, profile)
        delta = float(rng.uniform(-0.3, 0.3)) if rng.random() < 0.5 else 0.0
        audio, spec = _shift_lead(r.original, spec, delta)
        content, gain_db = "mix", 0.0
        if rng.random() < 0.5:
            folder_artist = "Various Artists"
            album = str(rng.choice(list(profile.compilations)))
        else:
            folder_artist, album = artist, f"{album} (Remastered)"
        tags = {"title": title, "artist": artist, "album": album}
        rel = layout.path(folder_artist, album, title, CODEC_EXT[spec.codec], file_artist=artist)
        related = entry["original"]["path"]
    elif kind == "instrumental_copy":
        inst = entry["instrumental"]
        spec = _other_codec(rng, i_spec, profile)
        delta = float(rng.uniform(-0.3, 0.3)) if rng.random() < 0.5 else 0.0
        audio, spec = _shift_lead(r.instrumental, spec, delta)
        content, gain_db = "accompaniment", inst["gain_db"]
        o_lead = i_spec.lead_s - inst["offset_s"]  # the stems' lead, on the original's timeline
        if rng.random() < 0.5:
            folder_artist, album = "Various Artists", profile.karaoke[0]
            variant = profile.karaoke[1]
            d_title = variant.format(t=title)
        else:
            folder_artist, album = artist, f"{album} (Bonus Tracks)"
            d_title = f"Track {int(rng.integers(1, 20)):02d}"
        tags = {"title": d_title, "artist": artist, "album": album}
        rel = layout.path(folder_artist, album, d_title, CODEC_EXT[spec.codec], file_artist=artist)
        related = inst["path"]
    else:
        raise ValueError(f"unknown file decoy {kind!r}")
    facts = _write_file(out, rel, audio, spec, tags)
    offset_s = spec.lead_s - o_lead
    return {
        "kind": kind,
        "song_id": entry["id"],
        "paths": [rel, related],
        "expected": FILE_DECOY_EXPECTED[kind],
        "acceptable_reasons": list(ACCEPTABLE_REASONS[kind]),
        "file": {
            **facts,
            "content": content,
            "offset_s": round(offset_s, 9),
            "offset_samples": int(round(offset_s * spec.sample_rate)),
            "gain_db": gain_db,
            "title_variant": variant,
        },
    }


def _duplicate(entry: dict, out: Path, layout: _Layout) -> dict:
    """A byte-identical copy of a song's original on a compilation album."""
    src = entry["original"]["path"]
    ext = src.rsplit(".", 1)[1]
    rel = layout.path(
        "Various Artists",
        "Greatest Hits Collection",
        entry["title"],
        ext,
        file_artist=entry["artist"],
    )
    with atomic_path(out / rel) as tmp:
        shutil.copyfile(out / src, tmp)
    return {
        "kind": "duplicate",
        "song_id": entry["id"],
        "paths": [rel, src],
        "expected": "duplicate",
    }


def _write_corrupt(out: Path, layout: _Layout, rng: np.random.Generator) -> list[dict]:
    """A FLAC with a valid magic and garbage after it, and an HTML error page saved as MP3."""
    garbage = rng.integers(0, 256, size=6000, dtype=np.uint8).tobytes()
    files = [
        (layout.path("Unknown Artist", "Downloads", "Broken Song", "flac"), b"fLaC" + garbage),
        (
            layout.path("Unknown Artist", "Downloads", "Failed Download", "mp3"),
            b"<!DOCTYPE html><html><body><h1>404 Not Found</h1></body></html>\n" * 20,
        ),
    ]
    result = []
    for rel, data in files:
        with atomic_path(out / rel) as tmp:
            tmp.write_bytes(data)
        result.append({"path": rel, "expected": ["decode_error", "not_audio"]})
    return result


def library_stats(out: Path) -> dict:
    """Files, total audio minutes (from the manifest's durations) and MB of a built library."""
    files = [p for p in Path(out).rglob("*") if p.is_file()]
    return {"files": len(files), "mb": round(sum(p.stat().st_size for p in files) / 1e6, 2)}


def parse_duration_range(text: str) -> tuple[float, float]:
    """``"120-360"`` → (120.0, 360.0)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*-\s*(\d+(?:\.\d*)?)\s*", text)
    if not match:
        raise LibraryBuildError(f"duration {text!r}: expected MIN-MAX seconds, e.g. 120-360")
    return float(match.group(1)), float(match.group(2))


def total_minutes(manifest: dict) -> float:
    """Minutes of audio in all library files the manifest lists."""
    seconds = sum(
        f["duration_s"] for s in manifest["songs"] for f in (s["original"], s["instrumental"]) if f
    )
    seconds += sum(
        s["original"]["duration_s"]
        for s in manifest["songs"]
        if any(d["kind"] == "duplicate" and d["song_id"] == s["id"] for d in manifest["decoys"])
    )
    seconds += sum(d["file"]["duration_s"] for d in manifest["decoys"] if "file" in d)
    return round(seconds / 60, 2)


__all__: Sequence[str] = (
    "PROFILES",
    "SCHEMA_VERSION",
    "SOURCES",
    "LibraryBuildError",
    "Profile",
    "build_library",
    "default_truth_dir",
    "library_stats",
    "mp3_codec_delay",
    "parse_duration_range",
    "total_minutes",
)
