"""Deterministic synthetic songs with separate vocal and accompaniment stems.

Why hand-written: tests and benchmarks need many full-length songs with exact stems, built in
seconds without downloading anything; no maintained library synthesises a whole pop arrangement
with a singing voice. The songs are plain but musically plausible:

* a composition (tempo, key, major/minor progression, verse/chorus/bridge structure, a vocal
  melody made of repeated and varied two-bar phrases) drawn from the seed;
* accompaniment: drum kit (kick, snare, hi-hats, crash), bass line, sustained pad chords and an
  arpeggiated plucked "keys" part, panned in stereo;
* a singing voice from a source-filter synthesiser: a band-limited pulse train (closed-form
  Dirichlet kernel) with portamento, delayed vibrato and pitch drift, glottal spectral tilt,
  aspiration noise, then cascaded formant resonators (Klatt) whose vowel changes per syllable
  with smooth cross-fades, consonant noise bursts and a short stereo reverb.

Everything is vectorised numpy/scipy: notes are cached waveforms added into the buffer at their
onsets, the voice is computed in whole-array operations at half the output rate and resampled
with soxr. A four-minute stereo song at 44.1 kHz takes about a second.

``style`` renders other *performances* of the same composition: ``"live"`` (slower tempo, looser
timing, crowd noise, more reverb) and ``"remix"`` (faster, four-on-the-floor drums, transposed).
They share title and melody with the studio version but not its audio, which is what remix and
live decoys in a test library need.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import numpy as np
import soxr
from scipy import signal

Style = Literal["studio", "live", "remix"]

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
PROGRESSIONS = {
    "major": ((0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4), (0, 3, 5, 4), (0, 4, 3, 4)),
    "minor": ((0, 5, 2, 6), (0, 3, 6, 2), (0, 6, 5, 6), (0, 3, 4, 0)),
}
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
# Formants (Hz) of the vowels a, e, i, o, u; Peterson & Barney style averages.
FORMANTS = {
    "female": (
        (850, 1220, 2810),
        (610, 2330, 2990),
        (310, 2790, 3310),
        (590, 920, 2710),
        (370, 950, 2670),
    ),
    "male": (
        (730, 1090, 2440),
        (530, 1840, 2480),
        (270, 2290, 3010),
        (570, 840, 2410),
        (300, 870, 2240),
    ),
}
FORMANT_BANDWIDTHS = (90.0, 110.0, 160.0)
SINGER_FORMANT = (3200.0, 400.0)  # (frequency, bandwidth) of the singer's formant cluster


@dataclass(frozen=True)
class Note:
    """One sung note: onset and length in beats from the phrase start, scale step, vowel."""

    beat: float
    beats: float
    step: int
    vowel: int


@dataclass(frozen=True)
class Section:
    """A block of bars with one role; ``start_s``/``end_s`` are filled in when rendered."""

    name: str
    bars: int
    start_s: float = 0.0
    end_s: float = 0.0


@dataclass
class SynthSong:
    """A rendered song: stereo stems (float32, shape ``(2, samples)``) and its composition."""

    vocals: np.ndarray
    accompaniment: np.ndarray
    sample_rate: int
    tempo_bpm: float
    key: str
    voice: str
    sections: list[Section] = field(default_factory=list)

    @property
    def mix(self) -> np.ndarray:
        """The original mix: vocals plus accompaniment."""
        return self.vocals + self.accompaniment

    @property
    def duration_s(self) -> float:
        return self.vocals.shape[1] / self.sample_rate


@dataclass(frozen=True)
class Composition:
    """Everything about a song that stays the same across its performances."""

    tempo_bpm: float
    root_pc: int
    mode: str
    verse_chords: tuple[int, ...]
    chorus_chords: tuple[int, ...]
    bridge_chords: tuple[int, ...]
    voice: str
    phrases: dict[str, tuple[tuple[Note, ...], ...]]

    @property
    def scale(self) -> tuple[int, ...]:
        return MAJOR if self.mode == "major" else MINOR

    @property
    def key(self) -> str:
        return f"{NOTE_NAMES[self.root_pc]} {self.mode}"


def _rng(seed: int | Sequence[int], *stream: int) -> np.random.Generator:
    base = [int(seed)] if isinstance(seed, int | np.integer) else [int(s) for s in seed]
    return np.random.default_rng(base + list(stream))


def compose(seed: int | Sequence[int]) -> Composition:
    """Draw tempo, key, progressions, voice type and the vocal phrases of each section."""
    rng = _rng(seed, 0)
    mode = "major" if rng.random() < 0.6 else "minor"
    progs = PROGRESSIONS[mode]
    picks = rng.choice(len(progs), size=3, replace=True)
    phrases: dict[str, tuple[tuple[Note, ...], ...]] = {}
    for name in ("verse", "chorus", "bridge"):
        a = _phrase(rng, high=name == "chorus")
        b = _phrase(rng, high=name == "chorus")
        phrases[name] = (a, _vary(rng, a), b, _vary(rng, a))
    return Composition(
        tempo_bpm=float(rng.uniform(78, 140)),
        root_pc=int(rng.integers(12)),
        mode=mode,
        verse_chords=progs[picks[0]],
        chorus_chords=progs[picks[1]],
        bridge_chords=tuple(reversed(progs[picks[2]])),
        voice="female" if rng.random() < 0.5 else "male",
        phrases=phrases,
    )


def _phrase(rng: np.random.Generator, high: bool) -> tuple[Note, ...]:
    """A two-bar phrase (8 beats): 5–7 beats of notes, then a breath."""
    beat = float(rng.choice([0.0, 0.5, 1.0], p=[0.6, 0.25, 0.15]))
    length = float(rng.uniform(5.0, 7.0))
    step = int(rng.integers(2, 5)) + (2 if high else 0)
    notes: list[Note] = []
    while beat < length:
        beats = float(rng.choice([0.5, 1.0, 1.5, 2.0], p=[0.35, 0.4, 0.15, 0.1]))
        beats = min(beats, 8.0 - beat - 0.5)
        if beats <= 0:
            break
        notes.append(Note(beat, beats, step, int(rng.integers(5))))
        beat += beats
        step = int(
            np.clip(step + rng.choice([-2, -1, 0, 1, 2], p=[0.15, 0.3, 0.15, 0.3, 0.1]), -2, 9)
        )
    return tuple(notes)


def _vary(rng: np.random.Generator, phrase: tuple[Note, ...]) -> tuple[Note, ...]:
    """The same phrase with its last two notes re-pitched (a typical answering phrase)."""
    notes = list(phrase)
    for i in range(max(0, len(notes) - 2), len(notes)):
        n = notes[i]
        notes[i] = Note(n.beat, n.beats, int(np.clip(n.step + rng.integers(-2, 3), -2, 9)), n.vowel)
    return tuple(notes)


def structure(total_bars: int) -> list[Section]:
    """Intro, verses, choruses, a bridge and an outro filling ``total_bars`` bars."""
    intro = 4 if total_bars < 40 else 8
    outro = 4
    body = max(total_bars - intro - outro, 0)
    cycle = ("verse", "chorus", "verse", "chorus", "bridge", "chorus", "verse", "chorus")
    sections = [Section("intro", min(intro, total_bars))]
    i = 0
    while body > 0:
        bars = min(8, body)
        sections.append(Section(cycle[i % len(cycle)], bars))
        body -= bars
        i += 1
    if total_bars > intro:
        sections.append(Section("outro", min(outro, total_bars - intro)))
    return sections


def synthesize_song(
    seed: int | Sequence[int],
    duration_s: float,
    sample_rate: int = 44100,
    *,
    style: Style = "studio",
    extra_outro_s: float = 0.0,
) -> SynthSong:
    """Render a song of exactly ``duration_s`` seconds as vocal and accompaniment stems.

    The same seed always gives the same samples. ``extra_outro_s`` appends that many seconds of
    instrumental outro *after* the song (vocals stay silent there), for "extended version" files.
    """
    comp = compose(seed)
    perf = _rng(seed, 1, {"studio": 0, "live": 1, "remix": 2}[style])
    tempo = (
        comp.tempo_bpm
        * {"studio": 1.0, "live": perf.uniform(0.92, 0.96), "remix": perf.uniform(1.1, 1.2)}[style]
    )
    transpose = int(perf.choice([-2, -1, 1, 2])) if style == "remix" else 0
    beat_s = 60.0 / tempo
    bar_s = 4 * beat_s
    ring_s = min(3.0, 0.1 * duration_s)
    total_bars = max(1, int((duration_s - ring_s) // bar_s))
    sections = structure(total_bars)
    n = int(round(duration_s * sample_rate))
    timed, t = [], 0.0
    for s in sections:
        timed.append(Section(s.name, s.bars, t, t + s.bars * bar_s))
        t += s.bars * bar_s
    ctx = _Render(comp, perf, sample_rate, beat_s, transpose, style)
    acc = ctx.accompaniment(timed, n)
    vocals = ctx.voice(timed, n)
    if extra_outro_s > 0:
        acc = np.concatenate([acc, ctx.outro(extra_outro_s, total_bars)], axis=1)
        vocals = np.concatenate(
            [vocals, np.zeros((2, acc.shape[1] - vocals.shape[1]), np.float32)], axis=1
        )
    if style == "live":
        acc = acc + ctx.crowd(acc.shape[1], timed)
    vocals *= _vocal_gain(vocals, acc, float(perf.uniform(-4.0, 1.0)))
    peak = max(float(np.abs(acc + vocals).max()), 1e-6)
    scale = np.float32(0.89 / peak)
    return SynthSong(vocals * scale, acc * scale, sample_rate, tempo, comp.key, comp.voice, timed)


def _vocal_gain(vocals: np.ndarray, acc: np.ndarray, ratio_db: float) -> np.float32:
    """Gain that puts the sung parts ``ratio_db`` above the accompaniment under them."""
    power = np.square(vocals[0, ::64], dtype=np.float64)
    sung = power > 1e-3 * max(float(power.max()), 1e-12)
    if not sung.any():
        return np.float32(1.0)
    vocal = float(power[sung].mean())
    backing = float(np.square(acc[0, ::64][sung], dtype=np.float64).mean())
    return np.float32(np.sqrt(backing / max(vocal, 1e-12)) * 10 ** (ratio_db / 20))


def _midi_hz(midi: float | np.ndarray) -> float | np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def _pan(x: float) -> tuple[float, float]:
    """Constant-power pan gains for ``x`` in [-1, 1]."""
    a = (x + 1.0) * np.pi / 4.0
    return float(np.cos(a)), float(np.sin(a))


def _add(buf: np.ndarray, start: int, wave: np.ndarray, gains: tuple[float, float]) -> None:
    """Add a mono ``wave`` into stereo ``buf`` at ``start`` with per-channel gains."""
    if start >= buf.shape[1]:
        return
    lo = max(start, 0)
    w = wave[lo - start : buf.shape[1] - start]
    buf[0, lo : lo + w.size] += gains[0] * w
    buf[1, lo : lo + w.size] += gains[1] * w


@lru_cache(maxsize=512)
def _tone(kind: str, midi: int, n: int, sr: int) -> np.ndarray:
    """A cached note waveform of ``n`` samples: "pad", "bass" or "pluck"."""
    t = np.arange(n, dtype=np.float32) / sr
    f0 = float(_midi_hz(midi))
    out = np.zeros(n, np.float32)
    if kind == "pad":
        for k, amp in ((1, 1.0), (2, 0.45), (3, 0.25), (4, 0.12)):
            if k * f0 < sr / 2:
                for cents in (-6.0, 6.0):
                    out += amp * np.sin(2 * np.pi * k * f0 * 2 ** (cents / 1200) * t)
        env = np.minimum(1.0, t / 0.12) * np.minimum(1.0, (n / sr - t) / 0.25)
        return (0.25 * out * np.clip(env, 0, 1)).astype(np.float32)
    if kind == "bass":
        for k in range(1, 9):
            if k * f0 < sr / 2:
                out += np.sin(2 * np.pi * k * f0 * t) / k**1.6
        env = np.minimum(1.0, t / 0.006) * (0.6 + 0.4 * np.exp(-t / 0.15))
        env *= np.clip((n / sr - t) / 0.03, 0, 1)
        return (0.5 * out * env).astype(np.float32)
    for k in range(1, 7):  # pluck: brighter partials decay faster
        if k * f0 < sr / 2:
            out += np.sin(2 * np.pi * k * f0 * t) * np.exp(-t * k / 0.35) / k
    env = np.minimum(1.0, t / 0.003) * np.clip((n / sr - t) / 0.02, 0, 1)
    return (0.35 * out * env).astype(np.float32)


@lru_cache(maxsize=64)
def _drum(kind: str, variant: int, sr: int) -> np.ndarray:
    """A cached drum hit: kick, snare, hat, open hat or crash (a few variants each)."""
    lengths = {"kick": 0.35, "snare": 0.25, "hat": 0.07, "open": 0.3, "crash": 1.6}
    rng = np.random.default_rng([list(lengths).index(kind), variant])
    n = int(lengths[kind] * sr)
    t = np.arange(n, dtype=np.float64) / sr
    noise = rng.standard_normal(n)
    if kind == "kick":
        f = 48.0 + 110.0 * np.exp(-t / 0.04)
        out = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / 0.13)
        out += 0.3 * noise * np.exp(-t / 0.004)
    elif kind == "snare":
        sos = signal.butter(2, [1200, 7000], btype="band", fs=sr, output="sos")
        out = 0.8 * signal.sosfilt(sos, noise) * np.exp(-t / 0.07)
        out += 0.5 * np.sin(2 * np.pi * 190.0 * t) * np.exp(-t / 0.05)
    else:
        sos = signal.butter(2, 7000, btype="high", fs=sr, output="sos")
        decay = {"hat": 0.015, "open": 0.09, "crash": 0.5}[kind]
        out = signal.sosfilt(sos, noise) * np.exp(-t / decay) * (0.5 if kind == "crash" else 0.4)
    return out.astype(np.float32)


class _Render:
    """Renders one performance of a composition (accompaniment, voice, outro, crowd)."""

    def __init__(
        self,
        comp: Composition,
        rng: np.random.Generator,
        sr: int,
        beat_s: float,
        transpose: int,
        style: Style,
    ) -> None:
        self.comp, self.rng, self.sr, self.beat_s = comp, rng, sr, beat_s
        self.transpose, self.style = transpose, style
        self.jitter = 0.012 if style == "live" else 0.004

    def chords(self, name: str) -> tuple[int, ...]:
        c = self.comp
        return {"chorus": c.chorus_chords, "bridge": c.bridge_chords}.get(name, c.verse_chords)

    def chord_pcs(self, degree: int) -> list[int]:
        """Pitch offsets (semitones from the tonic) of the triad on a scale degree."""
        scale = self.comp.scale
        return [scale[(degree + i) % 7] + 12 * ((degree + i) // 7) for i in (0, 2, 4)]

    def samples(self, seconds: float) -> int:
        return int(round(seconds * self.sr))

    def jittered(self, seconds: float) -> int:
        return self.samples(seconds + self.rng.normal(0.0, self.jitter))

    def accompaniment(self, sections: list[Section], n: int) -> np.ndarray:
        buf = np.zeros((2, n), np.float32)
        root = 36 + (self.comp.root_pc + self.transpose) % 12
        bar_s = 4 * self.beat_s
        energy = {"intro": 0.7, "verse": 0.8, "chorus": 1.0, "bridge": 0.75, "outro": 0.7}
        for sec in sections:
            g = energy[sec.name]
            self.crash(buf, sec.start_s, g)
            for b in range(sec.bars):
                t0 = sec.start_s + b * bar_s
                degree = self.chords(sec.name)[b % 4]
                pcs = self.chord_pcs(degree)
                self.drums(buf, sec.name, t0, g)
                self.bass(buf, sec.name, t0, root + pcs[0], g)
                self.pads(buf, t0, root + 24, pcs, g)
                if sec.name in ("verse", "chorus", "bridge"):
                    self.arpeggio(buf, t0, root + 36, pcs, g)
        end = sections[-1].end_s if sections else 0.0
        last = self.chord_pcs(self.chords("verse")[0])
        ring = max(self.samples(min(3.0, n / self.sr - end)), 1)
        for i, pc in enumerate(last):  # the final chord rings out
            _add(
                buf,
                self.samples(end),
                _tone("pad", root + 24 + pc, ring, self.sr),
                _pan(-0.5 + 0.5 * i),
            )
        _add(buf, self.samples(end), _tone("bass", root + last[0], ring, self.sr), (0.7, 0.7))
        return buf

    def outro(self, seconds: float, bar_index: int) -> np.ndarray:
        """Extra instrumental bars (an extended outro) fading out over ``seconds``."""
        n = self.samples(seconds)
        bars = int(np.ceil(seconds / (4 * self.beat_s))) + 1
        section = Section("outro", bars, 0.0, bars * 4 * self.beat_s)
        buf = self.accompaniment([section], n)
        fade = np.linspace(1.0, 0.0, n, dtype=np.float32) ** 2
        return buf * fade

    def crash(self, buf: np.ndarray, t: float, g: float) -> None:
        _add(
            buf,
            self.jittered(t),
            _drum("crash", int(self.rng.integers(3)), self.sr),
            tuple(0.5 * g * x for x in _pan(0.4)),
        )

    def drums(self, buf: np.ndarray, name: str, t0: float, g: float) -> None:
        b = self.beat_s
        if self.style == "remix":
            kicks, snares, hats = [0, 1, 2, 3], [1, 3], [0.5, 1.5, 2.5, 3.5]
        elif name == "intro":
            kicks, snares, hats = [0], [], [0, 1, 2, 3]
        elif name == "chorus":
            kicks, snares, hats = [0, 1.5, 2], [1, 3], [i / 2 for i in range(8)]
        elif name == "bridge":
            kicks, snares, hats = [0], [2], [0, 1, 2, 3]
        else:
            kicks = [0, 2] + ([2.5] if self.rng.random() < 0.4 else [])
            snares, hats = [1, 3], [i / 2 for i in range(8)]
        for kind, beats, pan, level in (
            ("kick", kicks, 0.0, 0.9),
            ("snare", snares, 0.05, 0.6),
            ("hat", hats, 0.35, 0.25),
        ):
            for beat in beats:
                vel = level * g * self.rng.uniform(0.8, 1.0)
                wave = _drum(kind, int(self.rng.integers(3)), self.sr)
                _add(buf, self.jittered(t0 + beat * b), wave, tuple(vel * x for x in _pan(pan)))
        if name == "chorus":
            _add(
                buf,
                self.jittered(t0 + 3.5 * b),
                _drum("open", 0, self.sr),
                tuple(0.2 * g * x for x in _pan(0.35)),
            )

    def bass(self, buf: np.ndarray, name: str, t0: float, midi: int, g: float) -> None:
        b = self.beat_s
        pattern = [(0, 1.5), (1.5, 0.5), (2, 1.5), (3.5, 0.5)]
        if name in ("intro", "outro", "bridge"):
            pattern = [(0, 2), (2, 2)]
        for beat, beats in pattern:
            octave = 12 if beats == 0.5 and self.rng.random() < 0.5 else 0
            wave = _tone("bass", midi + octave, self.samples(beats * b * 0.95), self.sr)
            vel = 0.8 * g * self.rng.uniform(0.85, 1.0)
            _add(buf, self.jittered(t0 + beat * b), wave, (vel * 0.7, vel * 0.7))

    def pads(self, buf: np.ndarray, t0: float, base: int, pcs: list[int], g: float) -> None:
        n = self.samples(4 * self.beat_s * 1.05)
        for i, pc in enumerate(pcs):
            vel = 0.55 * g * self.rng.uniform(0.9, 1.0)
            gains = _pan((-0.6, 0.0, 0.6)[i])
            _add(
                buf,
                self.jittered(t0),
                _tone("pad", base + pc, n, self.sr),
                (vel * gains[0], vel * gains[1]),
            )

    def arpeggio(self, buf: np.ndarray, t0: float, base: int, pcs: list[int], g: float) -> None:
        order = (0, 1, 2, 1, 0, 1, 2, 1) if self.style != "remix" else (0, 2, 0, 2, 1, 2, 1, 2)
        n = self.samples(self.beat_s)
        for i, idx in enumerate(order):
            vel = 0.35 * g * self.rng.uniform(0.7, 1.0)
            gains = _pan(0.5 if i % 2 else -0.2)
            _add(
                buf,
                self.jittered(t0 + i * self.beat_s / 2),
                _tone("pluck", base + pcs[idx], n, self.sr),
                (vel * gains[0], vel * gains[1]),
            )

    def crowd(self, n: int, sections: list[Section]) -> np.ndarray:
        """Crowd noise of a live recording: pink-ish noise swelling at section starts."""
        rng = self.rng
        noise = rng.standard_normal((2, n)).astype(np.float32)
        pink = signal.lfilter([0.05], [1.0, -0.95], noise, axis=1).astype(np.float32)
        env = np.full(n, 0.02, np.float32)
        for sec in sections:
            i = self.samples(sec.start_s)
            m = min(self.samples(2.0), n - i)
            if m > 0:
                env[i : i + m] += 0.06 * np.exp(-np.arange(m) / (0.6 * self.sr))
        return pink * env

    def voice(self, sections: list[Section], n: int) -> np.ndarray:
        """The sung melody of every verse, chorus and bridge, as a stereo stem."""
        sr_v = self.sr // 2 if self.sr > 32000 else self.sr
        notes = self.voice_notes(sections, sr_v)
        mono = _sing(notes, self.comp.voice, sr_v, int(np.ceil(n * sr_v / self.sr)) + 1, self.rng)
        wet = _reverb(mono, sr_v, self.rng, 0.3 if self.style == "live" else 0.15)
        stereo = np.stack([mono + wet[0], mono + wet[1]])
        if sr_v != self.sr:
            stereo = soxr.resample(stereo.T, sr_v, self.sr, quality="MQ").T
        out = np.zeros((2, n), np.float32)
        m = min(n, stereo.shape[1])
        out[:, :m] = stereo[:, :m]
        return out

    def voice_notes(self, sections: list[Section], sr_v: int) -> np.ndarray:
        """Rows of (onset sample, end sample, midi, vowel, velocity) for all sung notes."""
        comp = self.comp
        centre = 67 if comp.voice == "female" else 55
        tonic = centre - 5 + ((comp.root_pc + self.transpose - (centre - 5)) % 12)
        scale = comp.scale
        bar_s = 4 * self.beat_s
        rows = []
        for sec in sections:
            if sec.name not in comp.phrases:
                continue
            phrases = comp.phrases[sec.name]
            for p in range(sec.bars // 2):
                start = sec.start_s + 2 * p * bar_s
                for note in phrases[p % len(phrases)]:
                    bar = 2 * p + int(note.beat // 4)
                    step = note.step
                    if note.beat % 4 == 0:  # downbeats land on a chord tone
                        tones = [
                            d
                            for d in range(-2, 10)
                            if scale[d % 7] % 12
                            in {x % 12 for x in self.chord_pcs(self.chords(sec.name)[bar % 4])}
                        ]
                        step = min(tones, key=lambda d: abs(d - step))
                    midi = tonic + scale[step % 7] + 12 * (step // 7)
                    on = start + note.beat * self.beat_s + self.rng.normal(0, self.jitter * 2)
                    off = on + note.beats * self.beat_s * self.rng.uniform(0.85, 1.0)
                    rows.append(
                        (on * sr_v, off * sr_v, midi, note.vowel, self.rng.uniform(0.75, 1.0))
                    )
        return np.array(rows, dtype=np.float64).reshape(-1, 5)


def _resonator_sos(freq: float, bandwidth: float, sr: int) -> np.ndarray:
    """Klatt's two-pole resonator (unit gain at DC) as one second-order section."""
    c = -np.exp(-2 * np.pi * bandwidth / sr)
    b = 2 * np.exp(-np.pi * bandwidth / sr) * np.cos(2 * np.pi * freq / sr)
    a = 1.0 - b - c
    return np.array([a, 0.0, 0.0, 1.0, -b, -c])


def _sing(notes: np.ndarray, voice: str, sr: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Source-filter singing of ``notes`` (rows from ``voice_notes``) into ``n`` mono samples.

    Work is done phrase by phrase (runs of notes without a long rest) so silent stretches cost
    nothing; pitch, envelope and vowel contours run at a control rate of ``sr / CONTROL_HOP``.
    """
    out = np.zeros(n, np.float32)
    if len(notes) == 0:
        return out
    singer = _Singer(voice, sr, rng)
    gaps = notes[1:, 0] - notes[:-1, 1] > 0.25 * sr
    bounds = np.flatnonzero(np.concatenate([[True], gaps, [True]]))
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        start = max(int(notes[lo, 0]) - int(0.02 * sr), 0)
        stop = min(int(notes[hi - 1, 1]) + int(0.3 * sr), n)
        if stop > start:
            out[start:stop] += singer.phrase(notes[lo:hi], start, stop - start)
    peak = max(float(np.abs(out).max()), 1e-9)
    return 0.5 * out / peak


CONTROL_HOP = 32


class _Singer:
    """One singer: voice type, vibrato, formant filters and consonant noise."""

    def __init__(self, voice: str, sr: int, rng: np.random.Generator) -> None:
        self.sr, self.rng = sr, rng
        self.vib_rate = rng.uniform(5.0, 6.2)
        self.vib_depth = rng.uniform(0.25, 0.5)
        self.vowel_sos = [
            np.stack(
                [
                    _resonator_sos(f, bw, sr)
                    for f, bw in zip(
                        (*formants, SINGER_FORMANT[0]),
                        (*FORMANT_BANDWIDTHS, SINGER_FORMANT[1]),
                        strict=True,
                    )
                ]
            )
            for formants in FORMANTS[voice]
        ]
        sos = signal.butter(2, [2500, min(9000, 0.45 * sr)], btype="band", fs=sr, output="sos")
        m = int(0.05 * sr)
        self.burst = (
            signal.sosfilt(sos, rng.standard_normal(m)) * np.exp(-np.arange(m) / (0.012 * sr))
        ).astype(np.float32)
        pole = np.exp(-2 * np.pi * 250.0 / sr)  # glottal tilt: two one-pole low-passes
        self.tilt = ([(1 - pole) ** 2], [1.0, -2 * pole, pole**2])

    def _smooth(self, x: np.ndarray, seconds: float) -> np.ndarray:
        a = np.exp(-CONTROL_HOP / (seconds * self.sr))
        return signal.lfilter([1 - a], [1, -a], x, zi=[x[0] * a])[0]

    def phrase(self, notes: np.ndarray, start: int, length: int) -> np.ndarray:
        sr, rng = self.sr, self.rng
        ctrl = np.arange(0, length + CONTROL_HOP, CONTROL_HOP, dtype=np.float64) + start
        idx = np.clip(np.searchsorted(notes[:, 0], ctrl, side="right") - 1, 0, len(notes) - 1)
        since = (ctrl - notes[idx, 0]) / sr
        until = (notes[idx, 1] - ctrl) / sr
        # Pitch: note targets with portamento, delayed vibrato and a slow random drift.
        midi = self._smooth(notes[idx, 2], 0.035)
        ramp = np.clip((since - 0.18) / 0.25, 0, 1)
        midi += self.vib_depth * ramp * np.sin(2 * np.pi * self.vib_rate * ctrl / sr)
        midi += self._smooth(rng.standard_normal(ctrl.size), 0.15) * 0.4
        # Loudness: attack and release per note, velocity, silence in rests.
        env = np.clip(since / 0.04, 0, 1) * np.clip(until / 0.07, 0, 1) * notes[idx, 4]
        env = self._smooth(env, 0.01)
        t = np.arange(length, dtype=np.float64) + start
        f0 = np.interp(t, ctrl, _midi_hz(midi))
        phase = np.mod(2 * np.pi * np.cumsum(f0 / sr) + rng.uniform(0, 2 * np.pi), 2 * np.pi)
        half = (phase / 2).astype(np.float32)
        m = 2 * int((sr / 2) // f0.max()) + 1
        den = np.sin(half)
        small = np.abs(den) < 1e-6
        blit = np.sin(m * half) / (m * np.where(small, np.float32(1), den))
        blit[small] = 1.0
        source = signal.lfilter(*self.tilt, blit).astype(np.float32)
        source = np.diff(source, prepend=source[0]) * np.float32(m)
        breath = np.diff(rng.standard_normal(length + 1).astype(np.float32)) * np.float32(0.06)
        excitation = (source + breath) * np.interp(t, ctrl, env).astype(np.float32)
        # Formants: one resonator cascade per vowel, cross-faded by smoothed vowel weights.
        vowels = notes[idx, 3].astype(int)
        shaped = np.zeros(length, np.float32)
        for v in np.unique(vowels):
            weight = self._smooth((vowels == v).astype(np.float64), 0.04)
            filtered = signal.sosfilt(self.vowel_sos[v], excitation).astype(np.float32)
            shaped += np.interp(t, ctrl, weight).astype(np.float32) * filtered
        # Consonants: short band-passed noise bursts at most syllable onsets.
        for on, vel in zip(notes[:, 0].astype(int) - start, notes[:, 4], strict=True):
            if rng.random() < 0.6 and 0 <= on < length:
                seg = self.burst[: length - on]
                shaped[on : on + seg.size] += seg * np.float32(0.5 * vel)
        return shaped


def _reverb(mono: np.ndarray, sr: int, rng: np.random.Generator, wet: float) -> np.ndarray:
    """A short stereo room: exponentially decaying noise impulse responses, one per channel."""
    n = int(0.9 * sr)
    t = np.arange(n) / sr
    ir = rng.standard_normal((2, n)) * np.exp(-t / 0.25)
    ir[:, : int(0.012 * sr)] = 0.0  # pre-delay
    ir *= wet / np.sqrt((ir**2).sum(axis=1, keepdims=True))
    return signal.oaconvolve(mono[None, :], ir.astype(np.float32), axes=1)[:, : mono.size]
