"""Synthetic fingerprint libraries of 1,000–20,000 tracks for the discovery scale benchmark.

Rendering and fingerprinting 20,000 songs would take hours, so a library is built the way the
scale issue measured it: a few dozen *base* songs are rendered (or decoded) once, and the library
is made of *families* derived from them by transforms on the fingerprints themselves.

Base material (:func:`base_material`, cached per base in ``<workdir>/<kind>/<name>.npz``):

* ``synthetic``: :func:`vocalmine.testlib.synth.synthesize_song` at 44.1 kHz, 150–270 s (seeded
  per base). mix = vocals + accompaniment, instrumental = accompaniment, copy = the mix with a
  random ±3 dB gain (kept below clipping) through a lameenc MP3 128 kbit/s round trip
  (:func:`vocalmine.core.audio.save_audio` / :func:`~vocalmine.core.audio.load_audio`; it
  decodes 1105 samples late, as many real MP3s do, so the copy is offset by ≈ 2 frames).
* ``mir1k``: MIR-1K clips (16 kHz, left = accompaniment, right = voice) in a seeded order;
  mix = L + R, instrumental = L, copy = the mix, ±3 dB gain, MP3 128 kbit/s round trip.

Every part is fingerprinted mono at its native rate with :func:`mining.landmarks.fingerprint`.

Derivation (:func:`derive_corpus`), deterministic for a given (bases, size, seed):

* Family ``f`` (0, 1, 2, …) is derived from base ``b = f % len(bases)``. Families
  ``f < len(bases)`` are the bases untransformed. Later families apply one transform to all of
  their members: hash values ``h ^ (mask_f << 6)`` with a non-zero 10-bit ``mask_f`` over the
  Δf field and the two lowest bits of f1 (a bijection that keeps Δt and the frequency band, so
  the family keeps its internal matching structure exactly while it meets other families at
  about the rate unrelated songs do; the k-th family of a base takes the k-th mask of a fixed
  permutation, so no two families of one base are copies of each other), anchor times
  shifted by a random ``shift_f`` of 0–400 frames, and ``n_frames`` grown by that shift plus
  a random 0–800 frame tail (durations spread, offsets vary). ``frame_s`` and ``params`` are
  kept. A derived family's pair and copy therefore match exactly as its base's do.
* Composition, drawn from a random stream of its own per family: always the mix; with
  probability 0.5 the instrumental too (a planted pair); with probability 0.15 a copy of the mix
  (a planted copy). Most tracks are singles, as in real libraries. Families are added until the
  library holds exactly ``size`` tracks; the last one is cut short if needed, and planted items
  that lost a member are dropped. Because each family has its own random stream, the first
  families of a size-N and a size-M library are identical, so the last names of a library can
  stand for the new arrivals of an incremental run.
* Names: ``f000123-mix``, ``f000123-inst``, ``f000123-copy``; library order = family order, then
  mix, instrumental, copy.

Caveat: the XOR still spreads the Δf field's natural distribution, so two *derived* families
share somewhat fewer hashes by chance than two real unrelated songs; an 18-bit mask over f1 too
(first tried) made it 100× fewer, with f1 values no real peak has. The untransformed base
families keep the natural distribution.

``python bench/scale_corpus.py --kind synthetic --count 40 --size 20000`` builds one and prints
its size; the benchmark itself (``bench/scale.py``) imports :func:`base_material` and
:func:`derive_corpus`.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vocalmine.core.atomic import atomic_write_bytes  # noqa: E402
from vocalmine.core.audio import load_audio, save_audio  # noqa: E402
from vocalmine.mining.landmarks import DEFAULT_PARAMS, DT_MASK, Fingerprint, fingerprint  # noqa: E402
from vocalmine.testlib.synth import synthesize_song  # noqa: E402

KINDS = ("synthetic", "mir1k")
MIR1K = ROOT.parent / "shared" / "data" / "mir1k"
DEFAULT_WORKDIR = Path(tempfile.gettempdir()) / "scale-corpus"
SYNTH_DURATION_S = (150.0, 270.0)
COPY_GAIN_DB = 3.0
MP3_KBPS = 128
P_INSTRUMENTAL = 0.5
P_COPY = 0.15
MAX_SHIFT_FRAMES = 400
MAX_TAIL_FRAMES = 800
DT_BITS = DT_MASK.bit_length()  # the mask is shifted above the Δt field ...
MASK_BITS = 10  # ... and covers the Δf field and the two lowest bits of f1 (kept near itself)
MASK_STEP = 389  # coprime with 2**MASK_BITS - 1: k -> k * step is a permutation of the masks
PARTS = ("mix", "inst", "copy")


@dataclass(frozen=True)
class Base:
    """One rendered/decoded source: fingerprints of its mix, instrumental and re-encoded copy."""

    kind: str  # "synthetic" or "mir1k"
    name: str
    mix: Fingerprint
    inst: Fingerprint
    copy: Fingerprint


@dataclass(frozen=True)
class Corpus:
    """A fingerprint library and its answer key (planted pairs and copies). Fingerprints are
    made on demand from their recipe (a 20k-track library of 4-minute songs would hold 5 GB)."""

    kind: str  # "synthetic" or "mir1k"
    recipes: dict[str, tuple[Fingerprint, int, int, int]]  # name -> (base part, mask, shift, tail)
    pairs: set[tuple[str, str]]  # planted (mix, instrumental) names
    copies: set[tuple[str, str]]  # planted (copy, mix) names: same recording, re-encoded
    bases: int  # distinct rendered/decoded sources the library uses

    def names(self) -> list[str]:
        """Track names in library order (families in order; mix, inst, copy within one)."""
        return list(self.recipes)

    def fingerprint(self, name: str) -> Fingerprint:
        """The fingerprint of one track."""
        return _transform(*self.recipes[name])


# -- base material ----------------------------------------------------------------------------


def _mp3_copy(mono: np.ndarray, sr: int, rng: np.random.Generator, tmp: Path) -> np.ndarray:
    """The mix re-encoded: ±3 dB gain (kept below clipping), lameenc MP3 round trip."""
    gain = 10 ** (rng.uniform(-COPY_GAIN_DB, COPY_GAIN_DB) / 20)
    audio = mono * min(gain, 0.99 / max(float(np.abs(mono).max()), 1e-9))
    path = save_audio(tmp / "copy.mp3", audio[None].astype(np.float32), sr, bitrate_kbps=MP3_KBPS)
    decoded, _ = load_audio(path, sr=sr, mono=True)
    return decoded[0]


def _fingerprint_base(
    kind: str,
    name: str,
    mix: np.ndarray,
    inst: np.ndarray,
    sr: int,
    rng: np.random.Generator,
    tmp: Path,
) -> Base:
    copy = _mp3_copy(mix, sr, rng, tmp)
    return Base(kind, name, fingerprint(mix, sr), fingerprint(inst, sr), fingerprint(copy, sr))


def _render_synthetic(index: int, seed: int, tmp: Path) -> Base:
    rng = np.random.default_rng([seed, index, 11])
    duration = float(rng.uniform(*SYNTH_DURATION_S))
    song = synthesize_song((seed, index), duration)
    mix = song.mix.mean(axis=0)
    inst = song.accompaniment.mean(axis=0)
    name = _synthetic_name(index, seed)
    return _fingerprint_base("synthetic", name, mix, inst, song.sample_rate, rng, tmp)


def _synthetic_name(index: int, seed: int) -> str:
    return f"synth-s{seed}-{index:05d}"


def _decode_mir1k(clip: Path, tmp: Path) -> Base:
    stereo, sr = load_audio(clip)
    acc, voice = stereo[0], stereo[1]
    rng = np.random.default_rng([zlib.crc32(clip.stem.encode()), 11])
    return _fingerprint_base("mir1k", clip.stem, acc + voice, acc, sr, rng, tmp)


def _mir1k_clips(count: int, seed: int) -> list[Path]:
    clips = sorted(MIR1K.glob("*_*_*.flac"))
    if not clips:
        raise FileNotFoundError(f"{MIR1K}: no MIR-1K clips (<singer>_<song>_<clip>.flac) here")
    if count > len(clips):
        raise ValueError(f"mir1k: {count} bases asked, only {len(clips)} clips in {MIR1K}")
    order = np.random.default_rng(seed).permutation(len(clips))
    return [clips[int(k)] for k in order[:count]]


def _save_base(path: Path, base: Base) -> None:
    buffer = io.BytesIO()
    blobs = {part: getattr(base, part).to_bytes() for part in PARTS}
    np.savez(buffer, **{p: np.frombuffer(b, dtype=np.uint8) for p, b in blobs.items()})
    atomic_write_bytes(path, buffer.getvalue())


def _load_base(path: Path, kind: str, name: str) -> Base | None:
    """The cached base, or None when absent, unreadable or made with other parameters."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            fps = {part: Fingerprint.from_bytes(npz[part].tobytes()) for part in PARTS}
    except (OSError, KeyError, ValueError):
        return None
    if any(fp.params != DEFAULT_PARAMS for fp in fps.values()):
        return None
    return Base(kind, name, fps["mix"], fps["inst"], fps["copy"])


def base_material(kind: str, workdir: Path, count: int, seed: int = 0) -> list[Base]:
    """Render/decode ``count`` base songs once and cache their three fingerprints (mix,
    instrumental, copy) in ``workdir/<kind>/<name>.npz``; a second call only loads the cache.

    Why: rendering, encoding and fingerprinting is seconds per song, so a benchmark of 20,000
    tracks derives them from a few dozen bases (:func:`derive_corpus`) and pays this once.
    ``synthetic`` bases ``i`` depend on (seed, i), so a larger ``count`` extends a smaller one;
    ``mir1k`` takes the first ``count`` clips of a ``seed``-shuffled order.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    folder = Path(workdir) / kind
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "synthetic":
        names = [_synthetic_name(i, seed) for i in range(count)]
        clips: list[Path] = []
    else:
        clips = _mir1k_clips(count, seed)
        names = [clip.stem for clip in clips]
    bases: list[Base] = []
    with tempfile.TemporaryDirectory(prefix="scale-corpus-") as tmpdir:
        for i, name in enumerate(names):
            path = folder / f"{name}.npz"
            base = _load_base(path, kind, name) if path.exists() else None
            if base is None:
                tmp = Path(tmpdir)
                if kind == "synthetic":
                    base = _render_synthetic(i, seed, tmp)
                else:
                    base = _decode_mir1k(clips[i], tmp)
                _save_base(path, base)
            bases.append(base)
    return bases


# -- derived library --------------------------------------------------------------------------


def _transform(fp: Fingerprint, mask: int, shift: int, tail: int) -> Fingerprint:
    """Hashes XOR ``mask << 6`` (Δt bits kept), times + ``shift``, n_frames + shift + tail."""
    if mask == 0 and shift == 0 and tail == 0:
        return fp
    hashes = fp.hashes ^ np.uint32(mask << DT_BITS)
    times = fp.times + np.int32(shift)
    order = np.lexsort((times, hashes))
    return Fingerprint(
        hashes[order], times[order], fp.frame_s, fp.n_frames + shift + tail, fp.params
    )


def derive_corpus(bases: list[Base], size: int, seed: int = 0) -> Corpus:
    """A library of exactly ``size`` tracks made of families derived from the bases.

    Why: a benchmark at 20,000 tracks cannot render 20,000 songs; hash-value bijections that
    keep Δt give families that match within themselves exactly as their base does and meet
    each other only by chance (module docstring). Deterministic for (bases, size, seed), and a
    larger size extends a smaller one family by family.
    """
    if not bases:
        raise ValueError("derive_corpus needs at least one base")
    if size < 0:
        raise ValueError(f"size must be non-negative, got {size}")
    fingerprints: dict[str, tuple[Fingerprint, int, int, int]] = {}
    pairs: set[tuple[str, str]] = set()
    copies: set[tuple[str, str]] = set()
    used: set[int] = set()
    f = 0
    while len(fingerprints) < size:
        b = f % len(bases)
        base = bases[b]
        rng = np.random.default_rng([seed, f, 23])
        has_inst = bool(rng.random() < P_INSTRUMENTAL)
        has_copy = bool(rng.random() < P_COPY)
        # the k-th derivation of a base gets the k-th mask of a fixed permutation: no two
        # families of one base share a mask (they would be copies of each other)
        mask = (f // len(bases) * MASK_STEP) % ((1 << MASK_BITS) - 1) + 1
        shift = int(rng.integers(0, MAX_SHIFT_FRAMES + 1))
        tail = int(rng.integers(0, MAX_TAIL_FRAMES + 1))
        if f < len(bases):
            mask = shift = tail = 0
        members = [("mix", base.mix)]
        if has_inst:
            members.append(("inst", base.inst))
        if has_copy:
            members.append(("copy", base.copy))
        members = members[: size - len(fingerprints)]
        names = {part: f"f{f:06d}-{part}" for part, _ in members}
        for part, fp in members:
            fingerprints[names[part]] = (fp, mask, shift, tail)
        if "inst" in names:
            pairs.add((names["mix"], names["inst"]))
        if "copy" in names:
            copies.add((names["copy"], names["mix"]))
        used.add(b)
        f += 1
    return Corpus(bases[0].kind, fingerprints, pairs, copies, len(used))


def main() -> None:
    """Build the bases and one corpus; print its size and the time taken."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=KINDS, default="synthetic")
    parser.add_argument("--count", type=int, default=40, help="base songs to render/decode")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="base cache")
    parser.add_argument("--size", type=int, default=1000, help="tracks in the library")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started, cpu = time.perf_counter(), time.process_time()
    bases = base_material(args.kind, args.workdir, args.count, args.seed)
    base_s, base_cpu = time.perf_counter() - started, time.process_time() - cpu
    corpus = derive_corpus(bases, args.size, args.seed)
    total_s = time.perf_counter() - started
    hashes = sum(len(recipe[0]) for recipe in corpus.recipes.values())
    tracks = len(corpus.recipes)
    print(f"kind            {corpus.kind}")
    print(f"bases           {corpus.bases} (of {len(bases)})")
    print(f"tracks          {tracks}")
    print(f"planted pairs   {len(corpus.pairs)}")
    print(f"planted copies  {len(corpus.copies)}")
    print(f"total hashes    {hashes}")
    print(f"hashes/track    {hashes / max(tracks, 1):.0f}")
    print(f"base material   {base_s:.1f} s ({base_cpu:.1f} s CPU)")
    print(f"seconds taken   {total_s:.1f}")


if __name__ == "__main__":
    main()
