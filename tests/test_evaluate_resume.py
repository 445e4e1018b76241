"""An evaluation survives being stopped: scores are stored as each track is scored, a re-run
reads them instead of scoring again and ends with the result an uninterrupted run gives, stored
scores are never reused for another system or dataset, and ``vocalmine evaluate`` stopped by
Ctrl-C or SIGTERM exits within seconds, leaves no process behind and resumes when run again."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import torch

from vocalmine.flows.evaluate import default_out_dir, resolve_model
from vocalmine.separation.eval_datasets import EvalTrack, LazyTrack, System, musdb_tracks
from vocalmine.separation.oracles import (
    irm_oracle,
    mix_baseline,
    model_fingerprint,
    separator_identity,
)
from vocalmine.separation.postprocess import parse_variant
from vocalmine.separation.scoring import ScoreStore, evaluate
from vocalmine.separation.separate import Separator

IDENTITIES = {"MIX": "mixture / 2", "IRM1": "IRM n_fft 2048 hop 512"}


@pytest.fixture(scope="module")
def songs(musdb_dir: Path) -> list[EvalTrack]:
    """The first 2 s of three MUSDB18-7 tracks, decoded once."""
    excerpts = []
    for track in musdb_tracks(musdb_dir, limit=3):
        n = 2 * track.sample_rate
        references = {source: audio[:, :n] for source, audio in track.references.items()}
        excerpts.append(
            EvalTrack(track.name, track.mixture[:, :n], references, track.sample_rate, track.note)
        )
    return excerpts


class Counted:
    """Tracks that count their decodes, and systems that count their calls, by track name."""

    def __init__(self) -> None:
        self.decoded: Counter[str] = Counter()
        self.separated: Counter[tuple[str, str]] = Counter()

    def tracks(self, songs: list[EvalTrack]) -> list[LazyTrack]:
        return [LazyTrack(song.name, partial(self._decode, song)) for song in songs]

    def _decode(self, song: EvalTrack) -> EvalTrack:
        self.decoded[song.name] += 1
        return song

    def systems(self, stop_at: tuple[str, str] | None = None) -> dict[str, System]:
        """MIX and IRM1; ``stop_at`` = (system, track) raises Ctrl-C's KeyboardInterrupt there."""
        inner = {"MIX": mix_baseline, "IRM1": irm_oracle(2048, 512)}

        def counted(name: str, track: EvalTrack) -> dict[str, np.ndarray]:
            if (name, track.name) == stop_at:
                raise KeyboardInterrupt
            self.separated[(name, track.name)] += 1
            return inner[name](track)

        return {name: partial(counted, name) for name in inner}


def test_a_run_stopped_mid_track_resumes_scoring_only_what_is_missing_and_ends_identical(
    songs: list[EvalTrack], tmp_path: Path
) -> None:
    first, second, third = (song.name for song in songs)
    uninterrupted = evaluate(Counted().tracks(songs), Counted().systems(), dataset="musdb")

    stopped = Counted()  # Ctrl-C while IRM1 separates the second track (MIX has scored it)
    store = ScoreStore(tmp_path, "musdb", IDENTITIES)
    with pytest.raises(KeyboardInterrupt):
        evaluate(
            stopped.tracks(songs),
            stopped.systems(stop_at=("IRM1", second)),
            dataset="musdb",
            store=store,
        )
    assert set(stopped.separated) == {("MIX", first), ("IRM1", first), ("MIX", second)}

    resumed = Counted()
    result = evaluate(
        resumed.tracks(songs),
        resumed.systems(),
        dataset="musdb",
        store=ScoreStore(tmp_path, "musdb", IDENTITIES),
    )
    assert set(resumed.decoded) == {second, third}  # the first track is not even decoded
    assert set(resumed.separated) == {("IRM1", second), ("MIX", third), ("IRM1", third)}
    pd.testing.assert_frame_equal(result.frames, uninterrupted.frames)
    assert result.to_json() == uninterrupted.to_json()


def test_stored_scores_are_reused_only_for_the_same_system_identity_and_dataset(
    songs: list[EvalTrack], tmp_path: Path
) -> None:
    song = songs[0]

    def separations(dataset_key: str, identity: str) -> int:
        """How many times MIX separates the song in a run with this store."""
        counted = Counted()
        mix = {"MIX": counted.systems()["MIX"]}
        store = ScoreStore(tmp_path, dataset_key, {"MIX": identity})
        evaluate(counted.tracks([song]), mix, dataset="d", store=store)
        return counted.separated[("MIX", song.name)]

    assert separations("musdb:/a", "model 1") == 1
    assert separations("musdb:/a", "model 1") == 0  # same system, same dataset: read back
    assert separations("musdb:/a", "model 2") == 1  # other weights or post-processing
    assert separations("musdb:/b", "model 1") == 1  # the same track name in another dataset
    assert separations("musdb:/a", "model 1") == 0  # the first scores are still there


def test_a_model_system_is_identified_by_its_weights_and_its_settings() -> None:
    model, _ = resolve_model("untrained", {})
    again, _ = resolve_model("untrained", {})
    assert model_fingerprint(again) == model_fingerprint(model)  # seeded: a re-run resumes
    with torch.no_grad():
        next(again.parameters()).add_(1e-6)
    assert model_fingerprint(again) != model_fingerprint(model)  # another version's weights

    def identity(variant: str) -> str:
        return separator_identity(Separator(model, post=parse_variant(variant)))

    assert identity("binarize") == identity("binarize=10")
    assert len({identity("none"), identity("binarize"), identity("wiener")}) == 3


def test_a_system_without_an_identity_cannot_be_stored(
    songs: list[EvalTrack], tmp_path: Path
) -> None:
    store = ScoreStore(tmp_path, "musdb", {"MIX": "mixture / 2"})
    with pytest.raises(ValueError, match="IRM1"):
        evaluate(songs[:1], Counted().systems(), dataset="musdb", store=store)


def test_the_default_results_folder_is_one_per_dataset_model_and_variants(
    musdb_dir: Path, mir1k_dir: Path, tmp_path: Path
) -> None:
    def folder(dataset: Path = musdb_dir, model: str | None = "vocalmine", **changes) -> Path:
        options = {"variants": ["none", "binarize"], "baselines": True} | changes
        return default_out_dir(tmp_path, dataset, model, **options)

    same = folder()
    assert same.parent == tmp_path / "evaluations"
    assert same.name.startswith("musdb_musdb18-7_test_vocalmine_")
    assert folder() == same  # the same command resumes in the same folder
    assert folder(variants=["binarize=10", "none"]) == same  # the same variants, spelled out
    different = [
        folder(model="vocalmine:2"),
        folder(model=None),
        folder(variants=["none"]),
        folder(dataset=mir1k_dir),
        folder(baselines=False),
        folder(irm_n_fft=1024),
    ]
    assert len({same, *different}) == 1 + len(different)


# --- the command, stopped by signals --------------------------------------------------------


class Evaluate:
    """``vocalmine evaluate`` on three MUSDB18-7 tracks (baselines only) in a session of its
    own, its descendants recorded every 0.1 s while it runs."""

    def __init__(self, musdb_dir: Path, out: Path, data_dir: Path) -> None:
        self.out = out
        args = [str(musdb_dir), "--limit", "3", "--out", str(out), "--data-dir", str(data_dir)]
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from vocalmine.cli import main; main()", "evaluate", *args],
            env={k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.descendants: dict[int, psutil.Process] = {}
        self.exited_at: float | None = None
        self._output: dict[str, str] = {}
        self._threads = [
            threading.Thread(target=self._record),
            *(threading.Thread(target=self._read, args=(name,)) for name in ("stdout", "stderr")),
        ]
        for thread in self._threads:
            thread.start()

    def _record(self) -> None:
        while self.process.poll() is None:
            with contextlib.suppress(psutil.Error):
                for child in psutil.Process(self.process.pid).children(recursive=True):
                    self.descendants.setdefault(child.pid, child)
            time.sleep(0.1)
        self.exited_at = time.monotonic()

    def _read(self, name: str) -> None:
        self._output[name] = getattr(self.process, name).read()

    def scored(self) -> set[Path]:
        """The stored per-(track, system) score files."""
        return set(self.out.glob("scores/*/*.parquet"))

    def wait_for(self, files: int, timeout: float = 240) -> None:
        """Until ``files`` score files are stored."""
        deadline = time.monotonic() + timeout
        while len(self.scored()) < files:
            assert self.process.poll() is None, self.finish()[1]
            assert time.monotonic() < deadline, f"fewer than {files} score files in {timeout} s"
            time.sleep(0.05)

    def stop(self, signum: int) -> float:
        """Send ``signum`` (SIGINT to the whole session, as Ctrl-C does); seconds to exit."""
        sent = time.monotonic()
        if signum == signal.SIGINT:
            os.killpg(self.process.pid, signum)
        else:
            self.process.send_signal(signum)
        self.process.wait(60)
        self._threads[0].join()
        assert self.exited_at is not None
        return self.exited_at - sent

    def finish(self, timeout: float = 300) -> tuple[int, str]:
        """Exit code and stderr."""
        code = self.process.wait(timeout)
        for thread in self._threads:
            thread.join(10)
        return code, self._output.get("stderr", "")

    def left_behind(self, timeout: float = 10) -> list[str]:
        """Descendants still alive ``timeout`` s after the command ended (zombies count as gone)."""
        deadline = time.monotonic() + timeout
        while True:
            alive = [str(p.pid) for p in self.descendants.values() if _alive(p)]
            if not alive or time.monotonic() > deadline:
                return alive
            time.sleep(0.1)

    def kill(self) -> None:
        """Whatever is still running, after a failed check."""
        for process in self.descendants.values():
            with contextlib.suppress(psutil.Error):
                process.kill()
        self.process.kill()
        self.process.wait()


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def stopped_cleanly(run: Evaluate, signum: int, expected: int) -> float:
    """Stop ``run`` with ``signum``; check its exit code, its one line and what it left."""
    seconds = run.stop(signum)
    code, stderr = run.finish()
    lines = stderr.strip().splitlines()
    name = signal.Signals(signum).name
    print(f"{name}: exit {code} {seconds:.2f} s after the signal")
    assert code == expected, stderr
    assert [line for line in lines if "interrupted" in line] == [lines[-1]], stderr
    assert lines[-1] == (
        f"vocalmine evaluate: interrupted by {name}; tracks already scored are kept in the "
        "results folder; run it again (same --out) to resume"
    )
    assert "Traceback" not in stderr and "ERROR" not in stderr, stderr
    assert run.left_behind() == []
    return seconds


@pytest.mark.slow
def test_ctrl_c_and_sigterm_stop_the_command_within_seconds_and_a_rerun_finishes_it(
    musdb_dir: Path, tmp_path: Path
) -> None:
    """Ctrl-C after the first track (exit 130), SIGTERM after the second (143), then a run to
    the end; each run keeps what the ones before stored and scores only the rest."""
    out, data_dir = tmp_path / "eval", tmp_path / "data"
    runs: list[Evaluate] = []

    def start() -> Evaluate:
        runs.append(Evaluate(musdb_dir, out, data_dir))
        return runs[-1]

    def stamps(files: set[Path]) -> dict[Path, int]:
        return {path: path.stat().st_mtime_ns for path in files}

    try:
        first = start()
        first.wait_for(2)  # MIX and IRM1 on the first track
        assert stopped_cleanly(first, signal.SIGINT, 130) < 10
        kept = stamps(first.scored())

        second = start()
        second.wait_for(len(kept) + 2)
        assert stopped_cleanly(second, signal.SIGTERM, 143) < 10
        assert stamps(set(kept)) == kept  # not scored again
        kept = stamps(second.scored())

        last = start()
        code, stderr = last.finish()
        assert code == 0, stderr
        assert stamps(set(kept)) == kept
        assert len(last.scored()) == 6
        frames = pd.read_parquet(out / "frames.parquet")
        assert frames.track.nunique() == 3 and set(frames.system) == {"MIX", "IRM1"}
        assert last.left_behind() == []
    finally:
        for run in runs:
            run.kill()
