"""Baseline systems for an evaluation: SiSEC's MIX lower bound, the IRM oracle upper bound
(Prétet 2018 §4.1), and a trained separator wrapped as a system, with what identifies each
(:class:`separation.scoring.ScoreStore` reuses stored scores only for the same identity)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import torch

from vocalmine.separation.eval_datasets import EvalTrack, System
from vocalmine.separation.masks import istft, stft
from vocalmine.training.models.base import SOURCES, SeparationModel


def mix_baseline(track: EvalTrack) -> dict[str, np.ndarray]:
    """SiSEC's MIX: every estimate is the mixture / 2 (mask 0.5, Prétet 2018 eq. 4.3)."""
    half = track.mixture / 2
    return {source: half.copy() for source in SOURCES}


def irm_oracle(n_fft: int = 4096, hop: int = 1024, power: float = 1.0) -> System:
    """IRM oracle (Prétet 2018 eq. 4.1–4.2): ``|S_j|^p / sum_k |S_k|^p`` on the mixture's STFT."""

    def separate(track: EvalTrack) -> dict[str, np.ndarray]:
        mix = stft(torch.from_numpy(track.mixture), n_fft, hop)
        powers = {
            s: stft(torch.from_numpy(track.references[s]), n_fft, hop).abs() ** power
            for s in SOURCES
        }
        total = sum(powers.values()) + torch.finfo(torch.float32).eps
        length = track.mixture.shape[1]
        return {s: istft(mix * (powers[s] / total), n_fft, hop, length).numpy() for s in SOURCES}

    return separate


def separator_system(separator: Any) -> System:
    """A :class:`separation.separate.Separator` as an evaluation system."""

    def separate(track: EvalTrack) -> dict[str, np.ndarray]:
        return separator.separate_array(track.mixture, track.sample_rate)

    return separate


def separator_identity(separator: Any) -> str:
    """What decides a separator's output: its model's spec and weights (hashed), its
    post-processing and chunking settings."""
    return f"model {model_fingerprint(separator.model)}; {separator.post!r}; {separator.chunks!r}"


def model_fingerprint(model: SeparationModel) -> str:
    """SHA-256 of a model's spec and weights: equal exactly when the model computes the same."""
    digest = hashlib.sha256(json.dumps(model.spec(), sort_keys=True, default=str).encode())
    for name, tensor in model.state_dict().items():
        data = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name} {data.dtype} {tuple(tensor.shape)}".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def baseline_systems(
    irm_n_fft: int = 4096, irm_hop: int = 1024
) -> tuple[dict[str, System], dict[str, str]]:
    """The MIX and IRM1 oracle baselines and their descriptions."""
    systems: dict[str, System] = {"MIX": mix_baseline, "IRM1": irm_oracle(irm_n_fft, irm_hop)}
    descriptions = {
        "MIX": "lower bound: both estimates are the mixture / 2",
        "IRM1": f"upper bound: ideal ratio mask of the true stems, n_fft {irm_n_fft} hop {irm_hop}",
    }
    return systems, descriptions
