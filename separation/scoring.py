"""Scoring separations against true stems with museval (BSSEval v4), as SiSEC 2018 does.

Each system (the model, possibly with post-processing, and the MIX and IRM oracle baselines of
Prétet 2018 §4.1) separates every track; museval scores each estimate in 1 s frames (SDR, SIR,
SAR, ISR); a track's score is the median over its frames (NaN frames, where the reference is
silent, are ignored) and a system's score is the median over tracks (the mean is kept too).
NSDR (Jansson et al. 2017) is a track's SDR minus the SDR of the unprocessed mixture (the MIX
baseline).
How each dataset's audio was decoded rides along in every result's ``decoding`` field
(:mod:`separation.eval_datasets`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import museval
import numpy as np
import pandas as pd

from vocalmine.core.atomic import atomic_path, atomic_write_text
from vocalmine.separation.eval_datasets import DECODING, EvalTrack, System
from vocalmine.training.models.base import SOURCES

METRICS: tuple[str, ...] = ("SDR", "SIR", "SAR", "ISR")


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
