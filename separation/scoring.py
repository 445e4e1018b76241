"""Scoring separations against true stems with museval (BSSEval v4), as SiSEC 2018 does.

Each system (the model, possibly with post-processing, and the MIX and IRM oracle baselines of
Prétet 2018 §4.1) separates every track; museval scores each estimate in 1 s frames (SDR, SIR,
SAR, ISR); a track's score is the median over its frames (NaN frames, where the reference is
silent, are ignored) and a system's score is the median over tracks (the mean is kept too).
NSDR (Jansson et al. 2017) is a track's SDR minus the SDR of the unprocessed mixture (the MIX
baseline).
How each dataset's audio was decoded rides along in every result's ``decoding`` field
(:mod:`separation.eval_datasets`).

An evaluation survives being stopped: with a :class:`ScoreStore`, each system's frame scores on
a track are written (atomically) as soon as they exist, and a later run with the same store reads
them instead of scoring again, so it ends with the same result as a run never stopped.

**museval and numpy ≥ 2.4.** museval 0.4.1 (the version installed) solves for its distortion
filters with ``np.linalg.solve`` and, when that matrix is singular, falls back to
``np.linalg.lstsq``; the fallback is an ``except np.linalg.linalg.LinAlgError`` clause
(``museval/metrics.py``, ``_compute_projection_filters``). numpy 2.4 removed the
``np.linalg.linalg`` alias, so the clause itself raises ``AttributeError`` and a singular case
ends the evaluation instead of taking the fallback museval intends. :func:`_museval_numpy_compat`
gives that one name back, once, at import: an alias whose only member is numpy's public
``LinAlgError`` (the class the old name held), set only where numpy lacks it. The alternatives
are worse: pinning numpy below 2.4 holds every other package back; catching the
``AttributeError`` around museval would lose the track's scores instead of computing them
through museval's least-squares fallback; a patched copy of museval's function would drift from
upstream. Drop the alias once museval names ``np.linalg.LinAlgError``.

In v4 mode the filters are solved once per track, from the whole references, so what can be
singular is a track, not a frame: references whose delayed copies are exactly dependent (a
reference that is a single click, for instance). A frame where a reference or an estimate is
silent is museval's other rule: that frame is scored NaN, and the medians ignore it.
"""

from __future__ import annotations

import hashlib
import json
import re
import types
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import museval
import numpy as np
import pandas as pd

from vocalmine.core.atomic import atomic_path, atomic_write_text
from vocalmine.separation.eval_datasets import DECODING, EvalTrack, LazyTrack, System
from vocalmine.training.models.base import SOURCES

METRICS: tuple[str, ...] = ("SDR", "SIR", "SAR", "ISR")
#: Part of every stored score's key: bump it when the scoring or the stored format changes, so
#: scores stored before are not reused.
SCORES_VERSION = 1


def _museval_numpy_compat() -> None:
    """Give museval 0.4.1 the ``np.linalg.linalg.LinAlgError`` that numpy 2.4 removed (see the
    module docstring); nothing changes where numpy still has the name."""
    if not hasattr(np.linalg, "linalg"):
        alias = types.ModuleType("numpy.linalg.linalg", "museval 0.4.1's name for LinAlgError")
        alias.LinAlgError = np.linalg.LinAlgError  # type: ignore[attr-defined]
        np.linalg.linalg = alias  # type: ignore[attr-defined]


_museval_numpy_compat()


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
        atomic_write_text(paths["summary"], json.dumps(self.to_json(), indent=2))
        for name, frame in (("tracks", self.tracks()), ("frames", self.frames)):
            with atomic_path(paths[name]) as tmp:
                frame.to_parquet(tmp, index=False)
        return paths


def _num(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 4)


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


@dataclass(frozen=True)
class TrackRecord:
    """What a decoded track told about itself: a note for the report, and whether it was skipped
    (a reference with no signal at all, where BSSEval is undefined)."""

    note: str = ""
    skipped: bool = False


class ScoreStore:
    """Frame scores already computed, under ``<out_dir>/scores``, so a stopped evaluation resumes.

    One Parquet file per (track, system), written atomically as soon as the system is scored on
    the track, and one ``track.json`` per track (its note, whether it was skipped). Files are
    keyed by a hash of what determines their content: ``dataset_key`` and the track's name for a
    track, the system's entry in ``identities`` (what changes its output: model weights,
    post-processing, oracle settings), the frame length and :data:`SCORES_VERSION` for its
    scores. Another model, variant or dataset therefore finds nothing to reuse, whatever the
    folder.
    """

    def __init__(self, out_dir: str | Path, dataset_key: str, identities: dict[str, str]) -> None:
        self.root = Path(out_dir) / "scores"
        self.dataset_key = dataset_key
        self.identities = dict(identities)

    def _track_dir(self, track: str) -> Path:
        return self.root / f"{slug(track)}-{_digest(self.dataset_key, track)}"

    def _scores_path(self, track: str, system: str, window_s: float) -> Path:
        key = _digest(self.identities[system], f"{window_s:g}", str(SCORES_VERSION))
        return self._track_dir(track) / f"{slug(system)}-{key}.parquet"

    def record(self, track: str) -> TrackRecord | None:
        """The stored record of ``track``, None if it was never decoded."""
        path = self._track_dir(track) / "track.json"
        if not path.is_file():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        return TrackRecord(data["note"], data["skipped"])

    def save_record(self, track: str, record: TrackRecord) -> None:
        """Store what ``track`` told about itself."""
        text = json.dumps({"track": track, **asdict(record)}, indent=1)
        atomic_write_text(self._track_dir(track) / "track.json", text)

    def scores(self, track: str, system: str, window_s: float) -> pd.DataFrame | None:
        """The stored frame scores (``window_s`` frames) of ``system`` on ``track``, if any."""
        path = self._scores_path(track, system, window_s)
        return pd.read_parquet(path) if path.is_file() else None

    def save_scores(self, track: str, system: str, window_s: float, frames: pd.DataFrame) -> None:
        """Store the frame scores of ``system`` on ``track`` (:func:`score_track`'s table)."""
        with atomic_path(self._scores_path(track, system, window_s)) as tmp:
            frames.to_parquet(tmp, index=False)


def slug(text: str) -> str:
    """A readable, safe file-name part of ``text``: runs of other characters become ``_``."""
    return re.sub(r"[^A-Za-z0-9.+=-]+", "_", text).strip("._")[:48] or "_"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:12]


def evaluate(
    tracks: Iterable[EvalTrack | LazyTrack],
    systems: dict[str, System],
    *,
    dataset: str,
    descriptions: dict[str, str] | None = None,
    decoding: str = DECODING,
    window_s: float = 1.0,
    on_track: Callable[[str], None] | None = None,
    store: ScoreStore | None = None,
) -> EvaluationResult:
    """Score every system on every track; one track is decoded and held at a time.

    With a ``store``, scores it holds are read instead of computed (a track whose systems are all
    stored is not even decoded) and new ones are stored as they come; the result is the same
    either way, in the same order.
    """
    if store is not None and (missing := set(systems) - set(store.identities)):
        raise ValueError(f"no identity for {sorted(missing)}: their scores cannot be stored")
    frames = []
    notes: dict[str, str] = {}
    for entry in tracks:
        record, scores = _track_scores(entry, systems, window_s, store)
        if record.note:
            notes[entry.name] = record.note
        if not record.skipped:
            for name in systems:
                frames.append(scores[name].assign(system=name, track=entry.name))
        if on_track:
            on_track(entry.name)
    if not frames:
        raise ValueError(f"{dataset}: no tracks to evaluate")
    columns = ["system", "track", "source", "metric", "frame", "value"]
    table = pd.concat(frames, ignore_index=True)[columns]
    for column in ("system", "track", "source", "metric"):
        table[column] = table[column].astype("string")
    return EvaluationResult(table, dataset, descriptions or {}, notes, decoding)


def _track_scores(
    entry: EvalTrack | LazyTrack,
    systems: dict[str, System],
    window_s: float,
    store: ScoreStore | None,
) -> tuple[TrackRecord, dict[str, pd.DataFrame]]:
    """One track's record and each system's frame scores: stored ones read, the others scored
    (and stored); the audio is decoded only if something is missing."""
    record = store.record(entry.name) if store is not None else None
    scores: dict[str, pd.DataFrame] = {}
    if store is not None and record is not None:
        stored = {name: store.scores(entry.name, name, window_s) for name in systems}
        scores = {name: frame for name, frame in stored.items() if frame is not None}
        if record.skipped or len(scores) == len(systems):
            return record, scores
    track = entry.load()
    silent = [s for s in SOURCES if not np.any(track.references[s])]
    if silent:  # BSSEval is undefined for an all-zero reference
        record = TrackRecord(f"skipped: no {' or '.join(silent)} in the reference", skipped=True)
    else:
        record = TrackRecord(track.note)
    if store is not None:
        store.save_record(entry.name, record)
    if record.skipped:
        return record, {}
    for name, system in systems.items():
        if name not in scores:
            scores[name] = score_track(track, system(track), window_s)
            if store is not None:
                store.save_scores(entry.name, name, window_s, scores[name])
    return record, scores
