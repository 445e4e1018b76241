"""A song in, vocals and accompaniment out: the inference pipeline behind ``vocalmine separate``.

Per block of input audio (see :mod:`separation.chunking`): downmix/resample to the model's preset,
magnitude STFT, model masks per patch, ratio masks (:mod:`separation.masks`), optional mask
binarisation, mapping onto the full-resolution STFT of the block at the input's own rate,
optional Wiener filter, mixture phase, inverse STFT. Blocks are cross-faded; the accompaniment is
the mixture minus the vocals, so the stems sum to the input, at its rate, channel count and exact
length. The optional vocal gate needs the whole stem's maximum energy, so with the gate a file is
written in two passes through lossless staging files beside the outputs.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import torch

from vocalmine.core.atomic import FolderClaim, RunFolder, publish_folder
from vocalmine.core.audio import AUDIO_SUFFIXES, file_problem, resample
from vocalmine.core.stft import stft as model_stft
from vocalmine.core.stft import to_preset_channels
from vocalmine.separation.chunking import (
    CrossFader,
    array_pieces,
    merge_patches,
    overlapping_blocks,
    patch_starts,
    split_patches,
)
from vocalmine.separation.masks import (
    FullBandMask,
    high_band_mask,
    istft,
    map_to_full_band,
    mask_grid,
    masked_istft,
    match_channels,
    ratio_masks,
    stft,
)
from vocalmine.separation.postprocess import (
    HopEnergyMeter,
    apply_gate,
    binarize,
    gain_at_samples,
    gate_gain,
    gate_hop,
    wiener,
)
from vocalmine.separation.settings import ChunkSettings, PostProcessing
from vocalmine.separation.streams import WRITE_FRAMES, AudioStream, StemWriter, WriteBehind
from vocalmine.training.models import SeparationModel

SOURCES: tuple[str, str] = ("vocals", "accompaniment")
Progress = Callable[[float], None]


class OutputExistsError(Exception):
    """Separating would overwrite an existing stem; ``str()`` is one line naming the input."""

    def __init__(self, path: Path, existing: Sequence[Path]) -> None:
        names = ", ".join(str(p) for p in existing)
        super().__init__(f"{path}: output exists ({names}); pass --overwrite to replace it")


class Separator:
    """A loaded model plus post-processing and chunking settings; reuse it for many files."""

    def __init__(
        self,
        model: SeparationModel,
        *,
        device: str = "cpu",
        post: PostProcessing | None = None,
        chunks: ChunkSettings | None = None,
        batch_size: int = 8,
        workers: int | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.preset = model.preset
        self.post = post or PostProcessing()
        self.chunks = chunks or ChunkSettings()
        self.batch_size = batch_size
        self.workers = default_workers(self.device) if workers is None else max(1, workers)

    def model_masks(self, magnitude: np.ndarray) -> np.ndarray:
        """The model's ``(2, C, bins, T)`` source masks for a ``(C, bins, T)`` magnitude."""
        frames = magnitude.shape[-1]
        patch = self.preset.patch_frames
        starts = patch_starts(frames, patch, self.chunks.patch_overlap)
        patches = split_patches(magnitude, patch, starts)
        if self.model.input_scaling == "peak":
            peak = patches.reshape(len(starts), -1).max(axis=1)
            patches = patches / np.maximum(peak, 1e-8)[:, None, None, None]
        outputs = []
        with torch.inference_mode():
            for i in range(0, len(patches), self.batch_size):
                batch = torch.from_numpy(patches[i : i + self.batch_size]).to(self.device)
                outputs.append(self.model(batch).float().cpu().numpy())
        return merge_patches(np.concatenate(outputs), starts, frames)

    def vocal_mask(self, audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
        """Vocal ratio mask on the model grid and its above-band value, per input channel."""
        preset = self.preset
        model_in = resample(to_preset_channels(audio, preset), sample_rate, preset.sample_rate)
        with warnings.catch_warnings():  # blocks shorter than n_fft are fine, zero padded
            warnings.simplefilter("ignore", UserWarning)
            magnitude = np.abs(model_stft(model_in, preset)[:, : preset.bins])
        mask = ratio_masks(self.model_masks(magnitude), self.model.mask_exponent)
        if self.post.high_band == "zero":
            high = np.zeros_like(mask[:, :1])
        else:
            high = high_band_mask(mask, magnitude)
        if self.post.binarize_alpha is not None:
            mask = binarize(mask, self.post.binarize_alpha)
            high = binarize(high, self.post.binarize_alpha)
        channels = audio.shape[0]
        return match_channels(mask, channels), match_channels(high, channels)

    def vocals_block(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """Vocal estimate ``(C, N)`` of one block of ``(C, N)`` audio at its own rate.

        With Spleeter's ``zero`` rule above the model's band, the mixture's part above the
        band follows as ``C`` more rows, ``(2C, N)``: it belongs to neither stem, and stacking
        it with the vocals cross-fades both alike (:func:`_split`)."""
        mask, high = self.vocal_mask(audio, sample_rate)
        n_fft, hop, window = mask_grid(self.preset, sample_rate)
        signal = torch.from_numpy(np.ascontiguousarray(audio)).to(self.device)
        full_mask = map_to_full_band(
            torch.from_numpy(mask).to(self.device),
            torch.from_numpy(high).to(self.device),
            self.preset,
            sample_rate,
            n_fft,
            hop,
            1 + audio.shape[-1] // hop,  # frames of the centred STFT
        )
        if not self.post.wiener_iterations:
            vocals = masked_istft(signal, full_mask, n_fft, hop, window)
        else:
            spec = stft(signal, n_fft, hop, window)
            dense = full_mask.dense().cpu().numpy()
            filtered = wiener(spec.cpu().numpy(), dense, self.post.wiener_iterations)
            vocal_spec = torch.from_numpy(filtered).to(self.device)
            vocals = istft(vocal_spec, n_fft, hop, audio.shape[-1], window)
        if self.post.high_band != "zero":
            return vocals.cpu().numpy()
        above = FullBandMask(
            torch.zeros_like(full_mask.low), torch.ones_like(full_mask.high), full_mask.bins
        )
        dropped = masked_istft(signal, above, n_fft, hop, window)
        return torch.cat([vocals, dropped]).cpu().numpy()

    def stream(
        self, pieces: Iterable[np.ndarray], channels: int, sample_rate: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(mixture, vocals)`` chunks, final and in order, for a stream of input pieces.

        The vocal gate is not applied here (it needs the whole stem).
        """
        size, overlap = self.chunks.block_samples(sample_rate, self.preset)
        fader = CrossFader(overlap)
        blocks = overlapping_blocks(pieces, channels, size, overlap)
        if self.workers == 1:
            for block, last in blocks:
                yield _split(block, fader.push(self.vocals_block(block, sample_rate), last))
            return
        with single_threaded_pool(self.workers) as pool:
            pending: deque[tuple[np.ndarray, bool, Future[np.ndarray]]] = deque()
            for block, last in blocks:
                pending.append((block, last, pool.submit(self.vocals_block, block, sample_rate)))
                if len(pending) > self.workers:
                    yield _cross_fade(fader, *pending.popleft())
            while pending:
                yield _cross_fade(fader, *pending.popleft())

    def separate_array(self, audio: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
        """Both stems of an in-memory ``(C, N)`` (or ``(N,)``) signal, same shape as the input."""
        data = np.atleast_2d(np.asarray(audio, dtype=np.float32))
        size, _ = self.chunks.block_samples(sample_rate, self.preset)
        parts = list(self.stream(array_pieces(data, size), data.shape[0], sample_rate))
        mix = np.concatenate([m for m, _ in parts], axis=1)
        vocals = np.concatenate([v for _, v in parts], axis=1)
        if self.post.gate is not None:
            vocals = apply_gate(vocals, self.post.gate, sample_rate)
        stems = {"vocals": vocals, "accompaniment": mix - vocals}
        return {k: v.reshape(np.shape(audio)) for k, v in stems.items()}

    def separate_file(
        self,
        path: str | os.PathLike[str],
        out_dir: str | os.PathLike[str],
        *,
        stems: Sequence[str] = SOURCES,
        fmt: str = "wav",
        overwrite: bool = False,
        progress: Progress | None = None,
        work_dir: str | os.PathLike[str] | None = None,
    ) -> dict[str, Path]:
        """Separate one file into ``out_dir/<stem>.<fmt>``, streaming; returns the stem paths.

        ``out_dir`` is claimed for the call (:class:`~vocalmine.core.atomic.FolderClaim`: a
        second run on it fails at once); partial and staged files live in ``work_dir`` (the
        caller's :class:`~vocalmine.core.atomic.RunFolder`; by default one of this call's
        beside ``out_dir``), and the stems are published together, all or none. Raises
        :class:`vocalmine.core.audio.AudioError` for unreadable input,
        :class:`OutputExistsError` when a stem exists and ``overwrite`` is false, and
        :class:`~vocalmine.core.atomic.FolderBusyError` when another run holds ``out_dir``.
        A failure leaves no file and no output folder that was not there before.
        """
        source = Path(path)
        out = Path(out_dir)
        names = {s: f"{s}.{fmt}" for s in stems}
        with ExitStack() as cleanup:
            if work_dir is None:
                work_dir = cleanup.enter_context(RunFolder(out.parent)).path
            claim = cleanup.enter_context(FolderClaim(out))
            existing = [out / n for n in names.values() if (out / n).exists()]
            if existing and not overwrite:
                raise OutputExistsError(source, existing)
            staging = Path(tempfile.mkdtemp(prefix="song-", dir=work_dir))
            cleanup.callback(shutil.rmtree, staging, ignore_errors=True)
            with AudioStream(source) as stream:
                rate, channels = stream.sample_rate, stream.channels
                writers: list[StemWriter] = []
                try:
                    expected = stream.frames or int(stream.duration_s * rate) + rate
                    final = {
                        s: StemWriter(staging / n, rate, channels, expected_frames=expected)
                        for s, n in names.items()
                    }
                    writers += final.values()
                    size, _ = self.chunks.block_samples(rate, self.preset)
                    chunks = self.stream(stream.blocks(size), channels, rate)
                    if self.post.gate is None:
                        behind = WriteBehind()
                        try:
                            for mix, vocals in chunks:
                                behind.put(_write, final, mix, vocals)
                                if progress:
                                    progress(mix.shape[1] / rate)
                        finally:
                            behind.close()
                    else:
                        self._gated(chunks, final, staging, rate, channels, writers, progress)
                    for writer in final.values():
                        writer.commit()
                except BaseException:
                    for writer in writers:
                        writer.abort()
                    raise
            _warn_if_clipped(source, final)
            published = publish_folder(staging, out, list(names.values()))
            claim.release()
            return {s: published[n] for s, n in names.items()}

    def _gated(
        self,
        chunks: Iterator[tuple[np.ndarray, np.ndarray]],
        final: dict[str, StemWriter],
        out_dir: Path,
        rate: int,
        channels: int,
        writers: list[StemWriter],
        progress: Progress | None,
    ) -> None:
        """Two passes: ungated stems to float WAV staging files in ``out_dir`` (the song's
        staging folder inside the run folder), then the gain applied."""
        assert self.post.gate is not None
        hop = gate_hop(self.post.gate, rate)
        meter = HopEnergyMeter(hop)
        staged = {
            s: StemWriter(out_dir / f".vm-{s}.staged.wav", rate, channels, subtype="FLOAT")
            for s in SOURCES
        }
        writers += staged.values()
        for mix, vocals in chunks:
            meter.push(vocals)
            _write(staged, mix, vocals)
            if progress:
                progress(0.5 * mix.shape[1] / rate)
        gain = gate_gain(meter.energies(), self.post.gate, rate)
        paths = {s: w.commit() for s, w in staged.items()}
        try:
            with AudioStream(paths["vocals"]) as voc, AudioStream(paths["accompaniment"]) as acc:
                start = 0
                size, _ = self.chunks.block_samples(rate, self.preset)
                for vocals, accompaniment in zip(voc.blocks(size), acc.blocks(size), strict=True):
                    g = gain_at_samples(gain, start, vocals.shape[1], hop)
                    gated = vocals * g
                    for stem, data in (
                        ("vocals", gated),
                        ("accompaniment", accompaniment + vocals - gated),
                    ):
                        if stem in final:
                            final[stem].write(data)
                    start += vocals.shape[1]
                    if progress:
                        progress(0.5 * vocals.shape[1] / rate)
        finally:
            for p in paths.values():
                p.unlink(missing_ok=True)


MAX_WORKERS = 4


def default_workers(device: torch.device) -> int:
    """Blocks separated at once: one per usable CPU core (at most :data:`MAX_WORKERS`) on
    CPU, one on a GPU."""
    if device.type != "cpu":
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(MAX_WORKERS, cores or 1))


@contextmanager
def single_threaded_pool(workers: int) -> Iterator[ThreadPoolExecutor]:
    """A thread pool whose threads run torch with one intra-op thread each.

    Why blocks in parallel rather than torch's own threads: the U-Net's many small layers
    each end in an OpenMP barrier, and on a shared machine a barrier waits for a descheduled
    thread's whole time slice. With another process busy on one of two cores, two intra-op
    threads separated a 4-minute song about 10× slower than one; whole blocks on
    single-threaded workers share the cores without waiting on each other, and are as fast
    on an idle machine. ``torch.set_num_threads`` in a worker also sets the default of threads
    started later, so the caller's value is restored on exit.
    """
    threads = torch.get_num_threads()
    pool = ThreadPoolExecutor(workers, "separate", initializer=torch.set_num_threads, initargs=(1,))
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(threads)


def _cross_fade(
    fader: CrossFader, block: np.ndarray, last: bool, vocals: Future[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    return _split(block, fader.push(vocals.result(), last))


def _split(block: np.ndarray, out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mixture, vocals)`` of a block from :meth:`Separator.vocals_block`'s cross-faded output:
    with the ``zero`` rule the mixture loses its part above the model's band (both stems do,
    as in Spleeter), so the accompaniment, mixture minus vocals, has none either."""
    channels = block.shape[0]
    mix = block[:, : out.shape[1]]
    if out.shape[0] > channels:
        mix = mix - out[channels:]
    return mix, out[:channels]


def _write(writers: dict[str, StemWriter], mix: np.ndarray, vocals: np.ndarray) -> None:
    for start in range(0, mix.shape[1], WRITE_FRAMES):  # small temporaries, see StemWriter
        part = vocals[:, start : start + WRITE_FRAMES]
        if "vocals" in writers:
            writers["vocals"].write(part)
        if "accompaniment" in writers:
            writers["accompaniment"].write(mix[:, start : start + WRITE_FRAMES] - part)


class ClippingWarning(UserWarning):
    """A stem exceeds full scale and the output format clips it: the stems no longer sum to
    the input. ``str()`` is one line naming the input and what to do."""


def _warn_if_clipped(source: Path, writers: dict[str, StemWriter]) -> None:
    clipped = {s: w.peak for s, w in writers.items() if w.clips and w.peak > 1.0}
    if clipped:
        stem, peak = max(clipped.items(), key=lambda item: item[1])
        fmt = writers[stem].format.upper()
        warnings.warn(
            ClippingWarning(
                f"{source}: the {stem} stem peaks at {peak:.2f} (above full scale) and {fmt} "
                "clips it, so the stems no longer sum to the input; use -f wav (32-bit float)"
            ),
            stacklevel=3,
        )


def expand_inputs(arguments: Iterable[str]) -> tuple[list[Path], list[str]]:
    """Files, folders (searched recursively for audio) and globs → ``(files, errors)``.

    Errors are one-line messages for arguments that match nothing.
    """
    files: list[Path] = []
    errors: list[str] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES
            )
            if not found:
                errors.append(f"{argument}: folder has no audio files")
            files += found
        elif path.exists() or path.is_symlink():
            problem = file_problem(path)
            if problem is not None and problem != "zero-length file":
                errors.append(f"{argument}: {problem}")
                continue
            files.append(path)
        elif glob.has_magic(argument):
            matches = sorted(Path(p) for p in glob.glob(argument, recursive=True))
            matches = [p for p in matches if p.is_file()]
            if not matches:
                errors.append(f"{argument}: pattern matches no files")
            files += matches
        else:
            errors.append(f"{argument}: no such file")
    unique = list(dict.fromkeys(p.resolve() for p in files))
    return unique, errors


def output_dir_for(path: Path, out_root: Path) -> Path:
    """``out_root/<name without audio suffixes>``, e.g. ``song.stem.mp4`` → ``out_root/song``."""
    name = path.name
    for suffix in reversed(path.suffixes):
        if suffix.lower() in AUDIO_SUFFIXES | {".stem"}:
            name = name[: -len(suffix)]
        else:
            break
    return out_root / (name or path.name)
