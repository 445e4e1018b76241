"""Title and artist normalisation, and version-marker detection, for pairing tracks by name.

Why hand-written: the markers that name an instrumental ("Instrumental", "(Inst.)", "Karaoke
Version", "Off Vocal", "Minus One", "Versión Instrumental", "カラオケ", "伴奏", ...) and the
markers that name *different audio* ("Remix", "Live", "Acoustic", "Extended Mix", "Demo", ...)
are domain knowledge no general library carries; the text clean-up itself is only
:mod:`unicodedata` and :mod:`re`.

How a title is read (:func:`parse_title`):

1. Bracketed segments — ``(...)``, ``[...]``, ``{...}`` and their full-width and CJK forms — and
   segments after a spaced dash (``Song - 2011 Remaster``) are classified. A segment is an
   instrumental marker, another version (different audio), an edition tag (same audio: remaster,
   deluxe, radio edit, explicit, "official video", ...), or a featuring credit; a segment that
   is none of these (``(Part 2)``) stays in the title.
2. Unbracketed ``feat. X`` / ``ft. X`` / ``featuring X`` is cut to the end of the title.
3. The rest is normalised (:func:`normalize_text`: compatibility forms, accents, case,
   apostrophes, punctuation, spaces), then strong markers written without brackets at the *end*
   of the title (``Song Instrumental``, ``Song Karaoke Version``, ``Song Remix``) are removed.
   Weak or ambiguous words ("Inst", "MR", "Live", "Edit") count only inside brackets or after a
   dash, so "Long Live" stays a title.
4. A title that is nothing but markers (a song called "Instrumental") keeps its words as the base.

The base title is idempotent: ``normalize_title(normalize_title(t)) == normalize_title(t)``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = [
    "ParsedTitle",
    "normalize_artist",
    "normalize_text",
    "normalize_title",
    "parse_title",
]

_SPECIAL_LETTERS = str.maketrans(
    {
        "ø": "o",
        "Ø": "O",
        "æ": "ae",
        "Æ": "AE",
        "œ": "oe",
        "Œ": "OE",
        "ł": "l",
        "Ł": "L",
        "đ": "d",
        "Đ": "D",
        "ð": "d",
        "Ð": "D",
        "þ": "th",
        "Þ": "TH",
        "ı": "i",
    }
)
_APOSTROPHES = re.compile(r"['’‘`´ʼ]")
_NON_WORD = re.compile(r"[\W_]+")


def _normalize_once(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    text = text.translate(_SPECIAL_LETTERS).casefold()
    text = _APOSTROPHES.sub("", text).replace("&", " and ")
    text = _NON_WORD.sub(" ", text).strip()
    return unicodedata.normalize("NFC", text)


def normalize_text(text: str | None) -> str:
    """Fold text for comparison: compatibility forms, accents, case, punctuation, spaces.

    ``"Beyoncé – Déjà Vu!"`` → ``"beyonce deja vu"``; ``"Don't"`` → ``"dont"``; ``"&"`` → ``"and"``;
    letters without a decomposition (ø, æ, ł, ß) are spelled out. Idempotent (applied to a fixed
    point), so a normalised string normalises to itself.
    """
    if not text:
        return ""
    for _ in range(8):
        folded = _normalize_once(text)
        if folded == text:
            break
        text = folded
    return text


# --- marker tables (patterns are matched against normalize_text output) ------------------------

#: Instrumental markers: canonical name → pattern found anywhere in a bracket/dash segment.
_INSTRUMENTAL = {
    "instrumental": r"instrumental(?:e|es|i|version|versie|fassung|mix)?|instru|instrumentl",
    "karaoke": r"karaoke(?:version)?|カラオケ",
    "backing track": r"backing ?tracks?|backingtrack",
    "off vocal": r"off ?vocals?|オフホーカル|オフ ホーカル",
    "no vocals": (
        r"(?:no|without|sans|sin|senza|ohne|sem|zonder|bez) (?:lead )?"
        r"(?:vocals?|voice|voices|voix|voz|voce|gesang|zang|vokal)|novocals?|vocals? removed"
    ),
    "minus one": r"minus ?(?:one|1)|minusone",
    "accompaniment": r"accompaniment|伴奏|伴唱|纯音乐|純音樂|インスト",
    "playback": r"playback",
}
#: Instrumental markers that count only when they are the whole segment: too short or ambiguous
#: elsewhere ("Mr." is a title word; "inst" an abbreviation).
_INSTRUMENTAL_WHOLE = {
    "instrumental": r"(?:inst|instr|instrum)(?: (?:ver|vers|version|mix))?|(?:ver|version) inst",
    "minus one": r"mr|m r|minus",
}
#: Other versions: canonical name → pattern. These are *different audio* from the original.
_OTHER = {
    "remix": (
        r"re ?mix(?:ed)?|rmx|re ?work(?:ed)?|re ?edit|bootleg|mash ?up|vip mix"
        r"|(?!(?:original|album|single|main|radio|instrumental|stereo|mono|lp|final|the|extended)\b)"
        r"\w+ mix"
    ),
    "extended": r"extended(?: (?:mix|version|edit|remix|club mix))?|12 inch(?: version| mix)?",
    "live": r"live|en vivo|en directo|ao vivo|dal vivo|in concert|live version",
    "acoustic": r"acoustic|acustic[oa]|akustik|acoustique|unplugged|stripped",
    "demo": r"demo",
    "a cappella": (
        r"a ?cc?app?ella|vocals? only|vocal only|solo vocals?"
        r"|(?:isolated |lead )?vocal stems?|isolated vocals?|vocals? isolated|dry vocals?"
    ),
    "cover": r"cover(?: version)?",
    "re-recorded": r"re ?recorded|taylors version|new recording|rerecording",
    "altered": (
        r"slowed|sped up|speed up|nightcore|daycore|reverb(?:ed)?|8d(?: audio)?"
        r"|chopped (?:and|n) screwed|bass boosted"
    ),
    "orchestral": r"orchestral|symphonic|orchestra version",
    "piano": r"piano (?:version|ver|arrangement)",
    "dub": r"dub(?: version)?",
    "reprise": r"reprise",
}
#: Edition tags: same recording (or same audio for matching purposes), kept as edition info.
_EDITION = (
    r"(?:\d{4} )?(?:digital(?:ly)? )?re ?master(?:ed|izado|isiert)?(?: (?:version|edition|\d{4}))*"
    r"|(?:\d{4} )?re ?mastered"
    r"|deluxe(?: edition| version)?|(?:\w+ )?edition|(?:\d+\w* )?anniversary(?: \w+)?|expanded"
    r"|bonus(?: track)?|(?:radio|single|short|clean|explicit|album|main|original|edit)?"
    r" ?(?:edit|version|ver)"
    r"|original(?: mix| version)?|album version|single version|radio version|lp version"
    r"|mono|stereo|explicit|clean|dirty|censored|uncensored"
    r"|official(?: music| lyric| hd)? (?:video|audio|visualizer)|lyrics?(?: video)?|visualizer"
    r"|audio|hd|hq|4k|from .+|soundtrack|ost|bonus|digital|single|album|remastered|prod by .+"
    r"|(?:19|20)\d\d"
)
_FEATURING = re.compile(r"^(?:feat|featuring|ft|with|duet with|avec|con)\b\s*(?P<who>.*)$")


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w)(?:{pattern})(?!\w)")


_INSTRUMENTAL_RE = {k: _compile(v) for k, v in _INSTRUMENTAL.items()}
_INSTRUMENTAL_WHOLE_RE = {k: re.compile(rf"^(?:{v})$") for k, v in _INSTRUMENTAL_WHOLE.items()}
_OTHER_RE = {k: _compile(v) for k, v in _OTHER.items()}
_EDITION_RE = re.compile(rf"^(?:{_EDITION})(?: (?:{_EDITION}))*$")

# Unbracketed markers recognised only at the end of a normalised title.
_VERSION_WORD = r"version|versione|versao|versio|versie|ver|pista|base"
_TRAILING_INSTRUMENTAL = re.compile(
    rf"^(?P<rest>.*\S) (?:(?:{_VERSION_WORD}) )?"
    rf"(?P<marker>{'|'.join(_INSTRUMENTAL.values())})(?: (?:{_VERSION_WORD}|mix|track))?$"
)
_TRAILING_OTHER = re.compile(
    r"^(?P<rest>.*\S) (?P<marker>(?:\w+ )?remix|rmx|extended mix|club mix|live version"
    r"|acoustic(?: version)?|demo(?: version)?|a ?cc?app?ella)$"
)
_TRAILING_EDITION = re.compile(
    r"^(?P<rest>.*\S) (?P<marker>(?:\d{4} )?re ?master(?:ed)?(?: \d{4})?|radio edit)$"
)
_TRAILING_FEAT = re.compile(r"^(?P<rest>.*?\S) (?:feat|featuring) \S.*$")

_BRACKETS = str.maketrans(
    {
        "【": "[",
        "】": "]",
        "「": "[",
        "」": "]",
        "『": "[",
        "』": "]",
        "〔": "[",
        "〕": "]",
        "〈": "[",
        "〉": "]",
        "《": "[",
        "》": "]",
        "–": "-",
        "—": "-",
        "‒": "-",
        "―": "-",
        "‐": "-",
        "−": "-",
        "〜": "~",
    }
)
_TILDE_PAIR = re.compile(r"~([^~()\[\]{}]+)~")
_SEGMENT = re.compile(r"\(([^()\[\]{}]*)\)|\[([^()\[\]{}]*)\]|\{([^()\[\]{}]*)\}")
_DASH_SPLIT = re.compile(r"\s+-+\s+|\s+-+$")
_RAW_FEAT = re.compile(r"\s(?:feat\.?|featuring|ft\.)\s+(?P<who>\S.*)$", re.IGNORECASE)
_DIGITS = re.compile(r"\d+")


@dataclass(frozen=True)
class ParsedTitle:
    """A title split into what identifies the song and what names its version.

    ``base`` is the normalised song title used for matching; ``marker`` the canonical instrumental
    marker (``"instrumental"``, ``"karaoke"``, ``"backing track"``, ``"off vocal"``,
    ``"no vocals"``, ``"minus one"``, ``"accompaniment"``, ``"playback"``) or ``None``;
    ``other_versions`` the sorted canonical names of versions that are different audio
    (``"remix"``, ``"live"``, ``"acoustic"``, ``"extended"``, ``"demo"``, ...); ``edition`` the
    normalised edition tags (same audio: ``"2011 remaster"``, ``"deluxe edition"``,
    ``"radio edit"``, and version tags that name nothing known); ``featuring`` the normalised
    featured artists.
    """

    base: str
    marker: str | None = None
    is_instrumental: bool = False
    other_versions: tuple[str, ...] = ()
    edition: tuple[str, ...] = ()
    featuring: tuple[str, ...] = ()

    @property
    def version_key(self) -> tuple[str, ...]:
        """What must be equal on both sides of a pair: the other versions (remix pairs remix)."""
        return self.other_versions

    @property
    def numbers(self) -> tuple[str, ...]:
        """Digit tokens of the base ("part 2", "1999"): titles that differ in them differ."""
        return tuple(_DIGITS.findall(self.base))


@dataclass
class _Found:
    markers: list[str]
    others: set[str]
    edition: list[str]
    featuring: list[str]

    def add_segment(self, raw: str) -> bool:
        """Classify one bracket/dash segment; False when it names nothing (stays in the title)."""
        text = normalize_text(raw)
        if not text:
            return True
        feat = _FEATURING.match(text)
        if feat:
            if feat.group("who"):
                self.featuring.append(feat.group("who"))
            return True
        known = False
        for name, pattern in _INSTRUMENTAL_WHOLE_RE.items():
            if pattern.match(text):
                self.markers.append(name)
                known = True
        for name, pattern in _INSTRUMENTAL_RE.items():
            if pattern.search(text):
                self.markers.append(name)
                known = True
        without_instrumental = text
        for pattern in _INSTRUMENTAL_RE.values():
            without_instrumental = pattern.sub(" ", without_instrumental)
        for name, pattern in _OTHER_RE.items():
            if pattern.search(without_instrumental):
                self.others.add(name)
                known = True
        if not known and _EDITION_RE.match(text):
            self.edition.append(text)
            known = True
        return known


def _strip_unbracketed(text: str, found: _Found) -> str:
    """Remove featuring credits and end-of-title markers from normalised text, to a fixed point."""
    while True:
        match = _TRAILING_FEAT.match(text)
        if match:
            text = match.group("rest")
            continue
        match = _TRAILING_INSTRUMENTAL.match(text)
        if match:
            found.add_segment(match.group("marker"))
            text = match.group("rest")
            continue
        match = _TRAILING_OTHER.match(text) or _TRAILING_EDITION.match(text)
        if match:
            found.add_segment(match.group("marker"))
            text = match.group("rest")
            continue
        return text


def _strip_segments(title: str, found: _Found) -> str:
    """Remove classified bracket and dash segments (innermost brackets first) from raw text."""
    # NUL marks kept segments below, so none may come from the input.
    text = unicodedata.normalize("NFKC", title).translate(_BRACKETS).replace("\x00", " ")
    text = _TILDE_PAIR.sub(r"(\1)", text)  # "曲 ～off vocal～": a tilde pair is a bracket
    kept: list[str] = []

    def replace(match: re.Match[str]) -> str:
        inner = next(g for g in match.groups() if g is not None)
        if found.add_segment(inner):
            return " "
        kept.append(inner)
        return f" \x00{len(kept) - 1}\x00 "

    while (stripped := _SEGMENT.sub(replace, text)) != text:
        text = stripped
    parts = _DASH_SPLIT.split(text)
    tails = [p for p in parts[1:] if p.strip()]
    text = " ".join([parts[0], *(p for p in tails if not found.add_segment(p))])
    while "\x00" in text:
        text = re.sub(r"\x00(\d+)\x00", lambda m: kept[int(m.group(1))], text)
    feat = _RAW_FEAT.search(text)
    if feat:
        found.featuring.append(normalize_text(feat.group("who")))
        text = text[: feat.start()]
    return text


def parse_title(title: str | None, version: str | None = None) -> ParsedTitle:
    """Split a title (and an optional version tag) into base title, markers and edition info.

    >>> parse_title("Yesterday (Remastered 2009) [Karaoke Version]")
    ParsedTitle(base='yesterday', marker='karaoke', is_instrumental=True, other_versions=(), \
edition=('remastered 2009',), featuring=())
    """
    found = _Found([], set(), [], [])
    base = normalize_text(_strip_segments(title or "", found))
    base = _strip_unbracketed(base, found)
    if not base and normalize_text(title):
        found = _Found([], set(), [], [])
        base = _strip_unbracketed(normalize_text(title), found)
    if version and normalize_text(version):
        found_version = _Found([], set(), [], [])
        if not found_version.add_segment(version):
            found_version.edition.append(normalize_text(version))
        found.markers += found_version.markers
        found.others |= found_version.others
        found.edition += found_version.edition
        found.featuring += found_version.featuring
    marker = found.markers[0] if found.markers else None
    return ParsedTitle(
        base=base,
        marker=marker,
        is_instrumental=marker is not None,
        other_versions=tuple(sorted(found.others)),
        edition=tuple(dict.fromkeys(found.edition)),
        featuring=tuple(dict.fromkeys(found.featuring)),
    )


def normalize_title(title: str | None) -> str:
    """The base title alone: what two versions of one song have in common."""
    return parse_title(title).base


def normalize_artist(artist: str | None) -> str:
    """Fold an artist name for blocking: featuring credits dropped, "The" moved away.

    ``"The Beatles"``, ``"Beatles, The"`` and ``"BEATLES"`` → ``"beatles"``;
    ``"Beyoncé feat. Jay-Z"`` → ``"beyonce"``; ``"Simon & Garfunkel"`` → ``"simon and garfunkel"``.
    """
    if not artist:
        return ""
    text = unicodedata.normalize("NFKC", artist).translate(_BRACKETS)
    text = _SEGMENT.sub(lambda m: "" if _is_feat(m) else m.group(0), text)
    text = _RAW_FEAT.sub("", text)
    folded = normalize_text(text)
    inverted = re.match(r"^(?P<name>.+) the$", folded)
    if inverted and "," in text:
        folded = inverted.group("name")
    if folded.startswith("the ") and len(folded) > 4:
        folded = folded[4:]
    return folded


def _is_feat(match: re.Match[str]) -> bool:
    inner = next(g for g in match.groups() if g is not None)
    return bool(_FEATURING.match(normalize_text(inner)))
