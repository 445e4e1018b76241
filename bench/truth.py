"""Answer keys for the mining benchmark: the truth format, its loader, and the decision scorer.

An answer key (``vocalmine-truth/1``, documented in ``docs/truth-format.md``) says which
(original, instrumental) pairs a library holds, which files are decoys, and which tracks must stay
unpaired. :func:`load_truth` reads and validates one, :func:`truth_from_manifest` converts the
library builder's ``manifest.json`` into one, and :func:`score` scores what a catalog mined
against it. Pure functions (no I/O beyond :func:`load_truth`), so the tests use them directly and
``bench/mining.py`` scores built and hand-labelled libraries with the same code.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

SCHEMA = "vocalmine-truth/1"
# Decoy kinds that are copies of a truth pair's file: mining the copy in place of that file is
# the true pair, once. Every other kind (and every single) must be in no mined pair.
COPY_KINDS = frozenset({"duplicate", "mix_copy", "instrumental_copy"})
EXPECTS = ("not_mined", "mined_once")
# The pseudo-reason "the catalog holds no pair with the file at all", for a decoy's ``reasons``.
NO_PAIR = "no pair"
_PAIR_ORDER = ("original", "instrumental", "offset_s", "gain_db", "id", "discovery")
_DECOY_ORDER = ("path", "kind", "of", "expect", "reasons", "id")
_PAIR_KEYS, _DECOY_KEYS = set(_PAIR_ORDER), set(_DECOY_ORDER)
_TOP_KEYS = {"schema", "pairs", "decoys", "singles", "source", "note"}
# Builder manifest (schema_version 1 or 2): what a song that must not be paired is called, and
# which catalog reasons explain it (None: the catalog records no reason, e.g. a lone original).
_SONG_REASONS: dict[str, list[str] | None] = {"no_instrumental": None}


# --- validation ---------------------------------------------------------------------------------


def _path_problem(value: Any) -> str | None:
    """Why ``value`` is not a library-relative path, or None."""
    if not isinstance(value, str) or not value:
        return f"{value!r} is not a non-empty string"
    if "\\" in value:
        return f"{value!r} uses '\\'; write paths with '/'"
    if PurePosixPath(value).is_absolute() or PureWindowsPath(value).drive:
        return f"{value!r} is absolute; paths are relative to the library root"
    parts = value.split("/")
    if ".." in parts:
        return f"{value!r} contains '..'"
    if any(p in ("", ".") for p in parts):
        return f"{value!r} is not normalised (empty or '.' component)"
    return None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def _ordered(entry: Mapping[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    """``entry`` with its fields in the documented order (absent ones left out)."""
    return {k: entry[k] for k in order if k in entry}


def validate_truth(data: Any, name: str = "truth") -> dict[str, Any]:
    """``data`` as a normalised truth dict, or ``ValueError("<name>: <problem>")``.

    Normalised: ``decoys`` and ``singles`` present (possibly empty), every decoy has ``expect``
    (``mined_once`` for :data:`COPY_KINDS`, ``not_mined`` otherwise, unless given).
    """

    def fail(problem: str) -> ValueError:
        return ValueError(f"{name}: {problem}")

    if not isinstance(data, dict):
        raise fail(f"top level is {type(data).__name__}, expected a JSON object")
    if data.get("schema") != SCHEMA:
        raise fail(f"schema is {data.get('schema')!r}, expected {SCHEMA!r}")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise fail(f"unknown top-level field(s) {', '.join(unknown)}")
    if not isinstance(data.get("pairs"), list):
        raise fail("'pairs' is missing or not a list")
    for key in ("decoys", "singles"):
        if not isinstance(data.get(key, []), list):
            raise fail(f"'{key}' is not a list")
    pairs, decoys, singles = [], [], []
    seen_pairs: set[tuple[str, str]] = set()
    role: dict[str, str] = {}

    def claim(path: str, what: str) -> None:
        if path in role and role[path] != what:
            raise fail(f"{path!r} is both {role[path]} and {what}")
        role[path] = what

    for i, p in enumerate(data["pairs"]):
        where = f"pairs[{i}]"
        if not isinstance(p, dict):
            raise fail(f"{where} is not an object")
        unknown = sorted(set(p) - _PAIR_KEYS)
        if unknown:
            raise fail(f"{where}: unknown field(s) {', '.join(unknown)}")
        for key in ("original", "instrumental"):
            if key not in p:
                raise fail(f"{where}: '{key}' is missing")
            problem = _path_problem(p[key])
            if problem:
                raise fail(f"{where}.{key}: {problem}")
        if p["original"] == p["instrumental"]:
            raise fail(f"{where}: original and instrumental are the same file")
        for key in ("offset_s", "gain_db"):
            if p.get(key) is not None and not _number(p[key]):
                raise fail(f"{where}.{key}: {p[key]!r} is not a number")
        for key in ("id", "discovery"):
            if p.get(key) is not None and not isinstance(p[key], str):
                raise fail(f"{where}.{key}: {p[key]!r} is not a string")
        key = (p["original"], p["instrumental"])
        if key in seen_pairs:
            raise fail(f"{where}: pair {key[0]!r} / {key[1]!r} is listed twice")
        seen_pairs.add(key)
        claim(p["original"], "a pair's original")
        claim(p["instrumental"], "a pair's instrumental")
        pairs.append(_ordered(p, _PAIR_ORDER))
    for i, d in enumerate(data.get("decoys", [])):
        where = f"decoys[{i}]"
        if not isinstance(d, dict):
            raise fail(f"{where} is not an object")
        unknown = sorted(set(d) - _DECOY_KEYS)
        if unknown:
            raise fail(f"{where}: unknown field(s) {', '.join(unknown)}")
        if "path" not in d:
            raise fail(f"{where}: 'path' is missing")
        problem = _path_problem(d["path"])
        if problem:
            raise fail(f"{where}.path: {problem}")
        if not isinstance(d.get("kind"), str) or not d["kind"]:
            raise fail(f"{where}: 'kind' is missing or not a non-empty string")
        if d.get("of") is not None:
            problem = _path_problem(d["of"])
            if problem:
                raise fail(f"{where}.of: {problem}")
            if d["of"] == d["path"]:
                raise fail(f"{where}: 'of' is the decoy itself")
        expect = d.get("expect", "mined_once" if d["kind"] in COPY_KINDS else "not_mined")
        if expect not in EXPECTS:
            raise fail(f"{where}.expect: {expect!r}, expected one of {', '.join(EXPECTS)}")
        if expect == "mined_once" and d.get("of") is None:
            raise fail(f"{where}: a {d['kind']} decoy (expect mined_once) needs 'of'")
        reasons = d.get("reasons")
        if reasons is not None and (
            not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons)
        ):
            raise fail(f"{where}.reasons: {reasons!r} is not a list of strings")
        if d.get("id") is not None and not isinstance(d["id"], str):
            raise fail(f"{where}.id: {d['id']!r} is not a string")
        claim(d["path"], "a decoy")
        decoys.append(_ordered({**d, "expect": expect}, _DECOY_ORDER))
    for i, s in enumerate(data.get("singles", [])):
        problem = _path_problem(s)
        if problem:
            raise fail(f"singles[{i}]: {problem}")
        claim(s, "a single")
        singles.append(s)
    out = {"schema": SCHEMA, "pairs": pairs, "decoys": decoys, "singles": singles}
    for key in ("source", "note"):
        if key in data:
            out[key] = data[key]
    return out


def load_truth(path: str | Path) -> dict[str, Any]:
    """Read and validate a truth file; ``ValueError`` naming the file and the problem."""
    path = Path(path)
    try:
        data = json.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    return validate_truth(data, str(path))


def is_manifest(data: Any) -> bool:
    """Whether ``data`` is a library builder manifest rather than a truth file."""
    return isinstance(data, dict) and "schema_version" in data and "songs" in data


# --- the builder's manifest -> truth ------------------------------------------------------------


def truth_offset_s(original: Mapping[str, Any], instrumental: Mapping[str, Any]) -> float:
    """The manifest's timing as the catalog's ``Pair.offset_s`` of the *decoded* files.

    The builder's ``offset_s`` delays the instrumental (original time ``t`` ↔ instrumental
    ``t + offset_s``) and decoded MP3s start ``codec_delay_samples`` late; the catalog's
    convention is ``original[n] ≈ g · instrumental[n − d]``, so
    ``d / sr_orig = delay_orig / sr_orig − offset_s − delay_instr / sr_instr``.
    """
    return (
        original["codec_delay_samples"] / original["sample_rate"]
        - instrumental["offset_s"]
        - instrumental["codec_delay_samples"] / instrumental["sample_rate"]
    )


def truth_gain_db(original: Mapping[str, Any], instrumental: Mapping[str, Any]) -> float:
    """The manifest's level as the catalog's ``Pair.gain_db`` (decoded instrumental → the
    accompaniment in the decoded original): nominal, codec levels included."""
    return (
        -instrumental["gain_db"]
        - instrumental.get("codec_gain_db", 0.0)
        + original.get("codec_gain_db", 0.0)
    )


def _acceptable(decoy: Mapping[str, Any]) -> list[str] | None:
    """Catalog reasons that explain a manifest decoy (v2 ``acceptable_reasons``, v1 ``expected``
    when it is a reason), or None."""
    if decoy.get("acceptable_reasons") is not None:
        return list(decoy["acceptable_reasons"])
    expected = decoy.get("expected")
    if isinstance(expected, list):
        return list(expected)
    if isinstance(expected, str) and expected not in (*EXPECTS, "pair"):
        return [expected]
    return None


def truth_from_manifest(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The builder's manifest (``schema_version`` 1 or 2) as a validated truth dict.

    * songs expected ``pair`` → ``pairs`` (with ``id``, ``discovery``, and ``offset_s``/
      ``gain_db`` in the catalog's convention: :func:`truth_offset_s`, :func:`truth_gain_db`);
    * any other song: its instrumental → a decoy of the song's kind (``of`` its original) and the
      original → ``singles``; a song with one file (``original_only``, ``lone_instrumental``) →
      a decoy of that file; the song's expected outcome is the decoy's ``reasons``
      (``no_instrumental`` has no catalog reason);
    * file decoys (``duplicate``, ``corrupt``, v2's ``a_cappella``, ``a_cappella_untagged``,
      ``mix_copy``, ``instrumental_copy``…): ``paths[0]`` is the decoy, ``paths[1]`` its ``of``;
      ``expected`` ``mined_once``/``not_mined`` (v2) becomes ``expect``, ``acceptable_reasons``
      (v2) or a reason-valued ``expected`` (v1) becomes ``reasons``;
    * ``corrupt`` entries not already among the decoys → ``corrupt`` decoys.
    """
    version = manifest.get("schema_version")
    if version not in (1, 2):
        raise ValueError(f"manifest: schema_version {version!r}, expected 1 or 2")
    pairs: list[dict[str, Any]] = []
    decoys: list[dict[str, Any]] = []
    singles: list[str] = []
    song_files: dict[str, set[str]] = {}
    for song in manifest["songs"]:
        orig, inst = song.get("original"), song.get("instrumental")
        files = [f["path"] for f in (orig, inst) if f]
        song_files[song["id"]] = set(files)
        if song["expected"] == "pair":
            pair: dict[str, Any] = {
                "id": song["id"],
                "original": orig["path"],
                "instrumental": inst["path"],
            }
            if song.get("discovery"):
                pair["discovery"] = song["discovery"]
            if "offset_s" in inst and "codec_delay_samples" in orig:
                pair["offset_s"] = round(truth_offset_s(orig, inst), 9)
            if "gain_db" in inst:
                pair["gain_db"] = round(truth_gain_db(orig, inst), 6)
            pairs.append(pair)
            continue
        kind = song["kind"] if song["kind"] != "pair" else song["expected"]
        reasons = _SONG_REASONS.get(song["expected"], [song["expected"]])
        decoy: dict[str, Any] = {"kind": kind, "id": song["id"]}
        if reasons is not None:
            decoy["reasons"] = reasons
        if orig and inst:
            decoys.append({**decoy, "path": inst["path"], "of": orig["path"]})
            singles.append(orig["path"])
        elif files:
            decoys.append({**decoy, "path": files[0]})
    listed = {d["path"] for d in decoys}
    for d in manifest.get("decoys", []):
        paths = list(d["paths"])
        song_decoy = d.get("song_id") in song_files and d["kind"] not in COPY_KINDS
        if song_decoy and set(paths) <= song_files[d["song_id"]]:
            continue  # a song decoy, converted from the songs above
        if paths[0] in listed:
            continue
        entry: dict[str, Any] = {"kind": d["kind"], "path": paths[0]}
        if len(paths) > 1:
            entry["of"] = paths[1]
        if d.get("song_id"):
            entry["id"] = d["song_id"]
        if d.get("expected") in EXPECTS:
            entry["expect"] = d["expected"]
        reasons = _acceptable(d)
        if reasons is not None:
            entry["reasons"] = reasons
        decoys.append(entry)
        listed.add(paths[0])
    for c in manifest.get("corrupt", []):
        if c["path"] not in listed:
            decoys.append({"kind": "corrupt", "path": c["path"], "reasons": list(c["expected"])})
            listed.add(c["path"])
    truth = {
        "schema": SCHEMA,
        "source": f"builder manifest v{version} ({manifest.get('source')}, "
        f"profile {manifest.get('profile', 'default')}, seed {manifest.get('seed')})",
        "pairs": pairs,
        "decoys": decoys,
        "singles": singles,
    }
    return validate_truth(truth, "manifest")


# --- scoring ------------------------------------------------------------------------------------


def _is_mined(pair: Mapping[str, Any]) -> bool:
    return pair.get("status", "mined") == "mined"


def pair_aliases(truth: Mapping[str, Any]) -> dict[tuple[str, str], int]:
    """(original, instrumental) → index of the truth pair it stands for: the pair itself and
    every combination with the copies (:data:`COPY_KINDS` decoys whose ``of`` is its file)."""
    copies: dict[str, set[str]] = {}
    for d in truth.get("decoys", []):
        if d.get("expect") == "mined_once" and d.get("of"):
            copies.setdefault(d["of"], set()).add(d["path"])
    out: dict[tuple[str, str], int] = {}
    for i, p in enumerate(truth["pairs"]):
        for o in {p["original"]} | copies.get(p["original"], set()):
            for s in {p["instrumental"]} | copies.get(p["instrumental"], set()):
                out.setdefault((o, s), i)
    return out


def _describe(path: str, truth: Mapping[str, Any]) -> str:
    """What the truth says a file is, for the false-positive table."""
    for i, p in enumerate(truth["pairs"]):
        for side in ("original", "instrumental"):
            if p[side] == path:
                return f"pair {p.get('id') or i} {side}"
    for d in truth.get("decoys", []):
        if d["path"] == path:
            of = f" of {d['of']}" if d.get("of") else ""
            return f"decoy {d['kind']}{of}"
    if path in truth.get("singles", []):
        return "single"
    return "not in the truth"


def _catalog_reasons(
    paths: Iterable[str], pairs: list[Mapping[str, Any]], track_reasons: Mapping[str, Any]
) -> list[str]:
    """The catalog's reasons about these files: their tracks' reasons, then every pair with one
    of them (``status reason [source]``, or ``mined [source]``)."""
    paths = list(dict.fromkeys(paths))
    out = [r for path in paths for r in track_reasons.get(path, [])]
    for p in pairs:
        if p["original"] in paths or p["instrumental"] in paths:
            other = p["instrumental"] if p["original"] in paths else p["original"]
            status = p.get("status", "mined")
            what = status if status == "mined" else (p.get("reason") or status)
            src = f" ({p['source']})" if p.get("source") else ""
            out.append(f"{what}{src} with {other}")
    return list(dict.fromkeys(out))


def _reason_set(
    paths: Iterable[str], pairs: list[Mapping[str, Any]], track_reasons: Mapping[str, Any]
) -> set[str]:
    """Bare reason codes (track reasons and pair reasons) about these files."""
    paths = set(paths)
    codes = {r for path in paths for r in track_reasons.get(path, [])}
    codes |= {
        p["reason"]
        for p in pairs
        if p.get("reason") and (p["original"] in paths or p["instrumental"] in paths)
    }
    return codes


def score(
    truth: Mapping[str, Any],
    catalog_pairs: list[Mapping[str, Any]],
    track_reasons: Mapping[str, Iterable[str]],
) -> dict[str, Any]:
    """Score a catalog's decisions against a truth (see ``docs/truth-format.md``).

    ``catalog_pairs``: dicts with ``original``, ``instrumental`` (library-relative) and
    optionally ``status`` (a pair counts as mined when it is ``"mined"`` or absent), ``reason``,
    ``source``, ``id``, ``detail``, ``fp_ratio``; ``track_reasons``: path → the catalog's reasons
    about the track. Returns precision, recall, the counts, ``found`` (truth pair → the catalog
    pair counted for it), ``false_positives``, ``misses`` and ``decoys`` (every decoy and single
    with its outcome, the catalog's reasons and ``pass``).
    """
    reasons_of = {k: list(v) for k, v in track_reasons.items()}
    pairs = list(catalog_pairs)
    mined = [p for p in pairs if _is_mined(p)]
    aliases = pair_aliases(truth)
    tpairs = truth["pairs"]

    def exact(p: Mapping[str, Any]) -> bool:
        i = aliases.get((p["original"], p["instrumental"]))
        return i is not None and (tpairs[i]["original"], tpairs[i]["instrumental"]) == (
            p["original"],
            p["instrumental"],
        )

    # The exact pair is the one counted when a copy was mined as well; then catalog order.
    order = sorted(range(len(mined)), key=lambda k: (not exact(mined[k]), k))
    found: dict[int, Mapping[str, Any]] = {}
    times: dict[int, int] = {}
    false_positives = []
    for k in order:
        p = mined[k]
        i = aliases.get((p["original"], p["instrumental"]))
        if i is not None:
            times[i] = times.get(i, 0) + 1
        if i is not None and i not in found:
            found[i] = p
            continue
        if i is None:
            why = "not a truth pair"
        else:
            first = found[i]
            why = (
                f"truth pair {tpairs[i].get('id') or i} mined again "
                f"(already as {first['original']} / {first['instrumental']})"
            )
        false_positives.append(
            {
                "id": p.get("id"),
                "original": p["original"],
                "instrumental": p["instrumental"],
                "source": p.get("source"),
                "reason": why,
                "original_is": _describe(p["original"], truth),
                "instrumental_is": _describe(p["instrumental"], truth),
            }
        )
    false_positives.sort(key=lambda x: (x["original"], x["instrumental"]))

    copies_of: dict[str, set[str]] = {}
    for d in truth.get("decoys", []):
        if d.get("expect") == "mined_once" and d.get("of"):
            copies_of.setdefault(d["of"], set()).add(d["path"])
    misses = []
    for i, t in enumerate(tpairs):
        if i in found:
            continue
        files = (
            {t["original"], t["instrumental"]}
            | copies_of.get(t["original"], set())
            | copies_of.get(t["instrumental"], set())
        )
        involved = [p for p in pairs if p["original"] in files or p["instrumental"] in files]
        misses.append(
            {
                "index": i,
                "song": t.get("id") or str(i),
                "discovery": t.get("discovery") or "-",
                "original": t["original"],
                "instrumental": t["instrumental"],
                "pairs": [
                    {
                        "original": p["original"],
                        "instrumental": p["instrumental"],
                        "source": p.get("source"),
                        "status": p.get("status", "mined"),
                        "reason": p.get("reason"),
                        "detail": p.get("detail"),
                        "fp_ratio": p.get("fp_ratio"),
                    }
                    for p in involved
                ],
                "track_reasons": {
                    path: reasons_of.get(path, []) for path in (t["original"], t["instrumental"])
                },
            }
        )

    pair_of_file = {}
    for i, t in enumerate(tpairs):
        pair_of_file.setdefault(t["original"], i)
        pair_of_file.setdefault(t["instrumental"], i)
    rows = []
    checks = [dict(d) for d in truth.get("decoys", [])]
    checks += [
        {"kind": "single", "path": s, "expect": "not_mined"} for s in truth.get("singles", [])
    ]
    for d in checks:
        path, expect = d["path"], d["expect"]
        with_it = [p for p in mined if path in (p["original"], p["instrumental"])]
        about = [path]
        target = pair_of_file.get(d.get("of")) if expect == "mined_once" else None
        if expect == "mined_once" and target is not None:
            about.append(d["of"])
            n = times.get(target, 0)
            ok = n == 1
            via = found.get(target)
            how = ""
            if via is not None and path in (via["original"], via["instrumental"]):
                how = " (via this copy)"
            outcome = {0: "truth pair not mined", 1: f"truth pair mined once{how}"}.get(
                n, f"truth pair mined {n}×"
            )
        else:
            ok = not with_it
            outcome = "not mined" if ok else f"mined in {len(with_it)} pair(s)"
            if expect == "mined_once":
                outcome += f" ('of' {d.get('of')} is in no truth pair)"
        reasons = _catalog_reasons(about, pairs, reasons_of)
        codes = _reason_set(about, pairs, reasons_of)
        if not any(path in (p["original"], p["instrumental"]) for p in pairs):
            reasons.append(NO_PAIR)  # the catalog never even proposed a pair with the file
            codes.add(NO_PAIR)
        wanted = d.get("reasons")
        reason_ok = None if wanted is None else bool(set(wanted) & codes)
        rows.append(
            {
                "kind": d["kind"],
                "id": d.get("id"),
                "path": path,
                "of": d.get("of"),
                "expect": expect,
                "outcome": outcome,
                "pass": ok,
                "catalog_reasons": reasons,
                "expected_reasons": wanted,
                "reason_ok": reason_ok,
            }
        )

    n_pairs, n_mined, n_true = len(tpairs), len(mined), len(found)
    discovery = sorted({t.get("discovery") for t in tpairs if t.get("discovery")})
    return {
        "n_pairs": n_pairs,
        "n_mined": n_mined,
        "n_true": n_true,
        "precision": n_true / n_mined if n_mined else float("nan"),
        "recall": n_true / n_pairs if n_pairs else float("nan"),
        "recall_by_discovery": {
            kind: {
                "expected": sum(t.get("discovery") == kind for t in tpairs),
                "found": sum(
                    t.get("discovery") == kind and i in found for i, t in enumerate(tpairs)
                ),
            }
            for kind in discovery
        },
        "found": [
            {
                "index": i,
                "id": tpairs[i].get("id"),
                "pair_id": p.get("id"),
                "original": p["original"],
                "instrumental": p["instrumental"],
                "via_copy": (p["original"], p["instrumental"])
                != (tpairs[i]["original"], tpairs[i]["instrumental"]),
            }
            for i, p in sorted(found.items())
        ],
        "false_positives": false_positives,
        "misses": misses,
        "decoys": rows,
        "decoys_passed": sum(r["pass"] for r in rows),
    }


__all__ = [
    "COPY_KINDS",
    "NO_PAIR",
    "SCHEMA",
    "is_manifest",
    "load_truth",
    "pair_aliases",
    "score",
    "truth_from_manifest",
    "truth_gain_db",
    "truth_offset_s",
    "validate_truth",
]
