"""Library scan: walk a folder, read tags and headers, hash contents, upsert into the catalog.

The scan is incremental (a file whose size and mtime are unchanged is not read again; a file whose
stat changed but whose content hash did not is only re-stamped), marks files that disappeared as
``missing``, and records every problem (unreadable, truncated, zero-length, not audio, permission
denied, symlink loop, not a regular file, changed while scanning) as a track with
``status='error'`` and a reason code, never stopping the walk. The project's own temporary
files (``.vm-*``, ``.vocalmine-tmp``) are not part of the library.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISFIFO, S_ISSOCK

from sqlalchemy import select

from vocalmine.core.atomic import is_temp_name
from vocalmine.core.audio import AUDIO_SUFFIXES, AudioError, load_audio, probe, read_tags
from vocalmine.core.reasons import Reason
from vocalmine.storage.catalog import Catalog, Track, utcnow

HASH_CHUNK = 1 << 20
_TRACK_NUMBER = re.compile(r"^\s*\d{1,3}\s*(?:[.\-_)]\s*)?(?=\S)")
_VERSION_SUFFIX = re.compile(r"^(?P<title>.*?)\s*[(\[](?P<version>[^()\[\]]+)[)\]]\s*$")


@dataclass(frozen=True)
class FileFacts:
    """What one file yields: either catalog fields or an error reason."""

    path: str
    size: int
    mtime: float
    content_hash: str | None = None
    fields: dict[str, object] = field(default_factory=dict)
    error_reason: str | None = None
    error_detail: str | None = None


@dataclass
class ScanResult:
    """Counts of one scan, by outcome and by error reason."""

    seen: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    missing: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        """Plain counts for tables, artifacts and JSON."""
        return {
            "seen": self.seen,
            "new": self.new,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "missing": self.missing,
            "errors": dict(self.errors),
        }


def parse_filename(path: str | os.PathLike[str]) -> dict[str, str]:
    """``[NN ]Artist - Title (Version).ext`` → artist, title, version (whatever is present)."""
    stem = Path(path).stem
    stem = _TRACK_NUMBER.sub("", stem, count=1).strip()
    parsed: dict[str, str] = {}
    if " - " in stem:
        artist, title = stem.split(" - ", 1)
        parsed["artist"] = artist.strip()
    else:
        title = stem
    match = _VERSION_SUFFIX.match(title)
    if match and match.group("title").strip():
        parsed["version"] = match.group("version").strip()
    parsed["title"] = title.strip()
    return {k: v for k, v in parsed.items() if v}


def describe_file(
    path: str,
    size: int,
    mtime: float,
    hash_bytes: int = 0,
    stop: threading.Event | None = None,
) -> FileFacts:
    """Read one file's tags, header and hash; any problem becomes an error reason.

    ``stop``, once set, ends the hashing early (the scan was interrupted; the result is unused).
    """
    if size == 0:
        return FileFacts(
            path, size, mtime, None, {}, Reason.ZERO_LENGTH, f"{path}: zero-length file"
        )
    try:
        content_hash = hash_file(path, hash_bytes, stop)
        info = probe(path)
        tags = read_tags(path)
        tail = max(0.0, info.duration_s - 1.0)
        load_audio(path, offset_s=tail, duration_s=1.0)
    except PermissionError as exc:
        return FileFacts(
            path, size, mtime, None, {}, Reason.PERMISSION_DENIED, f"{path}: {exc.strerror}"
        )
    except OSError as exc:
        return FileFacts(path, size, mtime, None, {}, Reason.UNREADABLE, f"{path}: {exc.strerror}")
    except AudioError as exc:
        return FileFacts(path, size, mtime, None, {}, _audio_reason(exc.reason), str(exc))
    stat = os.stat(path)
    if stat.st_size != size or stat.st_mtime != mtime:
        return FileFacts(
            path,
            size,
            mtime,
            None,
            {},
            Reason.CHANGED_DURING_SCAN,
            f"{path}: file changed while read",
        )
    from_name = parse_filename(path)
    tag_source = "tags" if tags.get("title") else "filename"
    title = tags.get("title") or from_name.get("title")
    version = tags.get("version")
    if tag_source == "filename":
        version = version or from_name.get("version")
    fields: dict[str, object] = {
        "title": title,
        "artist": tags.get("artist") or from_name.get("artist"),
        "album": tags.get("album"),
        "version": version,
        "comment": tags.get("comment"),
        "tag_source": tag_source,
        "duration_s": info.duration_s,
        "sample_rate": info.sample_rate,
        "channels": info.channels,
        "codec": info.codec,
        "bitrate_kbps": info.bitrate_kbps,
    }
    return FileFacts(path, size, mtime, content_hash, fields)


#: Words of an :class:`AudioError` → the reason code a scan records.
_AUDIO_REASONS = (
    ("changed while reading", Reason.CHANGED_DURING_SCAN),
    ("truncated", Reason.TRUNCATED),
    ("no audio samples", Reason.TRUNCATED),
    ("symbolic link loop", Reason.SYMLINK_LOOP),
    ("broken symbolic link", Reason.BROKEN_SYMLINK),
    ("not a regular file", Reason.NOT_REGULAR_FILE),
    ("not an audio file", Reason.NOT_AUDIO),
    ("zero-length", Reason.ZERO_LENGTH),
)


def _audio_reason(words: str) -> str:
    return next((code for text, code in _AUDIO_REASONS if text in words), Reason.DECODE_ERROR)


def hash_file(
    path: str | os.PathLike[str], hash_bytes: int = 0, stop: threading.Event | None = None
) -> str:
    """BLAKE2b of the file's bytes (or its first and last ``hash_bytes`` bytes, when set);
    ``stop``, once set, ends the reading early (an interrupted scan, whose result is unused)."""
    digest = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as handle:
        if hash_bytes:
            size = os.fstat(handle.fileno()).st_size
            digest.update(size.to_bytes(8, "little"))
            digest.update(handle.read(hash_bytes))
            handle.seek(max(0, size - hash_bytes))
            digest.update(handle.read(hash_bytes))
        else:
            for chunk in iter(lambda: handle.read(HASH_CHUNK), b""):
                digest.update(chunk)
                if stop is not None and stop.is_set():
                    break
    return digest.hexdigest()


def walk_library(root: Path) -> Iterator[tuple[str, os.stat_result | None, str | None]]:
    """Yield ``(path, stat, problem)`` for each audio file, and for each folder that failed.

    Symbolic links are followed once: a link whose target was already visited is a loop.
    """
    visited: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            stat = folder.stat()
        except OSError as exc:
            yield str(folder), None, f"{Reason.UNREADABLE}: {exc.strerror}"
            continue
        key = (stat.st_dev, stat.st_ino)
        if key in visited:
            yield str(folder), None, Reason.SYMLINK_LOOP
            continue
        visited.add(key)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except PermissionError:
            yield str(folder), None, Reason.PERMISSION_DENIED
            continue
        except OSError as exc:
            yield str(folder), None, f"{Reason.UNREADABLE}: {exc.strerror}"
            continue
        for entry in entries:
            if is_temp_name(entry.name):  # partial files of a vocalmine run
                continue
            if not _utf8(entry.path):
                yield _printable(entry.path), None, Reason.BAD_FILENAME
                continue
            try:
                if entry.is_dir():
                    stack.append(Path(entry.path))
                elif entry.is_file() and Path(entry.name).suffix.lower() in AUDIO_SUFFIXES:
                    yield entry.path, entry.stat(), None
                elif entry.is_symlink() and not os.path.exists(entry.path):
                    yield entry.path, None, Reason.BROKEN_SYMLINK
                elif Path(entry.name).suffix.lower() in AUDIO_SUFFIXES:  # FIFO, socket, device
                    kind = _special_kind(entry.stat().st_mode)
                    yield (
                        entry.path,
                        None,
                        f"{Reason.NOT_REGULAR_FILE}: not a regular file ({kind})",
                    )
            except OSError as exc:
                if exc.errno == errno.ELOOP:  # a link to itself, or a cycle of links
                    yield entry.path, None, Reason.SYMLINK_LOOP
                else:
                    yield entry.path, None, f"{Reason.UNREADABLE}: {exc.strerror}"


def _special_kind(mode: int) -> str:
    """What a file that is neither a folder nor a regular file is, in words."""
    kinds = {S_ISFIFO: "FIFO", S_ISSOCK: "socket"}
    return next((name for test, name in kinds.items() if test(mode)), "device")


def _utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(path: str) -> str:
    """A file name that is not valid UTF-8, with its odd bytes shown as ``\\xNN``."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def scan_library(
    root: str | os.PathLike[str],
    catalog: Catalog,
    *,
    hash_bytes: int = 0,
    workers: int = 4,
    progress: Callable[[int, int], None] | None = None,
) -> ScanResult:
    """Scan ``root`` into ``catalog`` and return the counts; safe to re-run at any time."""
    library = Path(root).resolve()
    if not library.is_dir():
        raise FileNotFoundError(f"{library}: library folder does not exist")
    result = ScanResult()
    with catalog.session() as session:
        known = {
            t.path: (t.size, t.mtime, t.status)
            for t in session.execute(
                select(Track).where(Track.path.startswith(str(library) + os.sep))
            ).scalars()
        }
    listed = list(walk_library(library))
    seen_paths = {path for path, _, _ in listed}
    todo: list[tuple[str, int, float]] = []
    problems: list[FileFacts] = []
    for path, stat, problem in listed:
        result.seen += 1
        if problem is not None:
            reason = problem.split(":", 1)[0]
            problems.append(FileFacts(path, 0, 0.0, None, {}, reason, f"{path}: {problem}"))
            continue
        assert stat is not None
        previous = known.get(path)
        if previous and previous[:2] == (stat.st_size, stat.st_mtime) and previous[2] != "missing":
            result.unchanged += 1
            continue
        todo.append((path, stat.st_size, stat.st_mtime))

    total = len(todo)
    done = 0
    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    stop = threading.Event()
    try:
        facts_iter = pool.map(lambda item: describe_file(*item, hash_bytes, stop), todo)
        batch: list[FileFacts] = list(problems)
        for facts in facts_iter:
            batch.append(facts)
            done += 1
            if progress:
                progress(done, total)
            if len(batch) >= 200:
                _upsert(catalog, batch, result)
                batch = []
        _upsert(catalog, batch, result)
    except BaseException:  # Ctrl-C: drop the files not started, cut short those being read
        stop.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)

    with catalog.session() as session:
        for track in session.execute(
            select(Track).where(
                Track.path.startswith(str(library) + os.sep), Track.status != "missing"
            )
        ).scalars():
            if track.path not in seen_paths:
                track.status = "missing"
                track.scanned_at = utcnow()
                result.missing += 1
    return result


def _upsert(catalog: Catalog, batch: list[FileFacts], result: ScanResult) -> None:
    if not batch:
        return
    with catalog.session() as session:
        existing = {
            t.path: t
            for t in session.execute(
                select(Track).where(Track.path.in_([f.path for f in batch]))
            ).scalars()
        }
        for facts in batch:
            track = existing.get(facts.path)
            if track is None:
                track = Track(path=facts.path)
                session.add(track)
                result.new += 1
            elif facts.content_hash and track.content_hash == facts.content_hash:
                result.unchanged += 1
            else:
                result.updated += 1
            track.size = facts.size
            track.mtime = facts.mtime
            track.scanned_at = utcnow()
            if facts.error_reason:
                result.errors[facts.error_reason] += 1
                track.status = "error"
                track.error_reason = facts.error_reason
                track.error_detail = facts.error_detail
                continue
            track.status = "ok"
            track.error_reason = None
            track.error_detail = None
            track.content_hash = facts.content_hash
            for key, value in facts.fields.items():
                setattr(track, key, value)
