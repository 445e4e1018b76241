"""Nightly mining of a growing library: each run sweeps only the recordings that arrived, finds
pairs whose two sides arrived in different runs, and a run with nothing new does no discovery
work at all. Real audio (MIR-1K songs), the real flow on a LocalCluster."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from tests.test_mine_flow import SR, _song, _write
from vocalmine.core.settings import get_settings
from vocalmine.flows.mine import configured_mine_flow
from vocalmine.storage import mining_store as store
from vocalmine.storage.catalog import FingerprintCheck, Pair, SweptContent, Track, open_catalog

pytestmark = pytest.mark.slow


def _pairs(settings) -> dict[tuple[str, str], Pair]:
    catalog = open_catalog(settings.catalog_url)
    with catalog.session() as session:
        names = {t.id: Path(t.path).name for t in session.execute(select(Track)).scalars()}
        pairs = session.execute(select(Pair)).scalars().all()
    catalog.dispose()
    return {(names[p.original_id], names[p.instrumental_id]): p for p in pairs}


def _count(settings, table) -> int:
    catalog = open_catalog(settings.catalog_url)
    with catalog.session() as session:
        count = session.execute(select(func.count()).select_from(table)).scalar()
    catalog.dispose()
    return int(count or 0)


def _last_run(settings, library: Path) -> dict:
    catalog = open_catalog(settings.catalog_url)
    status_counts = store.previous_run(catalog, str(library.resolve()), sys.maxsize)
    catalog.dispose()
    assert status_counts is not None
    return status_counts[1]


def test_a_pair_whose_sides_arrive_in_different_runs_is_found(
    mir1k_dir: Path, tmp_path: Path
) -> None:
    lib = tmp_path / "library"
    acc, voc = _song(mir1k_dir, "geniusturtle_1")
    _write(lib, "gt/Wind.flac", acc + voc, "geniusturtle", "Wind")
    other_acc, other_voc = _song(mir1k_dir, "amy_10")
    _write(lib, "amy/Song.flac", other_acc + other_voc, "amy", "Song")
    _write(lib, "amy/Song (Instrumental).mp3", other_acc * 0.7, "amy", "Song (Instrumental)")
    config = tmp_path / "vocalmine.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\nsegment_skip_s = 0\ndask_workers = 1\n')
    settings = get_settings(config)
    mine = configured_mine_flow(settings)

    first = mine(str(lib), config=str(config))
    assert first["discovery"]["swept"] == 3
    assert ("Song.flac", "Song (Instrumental).mp3") in _pairs(settings)

    # the night after, the oddly named instrumental of Wind arrives
    rng = np.random.default_rng(0)
    late = np.concatenate([np.zeros(int(rng.integers(SR // 10, SR // 2)), np.float32), acc * 0.8])
    _write(lib, "gt/track07.wav", late, "geniusturtle", "track07")
    second = mine(str(lib), config=str(config))
    assert second["discovery"]["swept"] == 1  # only the new recording was queried
    found = _pairs(settings)[("Wind.flac", "track07.wav")]
    assert (found.source, found.status) == ("fingerprint", "mined")
    checks = _count(settings, FingerprintCheck)
    assert checks >= 2  # the title pair's recordings and the new pair, with their numbers

    # a night with nothing new: no matching, fingerprinting or sweeping
    third = mine(str(lib), config=str(config))
    assert third["discovery"] == {"skipped": True}
    assert third["pairs"] == second["pairs"]
    assert _last_run(settings, lib)["discovery"] == {"skipped": True}  # what ops see in the catalog

    # an explicit full re-sweep queries every recording again and decides the same
    fourth = mine(str(lib), config=str(config), resweep=True)
    assert fourth["discovery"]["swept"] == _count(settings, SweptContent) == 4
    assert _count(settings, FingerprintCheck) == checks
    assert fourth["pairs"] == second["pairs"]

    # a change of a sweep setting (the duration blocking) queries every recording again by
    # itself: checks made under the old rule would miss pairs the new one checks
    wider = tmp_path / "wider.toml"
    wider.write_text(config.read_text() + "max_duration_diff_s = 8.0\n")
    fifth = configured_mine_flow(get_settings(wider))(str(lib), config=str(wider))
    assert fifth["discovery"]["swept"] == 4
    assert fifth["pairs"] == second["pairs"]
    sixth = configured_mine_flow(get_settings(wider))(str(lib), config=str(wider))
    assert sixth["discovery"] == {"skipped": True}
