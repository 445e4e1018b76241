"""Reason codes: why a file, a track or a candidate pair was not mined.

One :class:`Reason` member per code. The catalog stores the plain string (``Reason`` is a
``StrEnum``, so ``Reason.DRIFT == "drift"``); docs/mining.md's "Reason codes" table explains
each stage's codes at length.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Reason"]


class Reason(StrEnum):
    """Every rejection and file-problem code the pipeline records."""

    # --- scan (a file) ---
    #: The file is empty.
    ZERO_LENGTH = "zero_length"
    #: The header is not an audio format any decoder knows.
    NOT_AUDIO = "not_audio"
    #: The audio cannot be decoded (scan), or a pair's file failed to decode (process).
    DECODE_ERROR = "decode_error"
    #: Decoding yields no audio samples (an empty or truncated stream).
    TRUNCATED = "truncated"
    #: The file cannot be read (an I/O error other than permissions).
    UNREADABLE = "unreadable"
    #: The file or folder may not be read by this user.
    PERMISSION_DENIED = "permission_denied"
    #: A FIFO, socket or device with an audio file's name: reading it could block forever.
    NOT_REGULAR_FILE = "not_regular_file"
    #: A symbolic link leads back into a folder already being walked.
    SYMLINK_LOOP = "symlink_loop"
    #: A symbolic link whose target does not exist.
    BROKEN_SYMLINK = "broken_symlink"
    #: A file name that is not valid text in the file system's encoding.
    BAD_FILENAME = "bad_filename"
    #: The file changed while it was read (retried on the next scan).
    CHANGED_DURING_SCAN = "changed_during_scan"

    # --- match (titles) ---
    #: A track with an instrumental marker and no original of the same artist and title.
    NO_COUNTERPART = "no_counterpart"
    #: Either track is longer than ``max_duration_s``.
    TOO_LONG = "too_long"
    #: The two durations differ by more than ``max_duration_diff_s``.
    DURATION_MISMATCH = "duration_mismatch"

    # --- fingerprints ---
    #: Too few instrumental hashes agree on one offset, or only briefly (another song, a remix,
    #: a time-stretched or pitch-shifted version); also a near-miss suspect that does not align.
    FINGERPRINT_MISMATCH = "fingerprint_mismatch"
    #: The "instrumental" is the mix or a copy of it (near-total agreement, or no vocals left).
    SAME_AUDIO = "same_audio"
    #: A copy of another track, or a second pair between the same two copy groups.
    DUPLICATE = "duplicate"

    # --- decide (titles, tags) ---
    #: A side's title, version or comment says a cappella / vocals only.
    A_CAPPELLA = "a_cappella"
    #: Live, remix, cover, ... on one side only.
    OTHER_VERSION = "other_version"
    #: Titles or audio contradict the roles (an a cappella or mislabelled file as instrumental).
    ROLE_MISMATCH = "role_mismatch"

    # --- process (alignment, gain, labels) ---
    #: No offset makes the two waveforms agree.
    MISALIGNED = "misaligned"
    #: The best offset drifts along the song (a speed or tempo change).
    DRIFT = "drift"
    #: The instrumental sits in the mix beyond ±``max_gain_db``.
    IMPLAUSIBLE_GAIN = "implausible_gain"
    #: The derived vocals stay below the ``no_vocals`` level.
    NO_VOCALS = "no_vocals"
    #: Too little aligned audio is left to cut one training segment.
    TOO_SHORT = "too_short"
