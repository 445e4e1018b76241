"""Audio input and output: decode, resample, encode, probe headers, read and write tags.

libsndfile (soundfile) decodes WAV/FLAC/OGG/MP3; anything else (AAC, M4A, stem MP4, ...) goes
through an ``ffmpeg`` subprocess. Resampling uses soxr (high quality). Tags are read and written
with mutagen. Every failure is an :class:`AudioError` whose message is one line naming the file
and the reason.

Two MP3 encoders, on purpose. :func:`save_audio` uses lameenc, which writes no gapless header:
its files decode 1105 samples late (576 of LAME's encoder delay + 529 of the decoder's) and up
to a frame too long, like many MP3s in the wild, which is what the generated test libraries
want. Separated stems must line up with their input, so they are encoded by ffmpeg's
libmp3lame (:func:`ffmpeg_mp3_command`), whose LAME/Info header records the encoder delay and
padding: ffmpeg and libsndfile (mpg123) then decode exactly the input's samples, from sample 0.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import lameenc
import mutagen
import numpy as np
import soundfile as sf
import soxr
from mutagen.flac import FLAC
from mutagen.id3 import COMM, ID3, TALB, TIT2, TPE1, TXXX, ID3NoHeaderError
from mutagen.wave import WAVE

from vocalmine.core.atomic import atomic_path

SNDFILE_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff"}
AUDIO_SUFFIXES = SNDFILE_SUFFIXES | {".m4a", ".mp4", ".aac", ".opus", ".wma", ".ape", ".wv"}


class AudioError(Exception):
    """A file that cannot be read or written; ``str()`` is ``"<path>: <reason>"``."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = " ".join(str(reason).split())
        super().__init__(f"{self.path}: {self.reason}")


def file_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot be read as an audio file, in words; None when it is a non-empty
    regular file. Said as the system sees it: a symbolic link loop, a broken link, a FIFO or
    a device (not a regular file), a missing file, an empty one."""
    import errno
    import stat

    file = Path(path)
    try:
        info = file.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop"
        if exc.errno == errno.ENOENT and file.is_symlink():
            return "broken symbolic link"
        return "no such file" if exc.errno == errno.ENOENT else (exc.strerror or str(exc))
    if not stat.S_ISREG(info.st_mode):
        kinds = {stat.S_ISFIFO: "FIFO", stat.S_ISSOCK: "socket", stat.S_ISDIR: "folder"}
        kind = next((name for test, name in kinds.items() if test(info.st_mode)), "device")
        return f"not a regular file ({kind})"
    if info.st_size == 0:
        return "zero-length file"
    return None


def _check_file(file: Path) -> None:
    problem = file_problem(file)
    if problem is not None:
        raise AudioError(file, problem)


@dataclass(frozen=True)
class AudioInfo:
    """Header facts of an audio file."""

    duration_s: float
    sample_rate: int
    channels: int
    codec: str
    bitrate_kbps: int | None


def _resample_frames(frames: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """soxr's high-quality filter on frame-major ``(samples, channels)`` audio, its own layout."""
    return soxr.resample(frames, sr_in, sr_out, quality="HQ")


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample along the last axis with soxr's high-quality filter."""
    if sr_in == sr_out:
        return audio
    data = np.ascontiguousarray(np.atleast_2d(audio).T)
    out = _resample_frames(data, sr_in, sr_out).T.astype(np.float32, copy=False)
    return out if audio.ndim == 2 else out[0]


#: Integer PCM read as integers and scaled here: libsndfile's own float conversion of 16-bit
#: WAV is ten times slower than the read itself. Scaling by the full-scale power of two gives
#: the same float32 values libsndfile does (``tests/test_audio.py``).
INTEGER_READS = {"PCM_16": ("int16", 2.0**-15), "PCM_24": ("int32", 2.0**-31)}


def _read_float(handle: sf.SoundFile, frames: int) -> np.ndarray:
    """``frames`` frames (all when -1) of an open file as float32 ``(samples, channels)``."""
    if handle.subtype not in INTEGER_READS:
        return handle.read(frames, dtype="float32", always_2d=True)
    dtype, scale = INTEGER_READS[handle.subtype]
    out = handle.read(frames, dtype=dtype, always_2d=True).astype(np.float32)
    out *= np.float32(scale)
    return out


def require_ffmpeg(path: str | os.PathLike[str], why: str = "to decode this format") -> None:
    """Raise :class:`AudioError` for ``path`` when ffmpeg is not on the PATH."""
    if shutil.which("ffmpeg") is None:
        raise AudioError(path, f"needs ffmpeg {why}, and ffmpeg is not installed")


def ffmpeg_decode_command(
    path: str | os.PathLike[str],
    *,
    stream: int = 0,
    pcm: str = "f32le",
    offset_s: float = 0.0,
    duration_s: float | None = None,
    channels: int | None = None,
    sample_rate: int | None = None,
) -> list[str]:
    """The one ffmpeg command line that decodes audio stream ``stream`` of ``path`` to raw
    interleaved PCM on stdout: ``pcm`` is ``"f32le"`` (32-bit float) or ``"s16le"`` (16-bit)."""
    cmd = ["ffmpeg", "-nostdin", "-v", "error"]
    if offset_s:
        cmd += ["-ss", f"{offset_s:.6f}"]
    cmd += ["-i", str(path)]
    if duration_s is not None:
        cmd += ["-t", f"{duration_s:.6f}"]
    cmd += ["-map", f"0:a:{stream}", "-f", pcm, "-acodec", f"pcm_{pcm}"]
    if channels is not None:
        cmd += ["-ac", str(channels)]
    if sample_rate is not None:
        cmd += ["-ar", str(sample_rate)]
    return [*cmd, "-"]


def ffmpeg_mp3_command(
    path: str | os.PathLike[str], sample_rate: int, channels: int, bitrate_kbps: int = 320
) -> list[str]:
    """The ffmpeg command line that encodes raw interleaved float32 PCM from stdin into the
    MP3 file ``path`` at ``bitrate_kbps`` (CBR) with a LAME/Info (gapless) header, which ffmpeg
    writes once the stream has ended: ``path`` must be a seekable file."""
    return [
        "ffmpeg",
        "-nostdin",
        "-v",
        "error",
        "-y",
        "-f",
        "f32le",
        "-ar",
        str(sample_rate),
        "-ac",
        str(channels),
        "-i",
        "pipe:0",
        "-c:a",
        "libmp3lame",
        "-b:a",
        f"{int(bitrate_kbps)}k",
        "-compression_level",
        "2",  # LAME's -q 2, as lameenc's set_quality(2)
        "-write_xing",
        "1",
        "-f",
        "mp3",
        str(path),
    ]


def _crc16_arc(data: bytes) -> int:
    """CRC-16/ARC (polynomial 0x8005, reflected, initial 0): the LAME tag's checksum."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def set_mp3_length(path: str | os.PathLike[str], samples: int) -> None:
    """Make the LAME/Info header of the MP3 file ``path`` say it holds ``samples`` samples per
    channel: the end padding is set to the frames' samples less the encoder delay and
    ``samples``, and the tag's checksum recomputed.

    ffmpeg's muxer writes the padding from its packet durations, which at some lengths is a few
    dozen samples short (a 48 kHz stream of 144017 samples decoded 30 samples too long); the
    frame count and the encoder delay it writes are right (``tests/test_audio.py``).
    """
    file = Path(path)
    with open(file, "r+b") as handle:
        head = handle.read(10)
        start = 0
        if head[:3] == b"ID3":  # ID3v2: a syncsafe size, and a footer when flagged
            size = sum((head[6 + i] & 0x7F) << (7 * (3 - i)) for i in range(4))
            start = 10 + size + (10 if head[5] & 0x10 else 0)
        handle.seek(start)
        frame = bytearray(handle.read(400))
        if len(frame) < 200 or frame[0] != 0xFF or frame[1] & 0xE0 != 0xE0:
            raise AudioError(file, "no MPEG audio frame where the gapless header should be")
        mpeg1 = (frame[1] >> 3) & 3 == 3
        mono = frame[3] >> 6 == 3
        side = (17 if mono else 32) if mpeg1 else (9 if mono else 17)
        tag = 4 + (0 if frame[1] & 1 else 2) + side  # header, its CRC if any, side info
        if frame[tag : tag + 4] not in (b"Info", b"Xing"):
            raise AudioError(file, "no LAME/Info (gapless) header in the first frame")
        flags = int.from_bytes(frame[tag + 4 : tag + 8], "big")
        if not flags & 1:
            raise AudioError(file, "the gapless header has no frame count")
        frames = int.from_bytes(frame[tag + 8 : tag + 12], "big")
        lame = tag + 8 + 4 * bool(flags & 1) + 4 * bool(flags & 2) + 100 * bool(flags & 4)
        lame += 4 * bool(flags & 8)
        delay = int.from_bytes(frame[lame + 21 : lame + 24], "big") >> 12
        padding = frames * (1152 if mpeg1 else 576) - delay - samples
        if not 0 <= padding < 4096:
            raise AudioError(file, f"gapless header: {frames} frames cannot hold {samples} samples")
        frame[lame + 21 : lame + 24] = ((delay << 12) | padding).to_bytes(3, "big")
        frame[lame + 34 : lame + 36] = _crc16_arc(bytes(frame[: lame + 34])).to_bytes(2, "big")
        handle.seek(start)
        handle.write(frame[: lame + 36])


def sndfile_open_error(
    path: str | os.PathLike[str], exc: Exception, before: os.stat_result | None = None
) -> AudioError:
    """The :class:`AudioError` for a file libsndfile cannot open or read, with the true cause.

    A file whose size or time changed since ``before`` (its stat when reading began) is
    "changed while reading" (a download or copy still in progress); a failed seek is a file
    whose data ends before its header says ("truncated"). libsndfile says "File does not exist"
    of data it cannot parse (a text file named ``.mp3``); the caller has just found the file,
    so that is reported as what it is: no audio of that format in it.
    """
    reason = getattr(exc, "error_string", None) or str(exc)
    if before is not None:
        try:
            now = os.stat(path)
        except OSError:
            now = None
        if now is None or (now.st_size, now.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            return AudioError(path, "changed while reading (still being written or copied?)")
    if any(word in reason.lower() for word in ("seek", "lost sync", "unexpected end")):
        return AudioError(path, "truncated: the audio data ends before its header says")
    if "does not exist" in reason:
        reason = f"no {Path(path).suffix.lstrip('.').upper()} audio found in it"
    return AudioError(path, f"not audio, or damaged: cannot decode it ({reason.rstrip('.')})")


def ffmpeg_error(path: str | os.PathLike[str], stderr: bytes, code: object = "error") -> AudioError:
    """The :class:`AudioError` for a failed ffmpeg decode: its last stderr line, or ``code``."""
    lines = stderr.decode(errors="replace").strip().splitlines()
    return AudioError(path, f"ffmpeg cannot decode it ({lines[-1] if lines else code})")


def ffmpeg_decode(
    path: str | os.PathLike[str],
    channels: int,
    *,
    stream: int = 0,
    pcm: str = "f32le",
    offset_s: float = 0.0,
    duration_s: float | None = None,
    remix: bool = False,
    sample_rate: int | None = None,
) -> np.ndarray:
    """Decode with :func:`ffmpeg_decode_command`; float32 frame-major ``(samples, channels)``
    (16-bit PCM scaled by 2**-15). ``channels`` is the stream's own count, or with ``remix`` the
    count ffmpeg mixes it to; ``sample_rate``, when given, is the rate ffmpeg resamples it to."""
    require_ffmpeg(path)
    cmd = ffmpeg_decode_command(
        path,
        stream=stream,
        pcm=pcm,
        offset_s=offset_s,
        duration_s=duration_s,
        channels=channels if remix else None,
        sample_rate=sample_rate,
    )
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0:
        raise ffmpeg_error(path, proc.stderr)
    if pcm == "s16le":
        frames = np.frombuffer(proc.stdout, dtype="<i2").reshape(-1, channels)
        return frames.astype(np.float32) / np.float32(32768.0)
    return np.frombuffer(proc.stdout, dtype="<f4").reshape(-1, channels).copy()


def load_audio(
    path: str | os.PathLike[str],
    sr: int | None = None,
    mono: bool = False,
    offset_s: float = 0.0,
    duration_s: float | None = None,
) -> tuple[np.ndarray, int]:
    """Decode a file to float32 ``(channels, samples)``, optionally mono and resampled to ``sr``.

    Decoders deliver interleaved ``(samples, channels)`` frames; the check, downmix and
    resampling run on that layout and the result is transposed once, at the end (a channel mean
    over the transposed view was the slowest step of loading a song).
    """
    file = Path(path)
    _check_file(file)
    if file.suffix.lower() in SNDFILE_SUFFIXES:
        before = file.stat()
        try:
            with sf.SoundFile(file) as handle:
                native = handle.samplerate
                handle.seek(int(round(offset_s * native)))
                frames = -1 if duration_s is None else int(round(duration_s * native))
                frames_first = _read_float(handle, frames)
        except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
            raise sndfile_open_error(file, exc, before) from exc
    else:
        require_ffmpeg(file)
        info = probe(file)
        native = info.sample_rate
        frames_first = ffmpeg_decode(file, info.channels, offset_s=offset_s, duration_s=duration_s)
    if frames_first.size == 0:
        raise AudioError(file, "no audio samples (empty or truncated file)")
    if not np.all(np.isfinite(frames_first)):
        raise AudioError(file, "decoded samples are not finite")
    if mono and frames_first.shape[1] > 1:
        channels = frames_first.shape[1]
        frames_first = frames_first @ np.full((channels, 1), 1.0 / channels, dtype=np.float32)
    if sr is not None and sr != native:
        frames_first = _resample_frames(frames_first, native, sr)
        native = sr
    return np.ascontiguousarray(frames_first.T, dtype=np.float32), native


def _encode_mp3(audio: np.ndarray, sr: int, bitrate_kbps: int) -> bytes:
    """lameenc MP3 without a gapless header (see the module's note)."""
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(int(bitrate_kbps))
    encoder.set_in_sample_rate(sr)
    encoder.set_channels(audio.shape[0])
    encoder.set_quality(2)
    pcm = (np.clip(audio.T, -1.0, 1.0) * 32767.0).round().astype("<i2")
    return bytes(encoder.encode(pcm.tobytes()) + encoder.flush())


def save_audio(
    path: str | os.PathLike[str],
    audio: np.ndarray,
    sr: int,
    *,
    bitrate_kbps: int = 320,
    tags: dict[str, str] | None = None,
    subtype: str | None = None,
) -> Path:
    """Write ``(channels, samples)`` audio as WAV, FLAC or MP3 (by suffix), tagged, atomically.

    MP3 is lameenc's, with no gapless header (decoded 1105 samples late; see the module's note).
    """
    target = Path(path)
    data = np.atleast_2d(np.asarray(audio, dtype=np.float32))
    suffix = target.suffix.lower()
    with atomic_path(target) as tmp:
        if suffix == ".mp3":
            tmp.write_bytes(_encode_mp3(data, sr, bitrate_kbps))
        elif suffix in (".wav", ".flac"):
            fmt = "WAV" if suffix == ".wav" else "FLAC"
            sf.write(tmp, data.T, sr, format=fmt, subtype=subtype or "PCM_16")
        else:
            raise AudioError(target, f"cannot write format {suffix or '(no suffix)'}")
        if tags:
            write_tags(tmp, tags)
    return target


def write_tags(path: str | os.PathLike[str], tags: dict[str, str]) -> None:
    """Write title/artist/album/version/comment tags in the file's native tag format."""
    file = Path(path)
    suffix = file.suffix.lower()
    values = {k: str(v) for k, v in tags.items() if v is not None}
    if suffix == ".flac":
        meta = FLAC(file)
        for key, value in values.items():
            meta[key] = value
        meta.save()
        return
    if suffix == ".mp3":
        try:
            id3 = ID3(file)
        except ID3NoHeaderError:
            id3 = ID3()
        _fill_id3(id3, values)
        id3.save(file)
        return
    if suffix == ".wav":
        meta = WAVE(file)
        if meta.tags is None:
            meta.add_tags()
        _fill_id3(meta.tags, values)
        meta.save()
        return
    raise AudioError(file, f"cannot write tags to {suffix} files")


def _fill_id3(id3: ID3, values: dict[str, str]) -> None:
    frames = {"title": TIT2, "artist": TPE1, "album": TALB}
    for key, value in values.items():
        if key in frames:
            id3.add(frames[key](encoding=3, text=value))
        elif key == "comment":
            id3.add(COMM(encoding=3, lang="eng", desc="", text=value))
        else:
            id3.add(TXXX(encoding=3, desc=key.upper(), text=value))


def _kind_by_content(file: Path) -> list[type]:
    """mutagen's file classes for what the first bytes of ``file`` say it is (mutagen weighs the
    suffix too, and a FLAC file named ``.wav`` fails as a broken WAV)."""
    from mutagen.mp3 import MP3
    from mutagen.oggvorbis import OggVorbis

    with open(file, "rb") as handle:
        head = handle.read(12)
    kinds: list[type] = []
    if head.startswith(b"fLaC"):
        kinds.append(FLAC)
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        kinds.append(WAVE)
    if head.startswith(b"OggS"):
        kinds.append(OggVorbis)
    if head.startswith(b"ID3") or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        kinds.append(MP3)
    return kinds


def _mutagen_file(file: Path, easy: bool = False) -> object:
    """``mutagen.File`` by content over suffix: by suffix first, then by the first bytes."""
    try:
        return mutagen.File(file, easy=easy)
    except OSError:
        raise
    except Exception:
        kinds = _kind_by_content(file)
        if not kinds:
            raise
        return mutagen.File(file, easy=easy, options=kinds)


def _first(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    text = getattr(value, "text", value)
    if isinstance(text, list | tuple):
        text = text[0] if text else None
    return None if text is None else str(text).strip() or None


def read_tags(path: str | os.PathLike[str]) -> dict[str, str]:
    """Title, artist, album, version and comment from any tag format mutagen knows."""
    file = Path(path)
    try:
        meta = _mutagen_file(file)
    except OSError as exc:
        raise AudioError(file, exc.strerror or str(exc)) from exc
    except Exception as exc:  # mutagen raises many types for broken headers
        raise AudioError(file, f"unreadable tags ({exc})") from exc
    if meta is None or meta.tags is None:
        return {}
    tags = meta.tags
    found: dict[str, str | None] = {}
    if isinstance(tags, ID3) or hasattr(tags, "getall"):
        found["title"] = _first(tags.get("TIT2"))
        found["artist"] = _first(tags.get("TPE1"))
        found["album"] = _first(tags.get("TALB"))
        comments = tags.getall("COMM")
        found["comment"] = _first(comments[0]) if comments else None
        for frame in tags.getall("TXXX"):
            if frame.desc.lower() in ("version", "subtitle"):
                found["version"] = _first(frame)
        found["version"] = found.get("version") or _first(tags.get("TIT3"))
    else:
        keys = {
            "title": ("title", "\xa9nam"),
            "artist": ("artist", "\xa9ART", "albumartist", "aART"),
            "album": ("album", "\xa9alb"),
            "version": ("version", "subtitle"),
            "comment": ("comment", "description", "\xa9cmt"),
        }
        present = {str(k).lower(): k for k in tags.keys()}  # noqa: SIM118 (Vorbis tags iterate as pairs)
        for name, candidates in keys.items():
            for key in candidates:
                if key.lower() in present:
                    found[name] = _first(tags[present[key.lower()]])
                    break
    return {k: v for k, v in found.items() if v}


def probe(path: str | os.PathLike[str]) -> AudioInfo:
    """Duration, rate, channels, codec and bitrate from the header, without decoding the audio."""
    file = Path(path)
    _check_file(file)
    try:
        meta = _mutagen_file(file)
    except OSError:
        raise
    except Exception as exc:  # mutagen raises many types for broken headers
        raise AudioError(file, f"unreadable header ({exc})") from exc
    info = getattr(meta, "info", None)
    if info is None:
        try:
            sfinfo = sf.info(file)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise AudioError(file, "not an audio file (unknown format)") from exc
        return AudioInfo(
            sfinfo.duration, sfinfo.samplerate, sfinfo.channels, sfinfo.format.lower(), None
        )
    codec = type(meta).__name__.lower().replace("easy", "")
    if codec == "mp4":
        codec = getattr(info, "codec", "mp4") or "mp4"
    bitrate = getattr(info, "bitrate", None)
    sample_rate = int(getattr(info, "sample_rate", 0) or 0)
    channels = int(getattr(info, "channels", 0) or 0)
    duration = float(getattr(info, "length", 0.0) or 0.0)
    if sample_rate <= 0 or channels <= 0 or duration <= 0:
        raise AudioError(file, "header has no audio stream (zero duration, rate or channels)")
    return AudioInfo(
        duration, sample_rate, channels, codec, int(round(bitrate / 1000)) if bitrate else None
    )
