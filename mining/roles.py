"""Is the "instrumental" really the accompaniment? Audio checks that titles cannot make.

A title or a tag can say that a file is an a cappella; an untagged or oddly named one says
nothing, and fingerprint discovery proposes it all the same: the vocals' spectral peaks survive
in the mix, so an a cappella matches its mix about as well as an instrumental does (ratios of
0.05–0.26 for both). Once the pair is aligned and gain-matched the two roles are easy to tell
apart, because singing and accompaniment differ in where their energy sits:

* **low band** — accompaniment carries the bass and the kick drum; singing has little energy
  below ~120 Hz (a male voice's lowest fundamentals sit around 80–120 Hz, with little energy).
  A true pair leaves *vocals* with a small low-band share and an *instrumental* with a large
  one; an a cappella posing as the instrumental swaps them: its derived "vocals" are the
  accompaniment (bass and all) and the "instrumental" is thin.
* **pauses** — singing stops between phrases while the band plays on: an a cappella has many
  near-silent frames inside the song, an instrumental almost none.
* **what the instrumental leaves unexplained** — after the gain fit, the part of the placed
  instrumental the mix does *not* contain (the negative half-wave difference ``N``, relative to
  the instrumental's energy). A true instrumental is inside the mix (``N`` is masking noise);
  a mix "fitted" inside an a cappella at a tiny gain is not (its accompaniment is all ``N``).
* **gain** — a true instrumental sits in its mix within a few dB; a fitted gain far outside
  ±``max_gain_db`` means one side is not the other's accompaniment (checked before deriving).

:func:`role_features` reads all of this from the spectrograms the derivation already made, so
the checks cost a few array reductions per pair. :func:`check_role` turns them into a verdict
with the value and threshold of every check, for the catalog's evidence trail. The thresholds
are calibrated on real a cappella built from true vocal stems (MIR-1K right channel, MUSDB18
vocals) against true pairs: ``bench/role_calibration.py`` prints the margins.

Hand-written: the features are domain knowledge on top of numpy reductions; nothing to borrow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vocalmine.mining.vocals import LOW_BAND_HZ, Derived

_EPS = 1e-20


@dataclass(frozen=True)
class RoleThresholds:
    """Limits of the audio role checks (calibrated: see the module doc)."""

    #: Largest plausible |gain| (dB) of the instrumental inside its mix.
    max_gain_db: float = 12.0
    #: Upper edge (Hz) of the low band: bass and kick, little singing.
    low_band_hz: float = LOW_BAND_HZ
    #: The derived vocals' low-band share may exceed the instrumental's by at most this factor
    #: (true pairs: vocals ≪ instrumental; an a cappella as instrumental: vocals ≫ it) ...
    max_low_share_ratio: float = 1.0
    #: ... or by this factor when the instrumental's own title or tags say it is one (a
    #: thin karaoke backing without bass under a low male voice reaches 6.2 on MIR-1K).
    vouched_max_low_share_ratio: float = 8.0
    #: Largest share of the song's active frames in which the instrumental may be silent
    #: (≥ ``silence_db`` below its own loud frames) while the mix sounds.
    max_instrumental_silence: float = 0.1
    #: A frame is silent when this many dB below the side's 95th-percentile frame energy.
    silence_db: float = 30.0
    #: Largest share of the placed instrumental's energy the mix may leave unexplained.
    max_unexplained: float = 0.1


DEFAULT_ROLE_THRESHOLDS = RoleThresholds()


@dataclass(frozen=True)
class RoleFeatures:
    """The measured features of one aligned, gain-matched pair (see the module doc)."""

    vocals_low_share: float
    instrumental_low_share: float
    instrumental_silence: float
    vocals_silence: float
    unexplained: float
    vocals_dynamics_db: float = 0.0
    instrumental_dynamics_db: float = 0.0

    @property
    def low_share_ratio(self) -> float:
        """Vocals' low-band share over the instrumental's (≪ 1 for a true pair)."""
        return self.vocals_low_share / max(self.instrumental_low_share, 1e-6)

    def as_dict(self) -> dict[str, float]:
        """Plain floats for the catalog, rounded for reading."""
        return {
            "vocals_low_share": round(self.vocals_low_share, 4),
            "instrumental_low_share": round(self.instrumental_low_share, 4),
            "low_share_ratio": round(self.low_share_ratio, 3),
            "instrumental_silence": round(self.instrumental_silence, 4),
            "vocals_silence": round(self.vocals_silence, 4),
            "unexplained": round(self.unexplained, 4),
            "vocals_dynamics_db": round(self.vocals_dynamics_db, 2),
            "instrumental_dynamics_db": round(self.instrumental_dynamics_db, 2),
        }


@dataclass(frozen=True)
class Check:
    """One check of a decision: its measured value, the limit, and whether it passed."""

    name: str
    value: float
    threshold: float
    passed: bool
    rule: str

    def as_dict(self) -> dict[str, object]:
        """Plain values for the catalog's evidence trail."""
        return {
            "check": self.name,
            "value": round(float(self.value), 4),
            "threshold": self.threshold,
            "rule": self.rule,
            "passed": self.passed,
        }


def _band_energy(mag: np.ndarray, top_bin: int) -> tuple[float, float]:
    """(energy below ``top_bin``, total energy) of a ``(C, bins, frames)`` magnitude array."""
    low = float(np.einsum("cbf,cbf->", mag[:, :top_bin], mag[:, :top_bin], dtype=np.float64))
    total = float(np.einsum("cbf,cbf->", mag, mag, dtype=np.float64))
    return low, total


def _silent_share(energy: np.ndarray, active: np.ndarray, silence_db: float) -> float:
    """Share of ``active`` frames whose ``energy`` is ``silence_db`` below its loud level."""
    if not active.any():
        return 0.0
    loud = float(np.percentile(energy[active], 95))
    return float(np.mean(energy[active] < loud * 10 ** (-silence_db / 10)))


def _dynamics_db(energy: np.ndarray, active: np.ndarray) -> float:
    """Spread of frame energies over ``active`` frames: 90th over 10th percentile, in dB."""
    if not active.any():
        return 0.0
    lo, hi = np.percentile(energy[active], [10, 90])
    return float(10 * np.log10((hi + _EPS) / (lo + _EPS)))


def role_features(
    derived: Derived,
    sample_rate: int,
    n_fft: int,
    thresholds: RoleThresholds = DEFAULT_ROLE_THRESHOLDS,
) -> RoleFeatures:
    """Measure the role features of a derived pair (spectrograms at the preset's rate)."""
    top_bin = max(1, int(round(thresholds.low_band_hz * n_fft / sample_rate)))
    v_low, v_total = _band_energy(derived.vocals_mag, top_bin)
    i_low, i_total = _band_energy(derived.instr_mag, top_bin)
    e_mix, e_neg, e_instr = derived.frame_energy[[0, 2, 4]]
    active = e_mix > 1e-3 * max(float(e_mix.max(initial=0.0)), _EPS)  # within 30 dB of the peak
    return RoleFeatures(
        vocals_low_share=v_low / max(v_total, _EPS),
        instrumental_low_share=i_low / max(i_total, _EPS),
        instrumental_silence=_silent_share(e_instr, active, thresholds.silence_db),
        vocals_silence=_silent_share(derived.frame_energy[1], active, thresholds.silence_db),
        unexplained=float(e_neg.sum() / max(float(e_instr.sum()), _EPS)),
        vocals_dynamics_db=_dynamics_db(derived.frame_energy[1], active),
        instrumental_dynamics_db=_dynamics_db(e_instr, active),
    )


def check_gain(gain_db: float, thresholds: RoleThresholds = DEFAULT_ROLE_THRESHOLDS) -> Check:
    """Is the instrumental's fitted gain inside its mix plausible (|gain| ≤ ``max_gain_db``)?"""
    return Check(
        "gain_db",
        gain_db,
        thresholds.max_gain_db,
        bool(abs(gain_db) <= thresholds.max_gain_db),
        "|gain| <=",
    )


def check_role(
    features: RoleFeatures,
    thresholds: RoleThresholds = DEFAULT_ROLE_THRESHOLDS,
    *,
    vouched: bool = False,
) -> list[Check]:
    """Every role check with its value and limit; a pair passes when all of them pass.

    ``vouched``: the instrumental's title or tags say it is an instrumental, so the low-band
    rule allows more before it overrules them; an unnamed or neutrally named file (found by
    fingerprint discovery) must look like an accompaniment on its own.
    """
    t = thresholds
    low_limit = t.vouched_max_low_share_ratio if vouched else t.max_low_share_ratio
    return [
        Check(
            "low_share_ratio",
            features.low_share_ratio,
            low_limit,
            features.low_share_ratio <= low_limit,
            "vocals' / instrumental's low-band share <=",
        ),
        Check(
            "instrumental_silence",
            features.instrumental_silence,
            t.max_instrumental_silence,
            features.instrumental_silence <= t.max_instrumental_silence,
            "share of active frames with the instrumental silent <=",
        ),
        Check(
            "unexplained",
            features.unexplained,
            t.max_unexplained,
            features.unexplained <= t.max_unexplained,
            "share of the instrumental the mix does not contain <=",
        ),
    ]


def failed_detail(checks: list[Check]) -> str:
    """One line naming every failed check with its value and limit."""
    return "; ".join(
        f"{c.name} {c.value:.3g} (limit {c.rule.rsplit(' ', 1)[-1]} {c.threshold:g})"
        for c in checks
        if not c.passed
    )
