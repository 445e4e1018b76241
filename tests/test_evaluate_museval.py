"""museval on real audio through our scoring code, with numpy ≥ 2.4: a silent reference frame is
scored NaN and the others are not; a singular reference takes museval's least-squares fallback
instead of crashing on the ``np.linalg.linalg`` name numpy 2.4 removed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vocalmine.separation.eval_datasets import EvalTrack, musdb_tracks
from vocalmine.separation.oracles import mix_baseline
from vocalmine.separation.scoring import score_track

RATE = 44100


@pytest.fixture(scope="module")
def song(musdb_dir: Path) -> EvalTrack:
    """The first 3 s of the first MUSDB18-7 track (three 1-s frames)."""
    track = next(musdb_tracks(musdb_dir, limit=1))
    n = 3 * track.sample_rate
    references = {source: audio[:, :n] for source, audio in track.references.items()}
    return EvalTrack(track.name, track.mixture[:, :n], references, track.sample_rate)


def by_frame(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per (source, metric), one column per frame."""
    return scores.pivot_table(
        index=["source", "metric"], columns="frame", values="value", dropna=False
    )


def test_a_frame_where_the_vocals_are_silent_is_nan_and_the_other_frames_are_scored(
    song: EvalTrack,
) -> None:
    vocals = song.references["vocals"].copy()
    vocals[:, RATE : 2 * RATE] = 0.0  # the singer pauses for the whole second frame
    accompaniment = song.references["accompaniment"]
    track = EvalTrack(
        "pause", vocals + accompaniment, {"vocals": vocals, "accompaniment": accompaniment}, RATE
    )
    frames = by_frame(score_track(track, mix_baseline(track)))
    assert list(frames.columns) == [0, 1, 2]
    assert frames[1].isna().all()  # museval's rule: a silent reference frame has no score
    assert np.isfinite(frames[[0, 2]].to_numpy()).all()


def click_track(song: EvalTrack) -> tuple[EvalTrack, dict[str, np.ndarray]]:
    """References that make museval's distortion-filter system exactly singular: both sources
    are the same click on the first sample (mono, so the solve stays fast). The estimates are
    the click plus the song's real stems."""
    click = np.zeros((1, song.mixture.shape[1]), dtype=np.float32)
    click[0, 0] = 2.0
    track = EvalTrack("click", 2 * click, {"vocals": click, "accompaniment": click.copy()}, RATE)
    estimates = {source: click + audio[:1] for source, audio in song.references.items()}
    return track, estimates


def test_a_singular_reference_crashes_museval_without_the_numpy_alias(
    song: EvalTrack, monkeypatch: pytest.MonkeyPatch
) -> None:
    track, estimates = click_track(song)
    monkeypatch.delattr(np.linalg, "linalg")  # numpy 2.4 as museval 0.4.1 finds it, unaided
    with pytest.raises(AttributeError, match="linalg"):
        score_track(track, estimates)


def test_a_singular_reference_is_scored_through_musevals_least_squares_fallback(
    song: EvalTrack, monkeypatch: pytest.MonkeyPatch
) -> None:
    track, estimates = click_track(song)
    lstsq = np.linalg.lstsq
    calls: list[tuple[int, ...]] = []

    def counted(a: np.ndarray, b: np.ndarray, *args: object, **kwargs: object) -> tuple:
        calls.append(a.shape)
        return lstsq(a, b, *args, **kwargs)

    monkeypatch.setattr(np.linalg, "lstsq", counted)
    frames = by_frame(score_track(track, estimates))
    assert calls  # the solve was singular and museval took its fallback
    assert np.isfinite(frames[0].to_numpy()).all()  # the frame with the click is scored
    assert frames[[1, 2]].isna().all().all()  # silent references: NaN, as museval intends
