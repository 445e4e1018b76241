"""Library profiles: what a generated library looks like, and drawing one file's encoding from it.

A :class:`Profile` fixes the codecs and their odds, sample rates, lead and trail silences, gains,
instrumental title markers, a cappella titles, compilation and karaoke albums and folder layouts;
:data:`PROFILES` holds the two (``profile``; one seed and profile give identical bytes). They
differ on purpose, so a pipeline tuned on one is checked on the other:

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

:func:`_choose_file` draws one file's codec, rate, bitrate and silences from a profile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vocalmine.testlib.codecs import LOSSLESS, _encoding, _FileSpec

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


__all__: Sequence[str] = (
    "ALT_A_CAPPELLA_TITLES",
    "ALT_TITLE_VARIANTS",
    "A_CAPPELLA_TITLES",
    "PROFILES",
    "TITLE_VARIANTS",
    "Profile",
)
