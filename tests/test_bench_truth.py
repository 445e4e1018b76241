"""The mining benchmark's answer keys (bench/truth.py): loading, manifest conversion, scoring."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.truth import (  # noqa: E402
    SCHEMA,
    load_truth,
    score,
    truth_from_manifest,
    validate_truth,
)

ORIG, INST = "A/Album/01 Song.flac", "A/Album/02 Song (Instrumental).mp3"
ORIG2, INST2 = "B/Other/01 Tune.mp3", "B/Other/Tune (Karaoke Version).flac"
COPY = "Various Artists/Hits/01 Song.flac"
ACAP = "A/Album/03 Song (A Cappella).flac"


def _truth() -> dict:
    return validate_truth(
        {
            "schema": SCHEMA,
            "pairs": [
                {"original": ORIG, "instrumental": INST, "offset_s": 0.25, "gain_db": -3.1},
                {"original": ORIG2, "instrumental": INST2},
            ],
            "decoys": [
                {"path": COPY, "kind": "duplicate", "of": ORIG},
                {"path": ACAP, "kind": "a_cappella", "of": ORIG, "reasons": ["a_cappella"]},
            ],
            "singles": ["C/Lonely.flac"],
        }
    )


# --- load_truth ---------------------------------------------------------------------------------


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "truth.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_load_truth_reads_a_valid_file(tmp_path: Path) -> None:
    path = _write(tmp_path, {"schema": SCHEMA, "pairs": [{"original": ORIG, "instrumental": INST}]})
    truth = load_truth(path)
    assert truth["pairs"] == [{"original": ORIG, "instrumental": INST}]
    assert truth["decoys"] == [] and truth["singles"] == []


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ("{not json", "not JSON"),
        ([], "expected a JSON object"),
        ({"pairs": []}, "schema is None"),
        ({"schema": "vocalmine-truth/9", "pairs": []}, "expected 'vocalmine-truth/1'"),
        ({"schema": SCHEMA}, "'pairs' is missing"),
        ({"schema": SCHEMA, "pairs": [{"original": ORIG}]}, "'instrumental' is missing"),
        (
            {"schema": SCHEMA, "pairs": [{"original": "/abs/a.flac", "instrumental": INST}]},
            "is absolute",
        ),
        (
            {"schema": SCHEMA, "pairs": [{"original": "a/../b.flac", "instrumental": INST}]},
            "contains '..'",
        ),
        (
            {"schema": SCHEMA, "pairs": [{"original": "C:/x.flac", "instrumental": INST}]},
            "is absolute",
        ),
        (
            {
                "schema": SCHEMA,
                "pairs": [{"original": ORIG, "instrumental": INST, "offset_s": "0.2"}],
            },
            "pairs[0].offset_s",
        ),
        (
            {
                "schema": SCHEMA,
                "pairs": [{"original": ORIG, "instrumental": INST}],
                "decoys": [{"path": ACAP}],
            },
            "'kind' is missing",
        ),
        (
            {
                "schema": SCHEMA,
                "pairs": [{"original": ORIG, "instrumental": INST}],
                "decoys": [{"path": COPY, "kind": "duplicate"}],
            },
            "needs 'of'",
        ),
        (
            {
                "schema": SCHEMA,
                "pairs": [{"original": ORIG, "instrumental": INST}],
                "singles": [ORIG],
            },
            "is both a pair's original and a single",
        ),
        (
            {"schema": SCHEMA, "pairs": [{"original": ORIG, "instrumental": INST, "bpm": 120}]},
            "unknown field(s) bpm",
        ),
    ],
)
def test_load_truth_errors_name_the_file_and_the_problem(
    tmp_path: Path, data: object, problem: str
) -> None:
    path = _write(tmp_path, data)
    with pytest.raises(ValueError) as err:
        load_truth(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and problem in message and "\n" not in message


def test_load_truth_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        load_truth(tmp_path / "nope.json")


# --- truth_from_manifest ------------------------------------------------------------------------


def _file(path: str, codec: str = "flac", sr: int = 44100, **extra: object) -> dict:
    delay = 1105 if codec == "mp3" else 0
    return {
        "path": path,
        "codec": codec,
        "sample_rate": sr,
        "codec_delay_samples": delay,
        "codec_gain_db": -0.4 if codec == "mp3" else 0.0,
        **extra,
    }


def _manifest(version: int = 1) -> dict:
    pair_inst = _file(INST, "mp3", 48000, offset_s=0.5, gain_db=2.0)
    songs = [
        {
            "id": "s000",
            "kind": "pair",
            "expected": "pair",
            "discovery": "title",
            "original": _file(ORIG),
            "instrumental": pair_inst,
        },
        {
            "id": "s001",
            "kind": "remix",
            "expected": "fingerprint_mismatch",
            "discovery": None,
            "original": _file(ORIG2, "mp3"),
            "instrumental": _file(INST2, offset_s=0.0, gain_db=0.0),
        },
        {
            "id": "s002",
            "kind": "original_only",
            "expected": "no_instrumental",
            "discovery": None,
            "original": _file("C/Alone.flac"),
            "instrumental": None,
        },
        {
            "id": "s003",
            "kind": "lone_instrumental",
            "expected": "no_counterpart",
            "discovery": None,
            "original": None,
            "instrumental": _file("D/Solo (Instrumental).flac", offset_s=0.0, gain_db=0.0),
        },
    ]
    decoys = [
        {"kind": "remix", "song_id": "s001", "paths": [ORIG2, INST2], "expected": "x"},
        {"kind": "original_only", "song_id": "s002", "paths": ["C/Alone.flac"], "expected": "x"},
        {
            "kind": "lone_instrumental",
            "song_id": "s003",
            "paths": ["D/Solo (Instrumental).flac"],
            "expected": "no_counterpart",
        },
        {"kind": "duplicate", "song_id": "s000", "paths": [COPY, ORIG], "expected": "duplicate"},
        {
            "kind": "corrupt",
            "song_id": None,
            "paths": ["U/Broken.flac"],
            "expected": ["decode_error", "not_audio"],
        },
    ]
    if version == 2:
        decoys += [
            {
                "kind": "a_cappella",
                "song_id": "s000",
                "paths": [ACAP, ORIG],
                "expected": "not_mined",
                "acceptable_reasons": ["a_cappella", "fingerprint_mismatch", "no pair"],
            },
            {
                "kind": "mix_copy",
                "song_id": "s000",
                "paths": ["A/Album/Song (copy).mp3", ORIG],
                "expected": "mined_once",
                "acceptable_reasons": ["duplicate"],
            },
        ]
    return {
        "schema_version": version,
        "source": "synthetic",
        "seed": 0,
        "songs": songs,
        "decoys": decoys,
        "corrupt": [{"path": "U/Broken.flac", "expected": ["decode_error", "not_audio"]}],
    }


def test_truth_from_manifest_v1() -> None:
    truth = truth_from_manifest(_manifest(1))
    assert truth["schema"] == SCHEMA
    (pair,) = truth["pairs"]
    assert (pair["id"], pair["original"], pair["instrumental"]) == ("s000", ORIG, INST)
    assert pair["discovery"] == "title"
    # catalog convention on decoded files: 0 − 0.5 s − 1105 / 48000 (the MP3's codec delay)
    assert pair["offset_s"] == pytest.approx(-0.5 - 1105 / 48000)
    assert pair["gain_db"] == pytest.approx(-2.0 + 0.4)
    decoys = {d["path"]: d for d in truth["decoys"]}
    assert decoys[INST2] == {
        "kind": "remix",
        "id": "s001",
        "path": INST2,
        "of": ORIG2,
        "reasons": ["fingerprint_mismatch"],
        "expect": "not_mined",
    }
    assert decoys["C/Alone.flac"]["kind"] == "original_only"
    assert "reasons" not in decoys["C/Alone.flac"]
    assert decoys["D/Solo (Instrumental).flac"]["reasons"] == ["no_counterpart"]
    assert decoys[COPY]["of"] == ORIG and decoys[COPY]["expect"] == "mined_once"
    assert decoys["U/Broken.flac"]["reasons"] == ["decode_error", "not_audio"]
    assert len(truth["decoys"]) == 5  # each file once, though corrupt is listed twice
    assert truth["singles"] == [ORIG2]


def test_truth_from_manifest_v2_kinds() -> None:
    truth = truth_from_manifest(_manifest(2))
    decoys = {d["path"]: d for d in truth["decoys"]}
    assert decoys[ACAP]["expect"] == "not_mined" and decoys[ACAP]["of"] == ORIG
    assert decoys[ACAP]["reasons"] == ["a_cappella", "fingerprint_mismatch", "no pair"]
    copy = decoys["A/Album/Song (copy).mp3"]
    assert (copy["kind"], copy["expect"], copy["of"]) == ("mix_copy", "mined_once", ORIG)
    with pytest.raises(ValueError, match="schema_version 3"):
        truth_from_manifest({**_manifest(1), "schema_version": 3})


# --- score --------------------------------------------------------------------------------------


def _mined(original: str, instrumental: str, pid: int, **extra: object) -> dict:
    return {
        "id": pid,
        "original": original,
        "instrumental": instrumental,
        "status": "mined",
        **extra,
    }


def test_score_all_true() -> None:
    pairs = [_mined(ORIG, INST, 1), _mined(ORIG2, INST2, 2)]
    result = score(_truth(), pairs, {})
    assert (result["precision"], result["recall"]) == (1.0, 1.0)
    assert (result["n_true"], result["n_mined"], result["n_pairs"]) == (2, 2, 2)
    assert result["false_positives"] == [] and result["misses"] == []
    assert all(r["pass"] for r in result["decoys"])
    assert [f["pair_id"] for f in result["found"]] == [1, 2]


def test_score_mined_twice_via_a_copy_counts_the_second_as_false_positive() -> None:
    # the copy was mined first in catalog order; the exact pair is still the one counted
    pairs = [_mined(COPY, INST, 1), _mined(ORIG, INST, 2), _mined(ORIG2, INST2, 3)]
    result = score(_truth(), pairs, {COPY: ["duplicate"]})
    assert (result["n_true"], result["n_mined"]) == (2, 3)
    assert result["precision"] == pytest.approx(2 / 3) and result["recall"] == 1.0
    (fp,) = result["false_positives"]
    assert (fp["original"], fp["instrumental"]) == (COPY, INST)
    assert "mined again" in fp["reason"] and fp["original_is"] == f"decoy duplicate of {ORIG}"
    dup = next(r for r in result["decoys"] if r["kind"] == "duplicate")
    assert not dup["pass"] and dup["outcome"] == "truth pair mined 2×"
    assert "duplicate" in dup["catalog_reasons"]


def test_score_copy_standing_in_for_the_original_is_the_true_pair() -> None:
    pairs = [
        _mined(COPY, INST, 1),
        _mined(ORIG2, INST2, 2),
        {**_mined(ORIG, INST, 3), "status": "rejected", "reason": "duplicate"},
    ]
    result = score(_truth(), pairs, {})
    assert (result["precision"], result["recall"]) == (1.0, 1.0)
    assert result["found"][0]["via_copy"]
    dup = next(r for r in result["decoys"] if r["kind"] == "duplicate")
    assert dup["pass"] and dup["outcome"] == "truth pair mined once (via this copy)"


def test_score_a_cappella_mined_fails_the_decoy_and_a_miss_is_explained() -> None:
    pairs = [
        _mined(ORIG, INST, 1),
        _mined(ORIG, ACAP, 2, source="fingerprint"),
        {
            "id": 3,
            "original": ORIG2,
            "instrumental": INST2,
            "status": "rejected",
            "reason": "misaligned",
            "source": "title",
        },
    ]
    result = score(_truth(), pairs, {INST2: ["low_quality"]})
    assert result["precision"] == 0.5 and result["recall"] == 0.5
    (fp,) = result["false_positives"]
    assert (fp["instrumental"], fp["reason"]) == (ACAP, "not a truth pair")
    assert fp["instrumental_is"] == f"decoy a_cappella of {ORIG}"
    acap = next(r for r in result["decoys"] if r["kind"] == "a_cappella")
    assert not acap["pass"] and acap["outcome"] == "mined in 1 pair(s)"
    assert acap["catalog_reasons"] == [f"mined (fingerprint) with {ORIG}"]
    assert acap["reason_ok"] is False
    (miss,) = result["misses"]
    assert (miss["original"], miss["instrumental"]) == (ORIG2, INST2)
    assert [(p["status"], p["reason"]) for p in miss["pairs"]] == [("rejected", "misaligned")]
    assert miss["track_reasons"][INST2] == ["low_quality"]
    single = next(r for r in result["decoys"] if r["kind"] == "single")
    assert single["pass"] and single["outcome"] == "not mined"


def test_score_single_mined_is_a_false_positive() -> None:
    pairs = [_mined(ORIG, INST, 1), _mined(ORIG2, INST2, 2), _mined("C/Lonely.flac", INST2, 3)]
    result = score(_truth(), pairs, {})
    assert result["precision"] == pytest.approx(2 / 3)
    single = next(r for r in result["decoys"] if r["kind"] == "single")
    assert not single["pass"]
    assert result["false_positives"][0]["original_is"] == "single"


def test_score_manifest_truth_through_the_same_scorer() -> None:
    truth = truth_from_manifest(_manifest(2))
    pairs = [
        _mined(ORIG, INST, 1),
        {
            "id": 2,
            "original": ORIG2,
            "instrumental": INST2,
            "status": "rejected",
            "reason": "fingerprint_mismatch",
        },
    ]
    tracks = {"U/Broken.flac": ["decode_error"], "D/Solo (Instrumental).flac": ["no_counterpart"]}
    result = score(truth, pairs, tracks)
    assert (result["precision"], result["recall"]) == (1.0, 1.0)
    rows = {r["path"]: r for r in result["decoys"]}
    assert all(r["pass"] for r in rows.values())
    assert rows[INST2]["reason_ok"] and rows["U/Broken.flac"]["reason_ok"]
    assert rows["D/Solo (Instrumental).flac"]["reason_ok"]
    assert rows["C/Alone.flac"]["reason_ok"] is None
    assert rows[ACAP]["reason_ok"]  # "no pair": the catalog never paired the a cappella
    assert rows["A/Album/Song (copy).mp3"]["outcome"] == "truth pair mined once"
