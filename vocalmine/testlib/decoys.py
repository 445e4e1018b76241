"""Decoys: the song kinds that are not a true pair, and the extra files made beside the songs.

Song decoys (:data:`SONG_DECOYS`; a whole song each, expected outcome in :data:`EXPECTED`) are
handed out by :func:`_assign_kinds` and built with the songs by
:func:`vocalmine.testlib.builder.build_library`. This module makes the files beside them: one
duplicate (:func:`_duplicate`), two corrupt files (:func:`_write_corrupt`) and the file decoys.

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

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vocalmine.core.atomic import atomic_path
from vocalmine.testlib.codecs import (
    CODEC_EXT,
    LOSSLESS,
    _encoding,
    _FileSpec,
    _render,
    _write_file,
)
from vocalmine.testlib.layout import _Layout
from vocalmine.testlib.profiles import Profile, _choose_file

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


def _assign_kinds(n: int, rng: np.random.Generator) -> list[str]:
    """Decoy kinds for ``n`` songs: each kind once when ``n`` allows, at least two true pairs."""
    kinds = list(SONG_DECOYS[: max(0, n - 2)])
    if n - len(kinds) >= 2:
        kinds.append("oddly_named")
    rest = n - len(kinds)
    extra_alone = int(0.1 * rest) if n > 20 else 0
    kinds += ["original_only"] * extra_alone + ["pair"] * (rest - extra_alone)
    return [kinds[i] for i in rng.permutation(n)]


def _assign_file_decoys(kinds: list[str], rng: np.random.Generator) -> dict[int, str]:
    """Song index → file decoy kind: one kind per "pair" song, in :data:`FILE_DECOYS` order."""
    pairs = [i for i, k in enumerate(kinds) if k == "pair"]
    order = rng.permutation(len(pairs))
    return {pairs[int(j)]: kind for j, kind in zip(order, FILE_DECOYS, strict=False)}


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


__all__: Sequence[str] = (
    "ACCEPTABLE_REASONS",
    "EXPECTED",
    "FILE_DECOYS",
    "FILE_DECOY_EXPECTED",
    "SONG_DECOYS",
)
