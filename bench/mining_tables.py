"""Mining benchmark, part 3: the rich tables printed for each source, against :data:`TARGETS`.

Used by ``bench/mining.py`` (the entry point).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.mining_runs import PHASES
from vocalmine.mining.fingerprint_match import DEFAULT_THRESHOLDS

TARGETS = {
    "precision": 0.99,
    "recall": 0.95,
    "align_median": 0,
    "align_p95": 2,
    "gain_median_db": 0.1,
    "sdr_loss_db": 1.0,
    "seconds_per_pair_core": 2.0,
}
console = Console(width=200)


# --- tables -------------------------------------------------------------------------------------


def _f(value: Any, fmt: str = ".2f") -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    return format(value, fmt)


def _mark(ok: bool) -> str:
    return "[green]✓[/green]" if ok else "[red]✗[/red]"


def _spread(stats: dict[str, Any], prefix: str, fmt: str) -> str:
    """``median / p95 / max`` of one measure, or ``-`` when it was not measured."""
    if f"{prefix}_median" not in stats:
        return "-"
    return " / ".join(_f(stats[f"{prefix}_{k}"], fmt) for k in ("median", "p95", "max"))


def _stages(stages: dict[str, Any]) -> str:
    if not stages.get("pairs"):
        return "-"
    med = stages["median"]
    names = ("load", "align", "gain", "derive", "segment", "total")
    return " / ".join(f"{med.get('seconds_' + k, 0.0):.1f}" for k in names)


def _ratios(stats: dict[str, Any]) -> str:
    if not stats["pairs"]:
        return "-"
    spread = " / ".join(f"{stats[k]:.2f}" for k in ("min", "median", "max"))
    return f"{spread} ({stats['at_or_above_same_audio_ratio']})"


def _phases(timeline: dict[str, Any] | None) -> str:
    if not timeline or not timeline.get("phases"):
        return "-"
    return " / ".join(f"{timeline['phases'][k]:.0f}" for k in PHASES)


def _ok_mark(stats: dict[str, Any], key: str, ok: bool) -> str:
    """A target mark, or nothing when the measure is missing."""
    return _mark(ok) if key in stats else ""


def _percent(stats: dict[str, Any], key: str) -> str:
    return f"{100 * stats[key]:.0f} %" if key in stats else "-"


def _summary_rows(r: dict[str, Any]) -> list[str]:
    """One source's column of the summary table (order as in :data:`SUMMARY_ROWS`)."""
    d, p, t, fp = r["decisions"], r["pairs"], r["throughput"], r["fingerprint_speed"]
    inf = float("inf")
    decoys_ok, n_decoys = d["decoys_passed"], len(d["decoys"])
    with_reasons = [x for x in d["decoys"] if x["reason_ok"] is not None]
    reasons_ok = sum(x["reason_ok"] for x in with_reasons)
    align_ok = (
        p.get("align_error_median", inf) == 0
        and p.get("align_error_p95", inf) <= TARGETS["align_p95"]
    )
    gain_ok = p.get("gain_error_db_median", inf) <= TARGETS["gain_median_db"]
    sdr_ok = p.get("sdr_loss_median", inf) <= TARGETS["sdr_loss_db"]
    speed = t["seconds_per_pair_core"]
    minutes = _f(r.get("library_minutes"), ".0f")
    return [
        f"{r['songs'] if r.get('songs') is not None else '-'} / {r['files']} / {minutes}",
        _f(r.get("song_minutes_median")),
        str(d["expected_pairs"]),
        f"{d['mined_pairs']} ({d['true_positives']})",
        f"{_f(d['precision'], '.3f')} {_mark(d['precision'] >= TARGETS['precision'])}",
        f"{_f(d['recall'], '.3f')} {_mark(d['recall'] >= TARGETS['recall'])}",
        f"{decoys_ok}/{n_decoys} {_mark(decoys_ok == n_decoys)}",
        f"{reasons_ok}/{len(with_reasons)}" if with_reasons else "-",
        _ratios(d["true_pair_fp_ratio"]),
        f"{_spread(p, 'align_error', '.0f')} {_ok_mark(p, 'align_error_median', align_ok)}",
        _percent(p, "align_exact_fraction"),
        _percent(p, "truth_measured_agree_fraction"),
        f"{_spread(p, 'gain_error_db', '.3f')} {_ok_mark(p, 'gain_error_db_median', gain_ok)}",
        " / ".join(_f(p.get(f"sdr_{k}_median")) for k in ("mined", "oracle", "clean")),
        f"{_spread(p, 'sdr_loss', '.2f')} {_ok_mark(p, 'sdr_loss_median', sdr_ok)}",
        f"{t['wall_s']:.0f} ({_f(t['flow_body_s'], '.0f')})",
        f"{_f(speed)} ({t['cores']} cores) {_mark(speed <= TARGETS['seconds_per_pair_core'])}",
        _f(t["cpu_seconds_per_pair"]),
        f"{_f(fp['x_realtime'], '.0f')} ({_f(fp['x_realtime_with_decode'], '.0f')})",
        _stages(r["pair_stages"]),
        _phases(t["flow_timeline"]),
    ]


SUMMARY_ROWS = (
    ("songs / files / minutes of audio", ""),
    ("median song length, min", ""),
    ("true pairs passing the filters", ""),
    ("mined pairs (of them true)", ""),
    ("pair precision", f"≥ {TARGETS['precision']}"),
    ("pair recall", f"≥ {TARGETS['recall']}"),
    ("decoys and singles with the expected outcome", "all"),
    ("… of them with an expected catalog reason", ""),
    (
        "true pairs' fingerprint ratio: min / median / max (≥ same_audio_ratio)",
        f"< {DEFAULT_THRESHOLDS.same_audio_ratio}",
    ),
    ("alignment error, samples: median / p95 / max", f"0 / ≤ {TARGETS['align_p95']}"),
    ("alignment exact to the sample", ""),
    ("truth: manifest and cross-correlation agree (±1)", ""),
    ("gain error, dB: median / p95 / max", f"≤ {TARGETS['gain_median_db']}"),
    ("vocal SDR: mined / true offset+gain / clean stem, dB", ""),
    ("SDR loss vs true offset+gain, dB: median / p95 / max", f"≤ {TARGETS['sdr_loss_db']}"),
    ("mine wall time, s (flow body)", ""),
    ("s per pair per core (wall × cores / pairs)", f"≤ {TARGETS['seconds_per_pair_core']}"),
    ("CPU s per mined pair (command + children)", ""),
    ("fingerprint × real time (with decoding)", ""),
    ("process_pair s: load / align / gain / derive / segment / total", ""),
    ("flow s: " + " / ".join(PHASES), ""),
)


def _catalog_said(miss: dict[str, Any]) -> str:
    """What the catalog recorded about a missed true pair, one line per pair or track."""
    lines = []
    for q in miss["pairs"]:
        line = f"{q['status']} {q['reason'] or ''} [{q['source']}] {q['detail'] or ''}"
        if q["instrumental"] != miss["instrumental"]:
            line += f" — with {q['instrumental']}"
        elif q["original"] != miss["original"]:
            line += f" — with {q['original']}"
        lines.append(" ".join(line.split()))
    lines += [
        f"track {Path(k).name}: {', '.join(v)}" for k, v in miss["track_reasons"].items() if v
    ]
    return escape("\n".join(lines)) or "no pair, no reason"


def _decoy_reasons(x: dict[str, Any]) -> str:
    """The catalog's reasons about a decoy, and whether an expected one is among them."""
    said = escape("\n".join(x["catalog_reasons"])) or "no reason"
    if x["reason_ok"] is not None:
        said += f"\n{_mark(x['reason_ok'])} expected {' or '.join(x['expected_reasons'])}"
    return said


def print_source_tables(name: str, r: dict[str, Any]) -> None:
    """Decoys, missed true pairs, false positives and the worst mined pairs of one source."""
    decoys = Table(title=f"{name}: decoys and singles — kind → expected → outcome")
    for col in ("kind", "id", "expect", "outcome", "catalog says", "ok", "file"):
        decoys.add_column(col)
    for x in r["decisions"]["decoys"]:
        decoys.add_row(
            x["kind"],
            x["id"] or "-",
            x["expect"],
            x["outcome"],
            _decoy_reasons(x),
            _mark(x["pass"]),
            escape(x["path"] + (f"\nof {x['of']}" if x["of"] else "")),
        )
    console.print(decoys)
    misses = r["decisions"]["misses"]
    if misses:
        table = Table(title=f"{name}: true pairs not mined ({len(misses)})")
        for col in ("song", "discovery", "files", "what the catalog says"):
            table.add_column(col)
        for m in misses:
            files = escape(f"{m['original']}\n{m['instrumental']}")
            table.add_row(m["song"], m["discovery"], files, _catalog_said(m))
        console.print(table)
    false_pos = r["decisions"]["false_positives"]
    if false_pos:
        table = Table(title=f"{name}: mined pairs that are not true pairs ({len(false_pos)})")
        for col in ("original", "instrumental", "source", "why"):
            table.add_column(col)
        for x in false_pos:
            why = escape(f"{x['reason']}\n{x['original_is']} / {x['instrumental_is']}")
            table.add_row(escape(x["original"]), escape(x["instrumental"]), x["source"] or "-", why)
        console.print(table)
    worst = sorted(
        r["pair_rows"],
        key=lambda q: -abs(q.get("align_error", 0)) - abs(q.get("gain_error_db", 0.0)),
    )
    if worst:
        table = Table(title=f"{name}: the five worst mined pairs (alignment, then gain)")
        for col in ("song", "codecs", "align err", "gain err dB", "SDR loss dB", "instrumental"):
            table.add_column(col)
        for q in worst[:5]:
            table.add_row(
                q["song"],
                q.get("codecs", "-"),
                str(q.get("align_error", "-")),
                f"{q['gain_error_db']:+.3f}" if "gain_error_db" in q else "-",
                _f(q.get("sdr_loss")),
                escape(q["instrumental"]),
            )
        console.print(table)


def print_tables(results: dict[str, dict[str, Any]]) -> None:
    """The summary against the targets, then each source's detail tables."""
    table = Table(title="Mining benchmark: the mine flow against the libraries' answer keys")
    table.add_column("measure")
    table.add_column("target", justify="right")
    for name in results:
        table.add_column(name, justify="right")
    columns = [_summary_rows(r) for r in results.values()]
    for i, (label, target) in enumerate(SUMMARY_ROWS):
        table.add_row(label, target, *(c[i] for c in columns))
    console.print(table)
    for name, r in results.items():
        print_source_tables(name, r)
