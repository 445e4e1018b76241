"""Build a realistic test music library with known ground truth, from real or synthetic songs.

Why hand-written: mining needs a library that looks like a real collection (tags, folders, mixed
codecs and rates, offsets, gains, title variants, decoys) *and* an exact answer key, so that pair
precision/recall, alignment error and gain error can be measured. No library does that.

The generator's modules (``vocalmine.testlib``), each with its part of this description:

* :mod:`.sources`: the song sources (``mir1k``, ``musdb``, ``synthetic``) and
  :class:`~vocalmine.testlib.sources.LibraryBuildError`;
* :mod:`.profiles`: the ``default`` and ``alt`` profiles (codecs, rates, silences, gains,
  markers, layouts) and drawing a file's encoding from one;
* :mod:`.codecs`: codec tables, rendering and encoding a file, its measured codec delay and gain;
* :mod:`.layout`: folders and file names;
* :mod:`.decoys`: song decoy kinds, file decoys, the duplicate and the corrupt files;
* this module: :func:`build_library`, each song's original, instrumental and stems, and the
  manifest (the answer key).

Every song is peak-normalised (stems and mix by one factor) so its mix peaks at 0.89.

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

File decoys (schema 2; their kinds, ``paths``, ``expected``, ``acceptable_reasons`` and
``file``): see :mod:`vocalmine.testlib.decoys`.
"""

from __future__ import annotations

import json
import re
import shutil
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from vocalmine.core.atomic import atomic_path
from vocalmine.core.audio import save_audio
from vocalmine.testlib.codecs import (
    CODEC_EXT,
    FFMPEG_CODECS,
    LOSSLESS,
    _FileSpec,
    _render,
    _write_file,
)
from vocalmine.testlib.decoys import (
    EXPECTED,
    _assign_file_decoys,
    _assign_kinds,
    _duplicate,
    _file_decoy,
    _Rendered,
    _write_corrupt,
)
from vocalmine.testlib.layout import _Layout
from vocalmine.testlib.profiles import PROFILES, Profile, _choose_file
from vocalmine.testlib.sources import LibraryBuildError, _open_source, _rng

SCHEMA_VERSION = 2
MAX_DURATION_S = 300.0  # vocalmine.core.settings.Settings.max_duration_s default
MAX_DURATION_DIFF_S = 5.0  # vocalmine.core.settings.Settings.max_duration_diff_s default
PEAK = 0.89


def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


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
    "SCHEMA_VERSION",
    "build_library",
    "default_truth_dir",
    "library_stats",
    "parse_duration_range",
    "total_minutes",
)
