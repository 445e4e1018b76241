"""Codecs: the codec tables, one file's encoding, writing it and measuring what the codec did.

A library file is described by a :class:`_FileSpec` (codec, rate, bitrate or Vorbis quality,
lead and trail silence, tagged or not). :func:`_render` resamples and pads the audio for it and
:func:`_write_file` encodes it (lameenc MP3, FLAC and WAV through
:func:`vocalmine.core.audio.save_audio`; MP3, AAC and Vorbis through the ``ffmpeg`` binary,
bit-exact) and returns the file's manifest facts, with the codec delay and level measured:

* lameenc MP3: :func:`mp3_codec_delay` (1105 samples, measured once per rate, channels and
  bitrate on a noise burst) and the level by least squares on the decoded file;
* ffmpeg's MP3, AAC and Vorbis: both measured on each file by cross-correlating the decoded file
  with what was written (:func:`ffmpeg_codec_delay` on a noise burst when the file is silent);
* lossless: 0 and 0 dB.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from vocalmine.core.atomic import atomic_path
from vocalmine.core.audio import AudioError, load_audio, resample, save_audio

MP3_BITRATES = (128, 160, 192, 256, 320)
# File extension of each codec; the ffmpeg-encoded ones with (muxer, encoder).
CODEC_EXT = {
    "mp3": "mp3",
    "flac": "flac",
    "wav": "wav",
    "mp3-ffmpeg": "mp3",
    "aac": "m4a",
    "vorbis": "ogg",
}
FFMPEG_CODECS = {
    "mp3-ffmpeg": ("mp3", "libmp3lame"),
    "aac": ("ipod", "aac"),
    "vorbis": ("ogg", "libvorbis"),
}
LOSSLESS = ("flac", "wav")
FFMPEG_MP3_BITRATES = (96, 128, 160, 192, 256, 320)
AAC_BITRATES = (96, 128, 160, 192, 256)
VORBIS_QUALITIES = (3, 4, 5, 6)


@dataclass
class _FileSpec:
    codec: str
    sample_rate: int
    bitrate_kbps: int | None
    lead_s: float
    trail_s: float
    tagged: bool
    quality: int | None = None  # Vorbis -q:a (variable bitrate; bitrate_kbps is None)


def _encoding(rng: np.random.Generator, codec: str, sr: int) -> tuple[int | None, int | None]:
    """(bitrate_kbps, vorbis quality) for one file; MPEG-2 rates (<= 24 kHz) cap MP3 at 160."""
    if codec in ("mp3", "mp3-ffmpeg"):
        rates = MP3_BITRATES if codec == "mp3" else FFMPEG_MP3_BITRATES
        return int(rng.choice([b for b in rates if sr > 24000 or b <= 160])), None
    if codec == "aac":
        return int(rng.choice([b for b in AAC_BITRATES if sr > 24000 or b <= 128])), None
    if codec == "vorbis":
        return None, int(rng.choice(VORBIS_QUALITIES))
    return None, None


def _render(audio: np.ndarray, sr_in: int, spec: _FileSpec) -> tuple[np.ndarray, int, int]:
    """Resample to the file's rate and pad with silence; returns (audio, lead, trail) samples."""
    x = resample(audio, sr_in, spec.sample_rate)
    lead = int(round(spec.lead_s * spec.sample_rate))
    trail = int(round(spec.trail_s * spec.sample_rate))
    c = x.shape[0]
    out = np.concatenate(
        [np.zeros((c, lead), np.float32), x, np.zeros((c, trail), np.float32)], axis=1
    )
    return out.astype(np.float32), lead, trail


@lru_cache(maxsize=32)
def mp3_codec_delay(sample_rate: int, channels: int, bitrate_kbps: int) -> int:
    """Samples by which a decoded lameenc MP3 starts late, measured on a noise burst."""
    import tempfile

    from scipy.signal import correlate

    rng = np.random.default_rng(0)
    x = np.zeros((channels, 2 * sample_rate), np.float32)
    x[:, sample_rate // 2 : sample_rate] = 0.3 * rng.standard_normal((channels, sample_rate // 2))
    with tempfile.TemporaryDirectory() as tmp:
        path = save_audio(Path(tmp) / "probe.mp3", x, sample_rate, bitrate_kbps=bitrate_kbps)
        y, _ = load_audio(path)
    cc = correlate(y[0], x[0], mode="full", method="fft")
    return int(np.argmax(cc)) - (x.shape[1] - 1)


@lru_cache(maxsize=64)
def ffmpeg_codec_delay(
    codec: str, sample_rate: int, channels: int, bitrate_kbps: int | None, quality: int | None
) -> int:
    """Samples by which an ffmpeg-encoded file decodes late (:func:`load_audio`), measured on a
    noise burst; the fallback for a file whose own audio is silent."""
    import tempfile

    rng = np.random.default_rng(0)
    x = np.zeros((channels, 2 * sample_rate), np.float32)
    x[:, sample_rate // 2 : sample_rate] = 0.3 * rng.standard_normal((channels, sample_rate // 2))
    spec = _FileSpec(codec, sample_rate, bitrate_kbps, 0.0, 0.0, False, quality)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"probe.{CODEC_EXT[codec]}"
        _ffmpeg_encode(path, x, spec, None)
        y, _ = load_audio(path)
    return _measure_delay(y, x, sample_rate)


def _decoded_gain_db(decoded: np.ndarray, written: np.ndarray, delay: int) -> float:
    """Least-squares level of ``decoded`` (``delay`` samples late) against ``written``, in dB."""
    start = max(0, -delay)  # a file that starts early (negative delay) lost its first samples
    n = min(written.shape[1] - start, decoded.shape[1] - delay - start)
    w = written[:, start : start + n].astype(np.float64)
    d = decoded[:, start + delay : start + delay + n].astype(np.float64)
    gain = float((w * d).sum() / max(float((w * w).sum()), 1e-12))
    return round(20 * np.log10(max(gain, 1e-9)), 3) + 0.0  # never "-0.0"


def _codec_gain_db(path: Path, written: np.ndarray, delay: int) -> float:
    """Least-squares level of the decoded file against what was written, in dB (0 if lossless)."""
    if path.suffix in (".flac", ".wav"):
        return 0.0
    decoded, _ = load_audio(path)
    return _decoded_gain_db(decoded, written, delay)


def _measure_delay(decoded: np.ndarray, written: np.ndarray, sr: int, max_lag: int = 8192) -> int:
    """Samples by which ``decoded`` starts late against ``written``: the cross-correlation peak
    over the loudest 8 s of what was written, searched within ``±max_lag``."""
    from scipy.signal import correlate

    w, d = written.mean(axis=0), decoded.mean(axis=0)
    n = min(w.size, 8 * sr)
    frame = max(1, sr // 10)
    energy = np.add.reduceat(w.astype(np.float64) ** 2, np.arange(0, w.size, frame))
    window = max(1, n // frame)
    sums = np.convolve(energy, np.ones(window), mode="valid")
    start = min(int(np.argmax(sums)) * frame, w.size - n)
    ref = w[start : start + n]
    lo, hi = start - max_lag, start + n + max_lag
    seg = np.zeros(hi - lo, np.float32)
    a, b = max(lo, 0), min(hi, d.size)
    if b > a:
        seg[a - lo : b - lo] = d[a:b]
    cc = correlate(seg, ref, mode="valid", method="fft")
    return int(np.argmax(cc)) - max_lag


def _ffmpeg_encode(path: Path, audio: np.ndarray, spec: _FileSpec, tags: dict | None) -> None:
    """Encode with the ``ffmpeg`` binary (LAME MP3 with its gapless header, native AAC in .m4a,
    libvorbis in .ogg), bit-exact so one seed gives identical bytes."""
    muxer, encoder = FFMPEG_CODECS[spec.codec]
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "f32le"]
    cmd += ["-ar", str(spec.sample_rate), "-ac", str(audio.shape[0]), "-i", "-"]
    cmd += ["-map_metadata", "-1", "-fflags", "+bitexact", "-flags:a", "+bitexact"]
    cmd += ["-c:a", encoder]
    if encoder == "aac":
        cmd += ["-aac_coder", "fast"]  # the default two-loop search is 2× slower
    if spec.quality is not None:
        cmd += ["-q:a", str(spec.quality)]
    else:
        cmd += ["-b:a", f"{spec.bitrate_kbps}k"]
    for key, value in (tags or {}).items():
        cmd += ["-metadata", f"{key}={value}"]
    pcm = np.ascontiguousarray(np.clip(audio, -1.0, 1.0).T, dtype="<f4").tobytes()
    with atomic_path(path) as tmp:
        cmd += ["-f", muxer, str(tmp)]
        proc = subprocess.run(cmd, input=pcm, capture_output=True, check=False)
        if proc.returncode != 0:
            lines = proc.stderr.decode(errors="replace").strip().splitlines()
            raise AudioError(path, f"ffmpeg cannot encode {spec.codec} ({lines[-1:]})")


def _write_file(
    out: Path, rel: str, audio: np.ndarray, spec: _FileSpec, tags: dict[str, str] | None
) -> dict:
    """Encode one library file; returns its manifest facts (codec delay and level measured)."""
    path = out / rel
    if spec.codec == "aac" and audio.shape[0] == 1:
        # Dual mono: mutagen reads 2 channels from any ffmpeg-written AAC, mono or not.
        audio = np.repeat(audio, 2, axis=0)
    tags = tags if spec.tagged else None
    delay, gain_db = 0, 0.0
    if spec.codec in FFMPEG_CODECS:
        _ffmpeg_encode(path, audio, spec, tags)
        decoded, _ = load_audio(path)
        if float(np.abs(audio).max()) > 1e-4:
            delay = _measure_delay(decoded, audio, spec.sample_rate)
            gain_db = _decoded_gain_db(decoded, audio, delay)
        else:  # nothing to correlate (a silent stem): the codec's delay on a noise burst
            delay = ffmpeg_codec_delay(
                spec.codec, spec.sample_rate, audio.shape[0], spec.bitrate_kbps, spec.quality
            )
    else:
        bitrate = spec.bitrate_kbps or 320
        save_audio(path, audio, spec.sample_rate, bitrate_kbps=bitrate, tags=tags)
        if spec.codec == "mp3":
            delay = mp3_codec_delay(spec.sample_rate, audio.shape[0], bitrate)
            gain_db = _codec_gain_db(path, audio, delay)
    facts = {
        "path": rel,
        "codec": spec.codec,
        "bitrate_kbps": spec.bitrate_kbps,
        "sample_rate": spec.sample_rate,
        "channels": int(audio.shape[0]),
        "duration_s": round(audio.shape[1] / spec.sample_rate, 6),
        "lead_silence_s": round(spec.lead_s, 6),
        "trail_silence_s": round(spec.trail_s, 6),
        "codec_delay_samples": delay,
        "codec_gain_db": gain_db,
        "tagged": spec.tagged,
        "tags": dict(tags) if tags else {},
    }
    if spec.quality is not None:
        facts["vorbis_quality"] = spec.quality
    return facts


__all__: Sequence[str] = (
    "CODEC_EXT",
    "FFMPEG_CODECS",
    "LOSSLESS",
    "ffmpeg_codec_delay",
    "mp3_codec_delay",
)
