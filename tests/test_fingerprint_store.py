"""The on-disk fingerprint index (storage.fingerprint_store) and the sweep over it
(mining.fingerprint_index): what a library's nightly runs rely on — fingerprints kept once,
postings appended and merged without loss, a killed append invisible, and a sweep cut into
blocks (the Dask tasks) finding exactly what one process finds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import MIR1K
from tests.mir1k_pairs import mp3_round_trip
from vocalmine.core.audio import load_audio
from vocalmine.mining.fingerprint_index import (
    FingerprintIndex,
    SweepParams,
    open_index,
    sweep_index,
    sweep_store,
)
from vocalmine.mining.landmarks import DEFAULT_PARAMS, Fingerprint, fingerprint
from vocalmine.storage.fingerprint_store import N_BUCKETS, FingerprintStore

CLIPS = ["amy_10_01", "leon_2_11", "geniusturtle_6_05", "jmzen_5_07", "yifen_2_01", "amy_5_01"]


@pytest.fixture(scope="module")
def library() -> dict[str, Fingerprint]:
    """Real audio: each clip's mix, its accompaniment (a true pair), and for two clips an MP3
    copy of the mix (a duplicate), named like content hashes."""
    if not MIR1K.is_dir():
        pytest.skip(f"MIR-1K clips not found at {MIR1K}")
    fps = {}
    for k, name in enumerate(CLIPS):
        audio, sr = load_audio(MIR1K / f"{name}.flac")
        mix, inst = audio[0] + audio[1], audio[0]
        fps[f"{k:02d}mix"] = fingerprint(mix, sr)
        fps[f"{k:02d}inst"] = fingerprint(inst, sr)
        if k < 2:
            fps[f"{k:02d}copy"] = fingerprint(mp3_round_trip(mix, sr)[0], sr)
    return fps


def _append(store: FingerprintStore, fps: dict[str, Fingerprint]) -> list[str]:
    for content_hash, fp in fps.items():
        store.write_object(content_hash, fp.to_bytes())
    return store.append((h, fp.hashes, fp.times, fp.n_frames) for h, fp in fps.items())


def _postings_of(store: FingerprintStore, fp_id: int) -> list[tuple[int, int]]:
    """Every (hash, time) the index holds for one fingerprint id, sorted."""
    out = []
    for b in range(N_BUCKETS):
        for part in store.bucket(b):
            mine = part[1] == fp_id
            out += zip(part[0][mine].tolist(), part[2][mine].view(np.int32).tolist(), strict=True)
    return sorted(out)


def _same_postings(store: FingerprintStore, fps: dict[str, Fingerprint]) -> None:
    for content_hash, entry in store.entries.items():
        fp = fps[content_hash]
        assert entry.n_frames == fp.n_frames and entry.n_hashes == len(fp)
        assert _postings_of(store, entry.fp_id) == sorted(
            zip(fp.hashes.tolist(), fp.times.tolist(), strict=True)
        )
        assert Fingerprint.from_bytes(store.read_object(content_hash)).hashes.tolist() == (
            fp.hashes.tolist()
        )


def test_the_index_round_trips_every_fingerprint_and_its_postings(tmp_path, library) -> None:
    added = _append(open_index(str(tmp_path)), library)
    assert added == list(library)
    reopened = open_index(str(tmp_path))
    assert len(reopened) == len(library)
    _same_postings(reopened, library)


def test_appends_keep_what_was_indexed_and_skip_known_recordings(tmp_path, library) -> None:
    names = list(library)
    store = open_index(str(tmp_path))
    for k in range(0, len(names), 3):
        _append(store, {n: library[n] for n in names[k : k + 3]})
    assert _append(store, {names[0]: library[names[0]]}) == []
    reopened = open_index(str(tmp_path))
    assert sorted(e.fp_id for e in reopened.entries.values()) == list(range(len(names)))
    # size-tiered merging keeps a handful of generations, never one per append
    assert len(reopened.manifest["generations"]) < len(names) // 3
    _same_postings(reopened, library)
    reopened.compact()
    assert len(open_index(str(tmp_path)).manifest["generations"]) == 1
    _same_postings(open_index(str(tmp_path)), library)


def test_an_index_on_an_fsspec_url_works_without_memory_maps(library) -> None:
    root = f"memory://vocalmine-index-{os.getpid()}"
    _append(open_index(root), library)
    store = open_index(root)
    assert not store.local
    _same_postings(store, library)


def test_other_fingerprint_parameters_get_their_own_index(tmp_path, library) -> None:
    name = next(iter(library))
    _append(open_index(str(tmp_path)), {name: library[name]})
    other = FingerprintStore(str(tmp_path), asdict(replace(DEFAULT_PARAMS, hop=256)))
    assert len(other) == 0 and other.key != open_index(str(tmp_path)).key


def test_an_append_killed_midway_leaves_the_index_as_it_was(tmp_path, library) -> None:
    """SIGKILL while a big append writes its bucket files: readers still see the committed
    index, and the next append clears the dead files and succeeds."""
    first = dict(list(library.items())[:2])
    _append(open_index(str(tmp_path)), first)
    before = open_index(str(tmp_path)).manifest
    script = textwrap.dedent(
        f"""
        import numpy as np
        from vocalmine.mining.fingerprint_index import open_index
        store = open_index({str(tmp_path)!r})
        rng = np.random.default_rng(0)
        rows = (
            (f"big{{k:03d}}", rng.integers(0, 1 << 24, 400_000).astype(np.uint32),
             np.sort(rng.integers(0, 20000, 400_000)).astype(np.int32), 20000)
            for k in range(60)
        )
        store.append(rows)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    folder = Path(open_index(str(tmp_path)).base) / "postings"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        written = [p for p in folder.glob("g*/b*.npy") if p.parent.name != "g000000"]
        if written:
            break
        assert child.poll() is None, "the append finished before it could be killed"
        time.sleep(0.005)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    store = open_index(str(tmp_path))
    assert store.manifest == before
    _same_postings(store, first)
    rest = dict(list(library.items())[2:])
    _append(store, rest)
    assert {p.name for p in folder.iterdir()} == {
        f"g{g['id']:06d}" for g in open_index(str(tmp_path)).manifest["generations"]
    }
    _same_postings(open_index(str(tmp_path)), library)


def test_a_sweep_cut_into_blocks_equals_the_single_process_sweep(tmp_path, library) -> None:
    """The Dask tasks each sweep a block of recordings against the on-disk index; together
    they find exactly the checks one in-memory sweep of the whole library finds."""
    names = list(library)
    store = open_index(str(tmp_path))
    _append(store, {n: library[n] for n in names[:5]})
    _append(store, {n: library[n] for n in names[5:]})  # two generations
    store = open_index(str(tmp_path))
    rows = []
    for k in range(0, len(names), 3):
        rows += sweep_store(store, names[k : k + 3])
    by_pair = {(a, b): (x, y) for a, b, x, y in rows}
    one = sweep_index(FingerprintIndex({k: library[n] for k, n in enumerate(names)}))
    expected = {}
    for check in one:
        a, b = names[check.a], names[check.b]
        x, y = asdict(check.a_in_b), asdict(check.b_in_a)
        expected[(a, b) if a < b else (b, a)] = (x, y) if a < b else (y, x)
    assert by_pair == expected
    for k in range(len(CLIPS)):
        assert (f"{k:02d}inst", f"{k:02d}mix") in by_pair
    assert ("00copy", "00mix") in by_pair and ("01copy", "01mix") in by_pair
    single = sweep_store(store, names)
    assert {(a, b) for a, b, _, _ in single} == set(by_pair)


def test_recall_holds_when_the_budget_binds(tmp_path, library) -> None:
    """A budget a hundred times smaller than a clip's postings (what a huge library forces)
    still finds every pair and copy: the rarest hashes carry them."""
    names = list(library)
    _append(open_index(str(tmp_path)), library)
    rows = sweep_store(
        open_index(str(tmp_path)), names, SweepParams(postings_per_hash=0.5, min_postings=0)
    )
    found = {(a, b) for a, b, _, _ in rows}
    for k in range(len(CLIPS)):
        assert (f"{k:02d}inst", f"{k:02d}mix") in found
