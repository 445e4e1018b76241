"""Fine-tuning benchmark: the pretrained Spleeter model before and after fine-tuning on a mined
MIR-1K library, beside training from scratch at the same budget.

The experiment of issue 14, end to end through the ``vocalmine`` command:

1. A library is built from the MIR-1K clips of the *training* singers only (``--train-singers``,
   default amy, geniusturtle, jmzen): original = left + right channel, instrumental = left.
2. It is scanned and mined with the ``spleeter`` STFT preset, so the shards fit the model.
3. ``vocalmine models import spleeter-2stems``, then one ``vocalmine train`` per run of
   :data:`RUNS` (``--init spleeter-2stems`` or from scratch), each registered under its own name.
4. Every model is scored with ``vocalmine evaluate`` (museval v4, median over frames then
   tracks) on the *held-out* singers' true stems (``--test-singers``, default leon and yifen;
   100 clips drawn with seed 0) and, for the pretrained and fine-tuned models, on MUSDB18-7 test.

Split by singer, never by clip: no held-out singer's voice is in the mined library. Every step
is idempotent (an existing library, shard set, finished run or stored score is reused), so an
interrupted run picks up where it stopped. Prints a table and writes ``bench/results/
finetune.json``. Needs ``../shared/data/{mir1k,musdb18-7}`` and the ``pretrained`` extra.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vocalmine.core.atomic import atomic_write_text  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results" / "finetune.json"
VOCALMINE = str(ROOT / ".venv" / "bin" / "vocalmine")
PRETRAINED = "spleeter-2stems"
#: Name → training options. The fine-tuning runs start from the pretrained model with its batch
#: norms frozen (their statistics come from Deezer's far larger catalog); the scratch run trains
#: the same graph from He-uniform weights for the same number of steps as finetune-60.
COMMON = [
    "--lr", "1e-4", "--batch-size", "4", "--val-max-batches", "4", "--workers", "1",
]  # fmt: skip
RUNS: dict[str, list[str]] = {
    "finetune-60": ["--init", PRETRAINED, "--freeze", "norm", "--max-steps", "60",
                    "--steps-per-epoch", "30", "--checkpoint-every", "30", *COMMON],
    "scratch-60": ["--model", "spleeter", "--max-steps", "60",
                   "--steps-per-epoch", "30", "--checkpoint-every", "30", *COMMON],
    "finetune-240": ["--init", PRETRAINED, "--freeze", "norm", "--max-steps", "240",
                     "--steps-per-epoch", "60", "--checkpoint-every", "60", *COMMON],
    # Only the accompaniment network learns: its target, the instrumental, is exact, while the
    # mined vocals (half-wave rectified difference) are biased low where both sources sound.
    "finetune-acc-120": ["--init", PRETRAINED, "--freeze", "norm+vocals", "--max-steps", "120",
                         "--steps-per-epoch", "60", "--checkpoint-every", "60", *COMMON],
}  # fmt: skip
console = Console(width=140)


def vocalmine(*args: str, data_dir: Path, **env: str) -> None:
    """Run one ``vocalmine`` command against ``data_dir``; its output goes to our stderr."""
    environment = {**os.environ, "VOCALMINE_DATA_DIR": str(data_dir), **env}
    console.print(f"$ vocalmine {' '.join(args)}", highlight=False)
    subprocess.run([VOCALMINE, *args], env=environment, check=True, stdout=sys.stderr)


def link_clips(target: Path, singers: list[str]) -> Path:
    """``target`` holding links to the MIR-1K clips of ``singers`` (made once)."""
    target.mkdir(parents=True, exist_ok=True)
    for singer in singers:
        for clip in sorted((DATA / "mir1k").glob(f"{singer}_*.flac")):
            link = target / clip.name
            if not link.exists():
                link.symlink_to(clip)
    return target


def mine(work: Path, singers: list[str], seed: int) -> Path:
    """The mined library of the training singers; returns the data dir."""
    data = work / "data"
    library = work / "library"
    if not library.exists():
        source = link_clips(work / "source" / "mir1k", singers)
        vocalmine(
            "library", "build", "--from", "mir1k", "--data", str(source.parent),
            "--out", str(library), "--seed", str(seed), data_dir=data,
        )  # fmt: skip
    vocalmine("scan", str(library), data_dir=data)
    vocalmine("mine", str(library), data_dir=data, VOCALMINE_STFT_PRESET="spleeter")
    vocalmine("models", "import", PRETRAINED, data_dir=data)
    return data


def train(work: Path, data: Path, name: str, options: list[str]) -> dict[str, Any]:
    """One registered training run (resumed, or reused when finished); its ``result.json``."""
    folder = work / "runs" / name
    result = folder / "result.json"
    done = result.exists() and "version" in json.loads(result.read_text())
    if not done:
        vocalmine("train", "--name", name, "--run-dir", str(folder), *options, data_dir=data)
    return json.loads(result.read_text())


def evaluate(work: Path, data: Path, model: str, dataset: Path, label: str) -> dict[str, Any]:
    """Median museval scores of ``model`` (post-processing none) on ``dataset``."""
    out = work / "eval" / f"{label}-{model.replace(':', '-v')}"
    vocalmine(
        "evaluate", str(dataset), "--model", model, "--no-baselines", "-o", str(out),
        data_dir=data,
    )  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    scores = summary["scores"]["model"]
    return {
        "dataset": summary["dataset"],
        "tracks": len(summary["tracks"]),
        **{
            f"{source} {metric}": scores[source][metric]["median"]
            for source in ("vocals", "accompaniment")
            for metric in ("SDR", "SIR", "SAR")
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/vocalmine-finetune"))
    parser.add_argument("--train-singers", nargs="+", default=["amy", "geniusturtle", "jmzen"])
    parser.add_argument("--test-singers", nargs="+", default=["leon", "yifen"])
    parser.add_argument("--seed", type=int, default=3, help="library build seed")
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    args = parser.parse_args()
    if not (DATA / "mir1k").is_dir() or not (DATA / "musdb18-7" / "test").is_dir():
        sys.exit(f"bench/finetune.py needs {DATA}/mir1k and {DATA}/musdb18-7/test")
    if set(args.train_singers) & set(args.test_singers):
        sys.exit("a singer cannot be both trained on and held out")
    started = time.perf_counter()
    work = args.work.resolve()
    data = mine(work, args.train_singers, args.seed)
    heldout = link_clips(work / "heldout", args.test_singers)
    musdb = DATA / "musdb18-7" / "test"

    models = {"pretrained": {"model": PRETRAINED, "runs": None}}
    for name in args.runs:
        result = train(work, data, name, RUNS[name])
        models[name] = {
            "model": f"{result['name']}:{result['version']}",
            "steps": result["steps"],
            "options": " ".join(RUNS[name]),
        }
    for name, entry in models.items():
        entry["heldout"] = evaluate(work, data, entry["model"], heldout, "heldout")
        if not name.startswith("scratch"):
            entry["musdb"] = evaluate(work, data, entry["model"], musdb, "musdb")

    base = models["pretrained"]
    table = Table(
        title=f"Fine-tuning on mined MIR-1K ({', '.join(args.train_singers)}); vocals/accomp. "
        f"SDR medians (dB), held out: {', '.join(args.test_singers)} (100 clips), MUSDB18-7 test"
    )
    for column in ("model", "steps", "held-out voc", "Δ", "held-out acc", "MUSDB voc", "Δ",
                   "MUSDB acc"):  # fmt: skip
        table.add_column(column, justify="right")
    for name, entry in models.items():
        held, music = entry["heldout"], entry.get("musdb")
        d_held = held["vocals SDR"] - base["heldout"]["vocals SDR"]
        d_music = music["vocals SDR"] - base["musdb"]["vocals SDR"] if music else None
        entry["delta"] = {"heldout vocals SDR": d_held, "musdb vocals SDR": d_music}
        table.add_row(
            name,
            str(entry.get("steps", "–")),
            f"{held['vocals SDR']:.2f}",
            f"{d_held:+.2f}",
            f"{held['accompaniment SDR']:.2f}",
            f"{music['vocals SDR']:.2f}" if music else "–",
            f"{d_music:+.2f}" if d_music is not None else "–",
            f"{music['accompaniment SDR']:.2f}" if music else "–",
        )
    console.print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "train_singers": args.train_singers,
        "test_singers": args.test_singers,
        "work": str(work),
        "wall_s": round(time.perf_counter() - started, 1),
        "models": models,
    }
    atomic_write_text(RESULTS, json.dumps(report, indent=1))
    console.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
