"""Title normalisation and version markers: what makes two titles the same song, and which one
is the instrumental."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vocalmine.mining.titles import normalize_artist, normalize_text, normalize_title, parse_title


@pytest.mark.parametrize(
    ("raw", "folded"),
    [
        ("Beyoncé – Déjà Vu!", "beyonce deja vu"),
        ("DON'T STOP ME NOW", "dont stop me now"),
        ("Don’t Stop Me Now", "dont stop me now"),
        ("Simon & Garfunkel", "simon and garfunkel"),
        ("Sigur Rós — Hoppípolla", "sigur ros hoppipolla"),
        ("Mötley Crüe", "motley crue"),
        ("Björk / Røyksopp", "bjork royksopp"),
        ("Straße", "strasse"),
        ("Ｆｕｌｌｗｉｄｔｈ　Ｔｉｔｌｅ", "fullwidth title"),
        ("Łódź", "lodz"),
        ("  many   spaces\tand_underscores ", "many spaces and underscores"),
        ("", ""),
    ],
)
def test_normalize_text_folds_case_accents_and_punctuation(raw: str, folded: str) -> None:
    assert normalize_text(raw) == folded


@pytest.mark.parametrize(
    ("raw", "marker"),
    [
        ("Song Instrumental", "instrumental"),
        ("Song (Instrumental)", "instrumental"),
        ("Song - Instrumental", "instrumental"),
        ("Song (Instrumental Version)", "instrumental"),
        ("Song [Instrumental Version]", "instrumental"),
        ("Song (Inst.)", "instrumental"),
        ("Song (Inst)", "instrumental"),
        ("Song (Instr.)", "instrumental"),
        ("Song (Karaoke Version)", "karaoke"),
        ("Song - Karaoke Version", "karaoke"),
        ("Song [Karaoke]", "karaoke"),
        ("Song Karaoke Version", "karaoke"),
        ("Song (Backing Track)", "backing track"),
        ("Song (Off Vocal)", "off vocal"),
        ("Song (Off-Vocal)", "off vocal"),
        ("Song (off vocal ver.)", "off vocal"),
        ("Song (No Vocals)", "no vocals"),
        ("Song (Without Vocals)", "no vocals"),
        ("Song (Minus One)", "minus one"),
        ("Song (MR)", "minus one"),
        ("Canción (Versión Instrumental)", "instrumental"),
        ("Canção (Versão Instrumental)", "instrumental"),
        ("Chanson (Instrumentale)", "instrumental"),
        ("Lied (Instrumentalversion)", "instrumental"),
        ("Lied Instrumentalversion", "instrumental"),
        ("Song (Official Instrumental)", "instrumental"),
        ("Song （Instrumental）", "instrumental"),
        ("歌 【カラオケ】", "karaoke"),
        ("歌 (オフボーカル)", "off vocal"),
        ("歌 (伴奏)", "accompaniment"),
        ("歌 ～オフボーカル～", "off vocal"),
        ("Song ~Instrumental~", "instrumental"),
        ("Song — Instrumental", "instrumental"),
    ],
)
def test_every_instrumental_marker_form_is_detected(raw: str, marker: str) -> None:
    parsed = parse_title(raw)
    assert parsed.is_instrumental
    assert parsed.marker == marker
    assert parsed.other_versions == ()
    assert parsed.base in {"song", "cancion", "cancao", "chanson", "lied", "歌"}


@pytest.mark.parametrize(
    ("raw", "other"),
    [
        ("Song (Remix)", "remix"),
        ("Song (DJ Foo Remix)", "remix"),
        ("Song - Club Mix", "remix"),
        ("Song Remix", "remix"),
        ("Song (Live)", "live"),
        ("Song - Live at Wembley 1986", "live"),
        ("Song (En Vivo)", "live"),
        ("Song (Acoustic)", "acoustic"),
        ("Song (Acoustic Version)", "acoustic"),
        ("Song (Unplugged)", "acoustic"),
        ("Song (Extended Mix)", "extended"),
        ("Song (Demo)", "demo"),
        ("Song (Acapella)", "a cappella"),
        ("Song (Taylor's Version)", "re-recorded"),
        ("Song (Slowed + Reverb)", "altered"),
    ],
)
def test_remix_live_acoustic_demo_are_other_versions_not_instrumentals(
    raw: str, other: str
) -> None:
    parsed = parse_title(raw)
    assert not parsed.is_instrumental
    assert parsed.marker is None
    assert parsed.other_versions == (other,)
    assert parsed.base == "song"


def test_an_instrumental_of_a_remix_carries_both_markers() -> None:
    parsed = parse_title("Song (DJ Foo Remix) [Instrumental]")
    assert parsed.is_instrumental
    assert parsed.other_versions == ("remix",)
    assert parsed.base == "song"


@pytest.mark.parametrize(
    ("raw", "edition"),
    [
        ("Hey Jude - 2011 Remaster", "2011 remaster"),
        ("Hey Jude - Remastered 2015", "remastered 2015"),
        ("Hey Jude (Remastered)", "remastered"),
        ("Hey Jude (Deluxe Edition)", "deluxe edition"),
        ("Hey Jude (Radio Edit)", "radio edit"),
        ("Hey Jude (Original Mix)", "original mix"),
        ("Hey Jude (Official Video)", "official video"),
        ("Hey Jude (Mono)", "mono"),
        ("Hey Jude [Explicit]", "explicit"),
        ("Hey Jude (2009)", "2009"),
    ],
)
def test_edition_tags_are_kept_as_edition_info_and_leave_the_base(raw: str, edition: str) -> None:
    parsed = parse_title(raw)
    assert parsed.base == "hey jude"
    assert parsed.edition == (edition,)
    assert not parsed.is_instrumental
    assert parsed.other_versions == ()


@pytest.mark.parametrize(
    "raw",
    [
        "Crazy in Love (feat. Jay-Z)",
        "Crazy in Love [ft. Jay-Z]",
        "Crazy in Love feat. Jay-Z",
        "Crazy in Love ft. Jay-Z",
        "Crazy in Love featuring Jay-Z",
        "Crazy in Love (with Jay-Z)",
    ],
)
def test_featuring_credits_leave_the_title(raw: str) -> None:
    parsed = parse_title(raw)
    assert parsed.base == "crazy in love"
    assert parsed.featuring == ("jay z",)


def test_version_tag_adds_its_marker() -> None:
    assert parse_title("Song", version="Instrumental").is_instrumental
    assert parse_title("Song", version="Live").other_versions == ("live",)
    assert parse_title("Song", version="2011 Remaster").edition == ("2011 remaster",)
    both = parse_title("Song (Instrumental)", version="Instrumental")
    assert both.marker == "instrumental"
    assert both.base == "song"


@pytest.mark.parametrize(
    ("raw", "base"),
    [
        ("Long Live", "long live"),
        ("Mr. Brightside", "mr brightside"),
        ("Live and Let Die", "live and let die"),
        ("Instrumental", "instrumental"),
        ("Karaoke", "karaoke"),
        ("Song (Part 2)", "song part 2"),
        ("Demolition Man", "demolition man"),
        ("Backing Down", "backing down"),
    ],
)
def test_marker_words_that_are_the_song_name_stay_in_the_title(raw: str, base: str) -> None:
    parsed = parse_title(raw)
    assert parsed.base == base
    assert not parsed.is_instrumental
    assert parsed.other_versions == ()


def test_unknown_brackets_stay_in_the_title_and_nesting_is_handled() -> None:
    assert normalize_title("Song (Part 1) (Instrumental)") == "song part 1"
    assert normalize_title("Song\x00 (Part 1)\x00") == "song part 1"
    assert parse_title("Song (Live (2011))").other_versions == ("live",)
    assert normalize_title("Yesterday (Remastered 2009) [Karaoke Version]") == "yesterday"


@pytest.mark.parametrize(
    ("raw", "folded"),
    [
        ("The Beatles", "beatles"),
        ("Beatles, The", "beatles"),
        ("BEATLES", "beatles"),
        ("Beyoncé feat. Jay-Z", "beyonce"),
        ("Beyoncé (feat. Jay-Z)", "beyonce"),
        ("Simon & Garfunkel", "simon and garfunkel"),
        ("The The", "the"),
        (None, ""),
    ],
)
def test_normalize_artist_drops_the_and_featuring(raw: str | None, folded: str) -> None:
    assert normalize_artist(raw) == folded


_MARKERS = [
    " (Instrumental)",
    " [Karaoke Version]",
    " - 2011 Remaster",
    " (feat. Somebody)",
    " ft. X",
    " Instrumental",
    " (Live)",
    " Remix",
    " (Inst.)",
    " (Part 2)",
    " (",
    ")",
    " - ",
    "\x00",
    " ~",
    "～",
    "",
]
_titles = st.builds(
    lambda text, markers: text + "".join(markers),
    st.text(max_size=30),
    st.lists(st.sampled_from(_MARKERS), max_size=4),
)


@given(_titles)
def test_title_normalisation_is_idempotent(title: str) -> None:
    once = normalize_title(title)
    assert normalize_title(once) == once


@given(st.text(max_size=40))
def test_text_and_artist_normalisation_are_idempotent(text: str) -> None:
    assert normalize_text(normalize_text(text)) == normalize_text(text)
    assert normalize_artist(normalize_artist(text)) == normalize_artist(text)
