"""Streaming audio in and out, so separation memory does not grow with the song's length.

``core.audio.load_audio`` decodes a whole file at once; separation of an hour-long recording
must not. Reading goes through libsndfile's seekable block reads where it knows the format and
through an ``ffmpeg`` pipe (32-bit float PCM on stdout) for everything else. Writing streams into
a temporary file beside the target and renames it into place only when the stem is complete, so an
interrupted run never leaves a truncated stem under the final name. WAV/FLAC go through
libsndfile: WAV as 32-bit float by default (no conversion cost, no clipping of stems that
exceed full scale, so they sum to the input exactly), FLAC as 24-bit PCM; MP3 is piped to an
``ffmpeg`` libmp3lame encoder, whose LAME/Info header carries the encoder delay and padding, so
a decoded stem starts at the input's first sample and has its exact length (lameenc writes no
such header: its stems decoded 1105 samples late and over a thousand too long). Integer
formats (FLAC, MP3) clip above full scale; the writer records the peak so the caller can say so.
"""

from __future__ import annotations

import contextlib
import os
import queue
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Literal

import numpy as np
import soundfile as sf

from vocalmine.core.atomic import commit_temp, temp_beside
from vocalmine.core.audio import (
    SNDFILE_SUFFIXES,
    AudioError,
    ffmpeg_decode_command,
    ffmpeg_error,
    ffmpeg_mp3_command,
    file_problem,
    probe,
    require_ffmpeg,
    set_mp3_length,
    sndfile_open_error,
)

OutputFormat = Literal["wav", "flac", "mp3"]
MP3_RATES = {8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000}
WRITE_FRAMES = 1 << 16


class AudioStream:
    """A decoded input read in consecutive blocks of ``(channels, samples)`` float32 audio."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        problem = file_problem(self.path)
        if problem is not None:
            raise AudioError(self.path, problem)
        self._sndfile: sf.SoundFile | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.frames: int | None = None
        self._stat = self.path.stat()
        if self.path.suffix.lower() in SNDFILE_SUFFIXES:
            try:
                self._sndfile = sf.SoundFile(self.path)
            except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
                raise sndfile_open_error(self.path, exc) from exc
            self.sample_rate = int(self._sndfile.samplerate)
            self.channels = int(self._sndfile.channels)
            self.frames = int(self._sndfile.frames)
            self.duration_s = self.frames / self.sample_rate
            if self.frames <= 0:
                raise AudioError(self.path, "no audio samples (empty or truncated file)")
        else:
            self._open_ffmpeg()

    def _open_ffmpeg(self) -> None:
        require_ffmpeg(self.path)
        info = probe(self.path)
        self.sample_rate, self.channels, self.duration_s = (
            info.sample_rate,
            info.channels,
            info.duration_s,
        )
        cmd = ffmpeg_decode_command(self.path, channels=self.channels, sample_rate=self.sample_rate)
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def read(self, frames: int) -> np.ndarray:
        """Up to ``frames`` samples per channel; fewer at the end, none after it."""
        if self._sndfile is not None:
            try:
                block = self._sndfile.read(frames, dtype="float32", always_2d=True).T
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise sndfile_open_error(self.path, exc, self._stat) from exc
        else:
            assert self._proc is not None and self._proc.stdout is not None
            data = self._proc.stdout.read(frames * self.channels * 4)
            usable = len(data) - len(data) % (4 * self.channels)
            block = np.frombuffer(data[:usable], dtype="<f4").reshape(-1, self.channels).T
            if len(data) == 0:
                self._check_ffmpeg()
        if not np.all(np.isfinite(block)):
            raise AudioError(self.path, "decoded samples are not finite")
        return np.ascontiguousarray(block, dtype=np.float32)

    def _check_ffmpeg(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        code = self._proc.wait()
        if code != 0:
            raise ffmpeg_error(self.path, self._proc.stderr.read(), code)

    def blocks(self, size: int) -> Iterator[np.ndarray]:
        """Consecutive non-overlapping blocks of ``size`` samples (the last may be shorter)."""
        total = 0
        while True:
            block = self.read(size)
            if block.shape[1] == 0:
                break
            total += block.shape[1]
            yield block
        if total == 0:
            raise AudioError(self.path, "no audio samples (empty or truncated file)")

    def close(self) -> None:
        """Release the file handle or the decoder process."""
        if self._sndfile is not None:
            self._sndfile.close()
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            for pipe in (self._proc.stdout, self._proc.stderr):
                if pipe is not None:
                    pipe.close()

    def __enter__(self) -> AudioStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class StemWriter:
    """Stream a stem into ``path``: a temp file beside it, renamed into place by :meth:`commit`."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        sample_rate: int,
        channels: int,
        *,
        subtype: str | None = None,
        bitrate_kbps: int = 320,
        expected_frames: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.format: OutputFormat = self.path.suffix.lower().lstrip(".")  # type: ignore[assignment]
        if self.format not in ("wav", "flac", "mp3"):
            raise AudioError(self.path, f"cannot write format {self.path.suffix or '(none)'}")
        if self.format == "mp3" and (sample_rate not in MP3_RATES or channels > 2):
            raise AudioError(
                self.path,
                f"MP3 cannot hold {channels} channels at {sample_rate} Hz; use wav or flac",
            )
        #: Whether the format stores integers, which clip at full scale; ``peak`` is then the
        #: largest absolute sample written (for the caller's warning), else 0.
        self.clips = self.format == "mp3" or (subtype or "").startswith("PCM")
        self.peak = 0.0
        self.frames = 0  #: samples per channel written so far
        if self.format == "mp3":
            require_ffmpeg(self.path, "to write MP3")
        self._tmp = temp_beside(self.path, ".part")
        self._sndfile: sf.SoundFile | None = None
        self._mp3: subprocess.Popen[bytes] | None = None
        self._mp3_log: IO[bytes] | None = None
        if self.format == "mp3":
            self._mp3_log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by _end_encoder
            # Its own session: a terminal's Ctrl-C reaches this process, which aborts the
            # encoder, instead of killing it under a write (a broken pipe, not an interrupt).
            self._mp3 = subprocess.Popen(
                ffmpeg_mp3_command(self._tmp, sample_rate, channels, bitrate_kbps),
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=self._mp3_log,
                start_new_session=True,
            )
        else:
            fmt = "WAV" if self.format == "wav" else "FLAC"
            if subtype is None:
                subtype = "FLOAT" if fmt == "WAV" else "PCM_24"
            width = {"PCM_16": 2, "PCM_24": 3}.get(subtype, 4)
            frames = expected_frames if expected_frames is not None else sample_rate * 3600 * 4
            if fmt == "WAV" and frames * channels * width > 2**32 - 2**20:
                fmt = "RF64"  # plain WAV stops at 4 GiB; RF64 is WAV's 64-bit extension
            if self.format == "flac" and subtype not in ("PCM_16", "PCM_24"):
                subtype = "PCM_24"
            self.clips = subtype.startswith("PCM")
            self._sndfile = sf.SoundFile(
                self._tmp,
                "w",
                samplerate=sample_rate,
                channels=channels,
                format=fmt,
                subtype=subtype,
            )

    def write(self, audio: np.ndarray) -> None:
        """Append ``(channels, samples)`` audio.

        Interleaved :data:`WRITE_FRAMES` at a time: the small temporaries are reused by the
        allocator, where one interleaved copy of a 48-s block would be fresh pages each time.
        """
        if self.clips and audio.size:
            self.peak = max(self.peak, float(np.abs(audio).max()))
        self.frames += audio.shape[-1]
        for start in range(0, audio.shape[-1], WRITE_FRAMES):
            part = audio[:, start : start + WRITE_FRAMES].T
            if self._sndfile is not None:
                try:
                    self._sndfile.write(np.ascontiguousarray(part))
                except (sf.LibsndfileError, RuntimeError, AssertionError) as exc:
                    raise self._write_error(exc) from exc
            else:
                assert self._mp3 is not None and self._mp3.stdin is not None
                pcm = np.clip(part, -1.0, 1.0).astype("<f4")
                try:
                    self._mp3.stdin.write(pcm.tobytes())
                except BrokenPipeError:
                    self._end_encoder()  # raises its one-line reason

    def commit(self) -> Path:
        """Finish the file and move it to its final name (mode as a new file would get)."""
        self._finish()
        return commit_temp(self._tmp, self.path)

    def abort(self) -> None:
        """Drop the partial file (the MP3 encoder is killed, not flushed)."""
        if self._mp3 is not None:
            self._mp3.kill()
        with contextlib.suppress(AudioError, OSError, RuntimeError):  # dropped anyway
            self._finish()
        self._tmp.unlink(missing_ok=True)

    def _finish(self) -> None:
        if self._sndfile is not None:
            handle, self._sndfile = self._sndfile, None
            try:
                handle.close()
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise self._write_error(exc) from exc
        if self._mp3 is not None:
            self._end_encoder()

    def _write_error(self, exc: Exception) -> Exception:
        """The true cause of a failed libsndfile write, which says only "System error.": the
        system's own error from a probe write to the partial file (ENOSPC, EDQUOT, EIO, ...),
        as an :class:`OSError` without a file name (the caller names the input song; the partial
        file's name is an internal one), else an :class:`AudioError`."""
        try:
            with open(self._tmp, "ab") as probe:
                probe.write(bytes(1 << 16))
                probe.flush()
                os.fsync(probe.fileno())
        except OSError as cause:
            return OSError(cause.errno, cause.strerror)
        reason = getattr(exc, "error_string", None) or str(exc) or type(exc).__name__
        return AudioError(self.path, f"cannot write it ({reason})")

    def _end_encoder(self) -> None:
        """Close the encoder's input and wait for it to write the header; an encoder that
        failed (disk full, killed) is an :class:`AudioError` with ffmpeg's last line."""
        assert self._mp3 is not None and self._mp3_log is not None
        encoder, log, self._mp3, self._mp3_log = self._mp3, self._mp3_log, None, None
        try:
            if encoder.stdin is not None:
                encoder.stdin.close()
        except BrokenPipeError:
            pass  # its code and message below say why
        code = encoder.wait()
        log.seek(0)
        lines = log.read().decode(errors="replace").strip().splitlines()
        log.close()
        if code != 0:
            reason = lines[-1] if lines else f"exit status {code}"
            raise AudioError(self.path, f"ffmpeg cannot encode MP3 ({reason})")
        try:
            set_mp3_length(self._tmp, self.frames)
        except AudioError as exc:
            raise AudioError(self.path, exc.reason) from exc


class WriteBehind:
    """Runs writes on one background thread so disk I/O overlaps the next block's separation.

    At most ``depth`` pending writes are queued (bounded memory); the first error is raised by
    the next :meth:`put` or by :meth:`close`.
    """

    def __init__(self, depth: int = 2) -> None:
        self._queue: queue.Queue[tuple[Callable[..., None], tuple[object, ...]] | None] = (
            queue.Queue(depth)
        )
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="stem-writer", daemon=True)
        self._thread.start()

    def put(self, function: Callable[..., None], *args: object) -> None:
        """Queue ``function(*args)``."""
        if self._error is not None:
            raise self._error
        self._queue.put((function, args))

    def close(self) -> None:
        """Wait for every queued write; re-raise the first failure."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:
                try:
                    item[0](*item[1])
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    self._error = exc
