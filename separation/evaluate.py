"""Scoring separations against true stems with museval (BSSEval v4), as SiSEC 2018 does.

Each system (the model, possibly with post-processing, and the MIX and IRM oracle baselines of
seeds/003 §4.1) separates every track; museval scores each estimate in 1 s frames (SDR, SIR,
SAR, ISR); a track's score is the median over its frames (NaN frames, where the reference is
silent, are ignored) and a system's score is the median over tracks (the mean is kept too).
NSDR (seeds/004) is a track's SDR minus the SDR of the unprocessed mixture (the MIX baseline).

MUSDB references are decoded to 16-bit PCM (ffmpeg ``s16le``) because museval's SIR/SAR are
unstable with float decodes of AAC (shared/data/README.md); every result says how its audio was
decoded in its ``decoding`` field.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import museval
import numpy as np
import pandas as pd
import soundfile as sf
import torch
from vocalmine.separation.masks import istft, stft

from vocalmine.core.audio import AudioError, load_audio

SOURCES: tuple[str, str] = ("vocals", "accompaniment")
METRICS: tuple[str, ...] = ("SDR", "SIR", "SAR", "ISR")
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


System = Callable[[EvalTrack], dict[str, np.ndarray]]


@dataclass
class EvaluationResult:
    """Frame-level scores (long table) plus what produced them."""

    frames: pd.DataFrame
    dataset: str
    systems: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    decoding: str = DECODING

    def tracks(self) -> pd.DataFrame:
        """Median over frames per (system, track, source, metric), plus NSDR rows."""
        per_track = (
            self.frames.groupby(["system", "track", "source", "metric"], sort=False)["value"]
            .median()
            .reset_index()
        )
        sdr = per_track[per_track.metric == "SDR"]
        mix = sdr[sdr.system == "MIX"].set_index(["track", "source"])["value"]
        if not mix.empty:
            nsdr = sdr.copy()
            baseline = mix.reindex(pd.MultiIndex.from_frame(nsdr[["track", "source"]])).to_numpy()
            nsdr["value"] = nsdr["value"].to_numpy() - baseline
            nsdr["metric"] = "NSDR"
            per_track = pd.concat([per_track, nsdr], ignore_index=True)
        return per_track

    def summary(self) -> pd.DataFrame:
        """Median and mean over tracks per (system, source, metric); NaN tracks ignored."""
        grouped = self.tracks().groupby(["system", "source", "metric"], sort=False)["value"]
        out = grouped.agg(median="median", mean="mean", tracks="count").reset_index()
        return out

    def to_json(self) -> dict[str, Any]:
        """The summary as nested plain values: ``{system: {source: {metric: {median, mean}}}}``."""
        nested: dict[str, Any] = {}
        for row in self.summary().itertuples(index=False):
            entry = nested.setdefault(row.system, {}).setdefault(row.source, {})
            entry[row.metric] = {
                "median": _num(row.median),
                "mean": _num(row.mean),
                "tracks": int(row.tracks),
            }
        return {
            "dataset": self.dataset,
            "systems": self.systems,
            "notes": self.notes,
            "decoding": self.decoding,
            "aggregation": "median over 1 s frames per track, then median (and mean) over tracks",
            "tracks": sorted(self.frames.track.unique().tolist()),
            "scores": nested,
        }

    def save(self, out_dir: str | Path) -> dict[str, Path]:
        """``summary.json``, ``tracks.parquet`` and ``frames.parquet`` in ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "summary": out / "summary.json",
            "tracks": out / "tracks.parquet",
            "frames": out / "frames.parquet",
        }
        _atomic_text(paths["summary"], json.dumps(self.to_json(), indent=2))
        _atomic_parquet(paths["tracks"], self.tracks())
        _atomic_parquet(paths["frames"], self.frames)
        return paths


def _num(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 4)


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _atomic_parquet(path: Path, frame: pd.DataFrame) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)


# ---------------------------------------------------------------------------------------------
# Datasets


def decode_stream_pcm16(path: Path, stream: int) -> tuple[np.ndarray, int]:
    """Audio stream ``stream`` of a (stem) file as 16-bit PCM, returned as float32 ``(C, N)``."""
    if shutil.which("ffmpeg") is None:
        raise AudioError(path, "needs ffmpeg to decode stem files (apt-get install -y ffmpeg)")
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", f"a:{stream}", "-show_entries",
         "stream=sample_rate,channels", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    fields = probe.stdout.strip().split(",")
    if probe.returncode != 0 or len(fields) != 2:
        raise AudioError(path, f"has no audio stream {stream}")
    rate, channels = int(fields[0]), int(fields[1])
    proc = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", f"0:a:{stream}",
         "-f", "s16le", "-acodec", "pcm_s16le", "-"],
        capture_output=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        lines = proc.stderr.decode(errors="replace").strip().splitlines()
        raise AudioError(path, f"ffmpeg cannot decode it ({lines[-1] if lines else 'error'})")
    pcm = np.frombuffer(proc.stdout, dtype="<i2").reshape(-1, channels).T
    return (pcm.astype(np.float32) / 32768.0), rate


def musdb_tracks(root: str | Path, limit: int | None = None) -> Iterator[EvalTrack]:
    """Tracks of a musdb-format folder of ``*.stem.mp4`` (accompaniment = drums + bass + other)."""
    files = sorted(Path(root).glob("*.stem.mp4"))
    if not files:
        raise FileNotFoundError(f"{root}: no *.stem.mp4 files (expected a musdb-format folder)")
    for path in files[:limit]:
        yield load_musdb_track(path)


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


def mir1k_tracks(root: str | Path, count: int | None = 100, seed: int = 0) -> Iterator[EvalTrack]:
    """MIR-1K clips (left = accompaniment, right = vocals), mono mixture = left + right.

    ``count`` clips drawn with ``random.Random(seed)``, as in shared/data/README.md.
    """
    files = sorted(Path(root).glob("*.flac"))
    if not files:
        raise FileNotFoundError(f"{root}: no MIR-1K .flac clips")
    if count is not None and count < len(files):
        files = sorted(random.Random(seed).sample(files, count))
    for path in files:
        audio, rate = sf.read(path, dtype="int16", always_2d=True)
        clip = audio.T.astype(np.float32) / 32768.0
        left, right = clip[:1], clip[1:2]
        yield EvalTrack(
            name=path.stem,
            mixture=left + right,
            references={"vocals": right, "accompaniment": left},
            sample_rate=rate,
        )


def manifest_tracks(
    manifest: str | Path, limit: int | None = None, library: str | Path | None = None
) -> Iterator[EvalTrack]:
    """Songs of a test library's answer key (``vocalmine.testlib.builder``, schema 1 or 2: 2 adds
    decoys, the songs are the same).

    Every song with an original file and true stems is a track. Stems are on the original's
    timeline and rate, and a decoded MP3 original starts ``codec_delay_samples`` late, so that
    many samples are dropped before comparing. Library paths are relative to ``library``
    (default: the manifest folder's name without ``.truth``), stem paths to the manifest folder.
    """
    path = Path(manifest)
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("schema_version") not in (1, 2) or "songs" not in data:
        raise ValueError(f"{path}: not a library answer key (schema_version 1 or 2 with songs)")
    truth = path.parent
    root = Path(library) if library else truth.with_name(truth.name.removesuffix(".truth"))
    songs = [s for s in data["songs"] if s.get("original") and s.get("stems")]
    for song in songs[:limit]:
        original = song["original"]
        mixture, rate = load_audio(root / original["path"])
        vocals, _ = load_audio(truth / song["stems"]["vocals"], sr=rate)
        accompaniment, _ = load_audio(truth / song["stems"]["accompaniment"], sr=rate)
        delay = int(original.get("codec_delay_samples") or 0)
        n = min(vocals.shape[1], accompaniment.shape[1], mixture.shape[1] - delay)
        channels = mixture.shape[0]
        lossy = original.get("codec") == "mp3"
        yield EvalTrack(
            name=f"{song['id']} {song['artist']} - {song['title']}",
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


# ---------------------------------------------------------------------------------------------
# Systems


def mix_baseline(track: EvalTrack) -> dict[str, np.ndarray]:
    """SiSEC's MIX: every estimate is the mixture / 2 (mask 0.5, seeds/003 eq. 4.3)."""
    half = track.mixture / 2
    return {source: half.copy() for source in SOURCES}


def irm_oracle(n_fft: int = 4096, hop: int = 1024, power: float = 1.0) -> System:
    """IRM oracle (seeds/003 eq. 4.1–4.2): ``|S_j|^p / sum_k |S_k|^p`` on the mixture's STFT."""

    def separate(track: EvalTrack) -> dict[str, np.ndarray]:
        mix = stft(torch.from_numpy(track.mixture), n_fft, hop)
        powers = {
            s: stft(torch.from_numpy(track.references[s]), n_fft, hop).abs() ** power
            for s in SOURCES
        }
        total = sum(powers.values()) + torch.finfo(torch.float32).eps
        length = track.mixture.shape[1]
        return {s: istft(mix * (powers[s] / total), n_fft, hop, length).numpy() for s in SOURCES}

    return separate


def separator_system(separator: Any) -> System:
    """A :class:`separation.separate.Separator` as an evaluation system."""

    def separate(track: EvalTrack) -> dict[str, np.ndarray]:
        return separator.separate_array(track.mixture, track.sample_rate)

    return separate


# ---------------------------------------------------------------------------------------------
# Scoring


def score_track(
    track: EvalTrack, estimates: dict[str, np.ndarray], window_s: float = 1.0
) -> pd.DataFrame:
    """museval v4 frame scores of one track: columns source, metric, frame, value."""
    refs = np.stack([track.references[s].T for s in SOURCES]).astype(np.float64)
    ests = np.stack([_fit(estimates[s], refs.shape[1]).T for s in SOURCES]).astype(np.float64)
    win = int(round(window_s * track.sample_rate))
    sdr, isr, sir, sar = museval.evaluate(refs, ests, win=win, hop=win, mode="v4")
    rows = []
    for metric, values in (("SDR", sdr), ("SIR", sir), ("SAR", sar), ("ISR", isr)):
        for i, source in enumerate(SOURCES):
            for frame, value in enumerate(values[i]):
                rows.append((source, metric, frame, float(value)))
    return pd.DataFrame(rows, columns=["source", "metric", "frame", "value"])


def _fit(audio: np.ndarray, length: int) -> np.ndarray:
    audio = np.atleast_2d(audio)
    if audio.shape[1] >= length:
        return audio[:, :length]
    return np.pad(audio, [(0, 0), (0, length - audio.shape[1])])


def evaluate(
    tracks: Iterable[EvalTrack],
    systems: dict[str, System],
    *,
    dataset: str,
    descriptions: dict[str, str] | None = None,
    decoding: str = DECODING,
    window_s: float = 1.0,
    on_track: Callable[[str], None] | None = None,
) -> EvaluationResult:
    """Score every system on every track; one track is decoded and held at a time."""
    frames = []
    notes: dict[str, str] = {}
    for track in tracks:
        if track.note:
            notes[track.name] = track.note
        silent = [s for s in SOURCES if not np.any(track.references[s])]
        if silent:  # BSSEval is undefined for an all-zero reference
            notes[track.name] = f"skipped: no {' or '.join(silent)} in the reference"
            continue
        for name, system in systems.items():
            scores = score_track(track, system(track), window_s)
            scores.insert(0, "track", track.name)
            scores.insert(0, "system", name)
            frames.append(scores)
        if on_track:
            on_track(track.name)
    if not frames:
        raise ValueError(f"{dataset}: no tracks to evaluate")
    table = pd.concat(frames, ignore_index=True)
    for column in ("system", "track", "source", "metric"):
        table[column] = table[column].astype("string")
    return EvaluationResult(table, dataset, descriptions or {}, notes, decoding)


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
    """Tracks to score, a label for reports, and how their audio was decoded."""

    label: str
    tracks: Iterator[EvalTrack]
    decoding: str


def open_dataset(path: str | Path, limit: int | None = None) -> Dataset:
    """Recognise a dataset: a musdb folder (``*.stem.mp4``), a MIR-1K folder (``*.flac``), a
    test library's answer key (its ``manifest.json``, the ``.truth`` folder holding it, or the
    library folder beside that)."""
    root = Path(path)
    manifest = None
    if root.is_file() and root.suffix == ".json":
        manifest = root
    elif (root / "manifest.json").is_file():
        manifest = root / "manifest.json"
    elif (root.parent / f"{root.name}.truth" / "manifest.json").is_file():
        manifest = root.parent / f"{root.name}.truth" / "manifest.json"
    if manifest is not None:
        name = manifest.parent.name.removesuffix(".truth")
        return Dataset(f"library:{name}", manifest_tracks(manifest, limit), LIBRARY_DECODING)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such dataset folder or manifest")
    if any(root.glob("*.stem.mp4")):
        label = f"musdb:{root.parent.name}/{root.name}"
        return Dataset(label, musdb_tracks(root, limit), DECODING)
    if any(root.glob("*.flac")):
        return Dataset(f"mir1k:{root.name}", mir1k_tracks(root, count=limit or 100), MIR1K_DECODING)
    raise FileNotFoundError(f"{root}: not a musdb folder, a MIR-1K folder or a library answer key")


def baseline_systems(
    irm_n_fft: int = 4096, irm_hop: int = 1024
) -> tuple[dict[str, System], dict[str, str]]:
    """The MIX and IRM1 oracle baselines and their descriptions."""
    systems: dict[str, System] = {"MIX": mix_baseline, "IRM1": irm_oracle(irm_n_fft, irm_hop)}
    descriptions = {
        "MIX": "lower bound: both estimates are the mixture / 2",
        "IRM1": f"upper bound: ideal ratio mask of the true stems, n_fft {irm_n_fft} hop {irm_hop}",
    }
    return systems, descriptions
