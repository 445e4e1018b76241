"""Training losses on masked spectrograms.

The paper's loss is the L1,1 norm of ``mask ⊙ X − Y`` (Jansson et al. 2017 eq. 1); Prétet 2018
(§4.4.2) also trains with MSE. We average instead of summing so the value does not depend on the
patch size or batch size (same minimiser, learning rate independent of the preset).

Volume balancing (Spectrogram-Channels U-Net, Oh et al. 2018) weights each source's error by the
inverse of its mean target magnitude in the batch, so a quiet source (usually the vocals) counts
as much as a loud one; the weights are normalised to average 1 and carry no gradient. The seed
only names the idea; this weighting is our reading of it.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor

LossName = Literal["l1", "mse"]


def per_source_error(masks: Tensor, mix: Tensor, targets: Tensor, loss: LossName = "l1") -> Tensor:
    """Mean error per source: ``(S,)`` from masks ``(B, S, C, F, T)``, mix ``(B, C, F, T)`` and
    targets ``(B, S, C, F, T)``."""
    diff = masks * mix.unsqueeze(1) - targets
    err = diff.abs() if loss == "l1" else diff.square()
    return err.float().mean(dim=(0, 2, 3, 4))


def volume_weights(targets: Tensor, eps: float = 1e-6) -> Tensor:
    """Per-source weights ∝ 1 / mean |Y_s|, averaging 1 (no gradient)."""
    volume = targets.detach().float().abs().mean(dim=(0, 2, 3, 4))
    inverse = 1.0 / (volume + eps)
    return inverse * (inverse.numel() / inverse.sum())


def separation_loss(
    masks: Tensor,
    mix: Tensor,
    targets: Tensor,
    *,
    loss: LossName = "l1",
    volume_balance: bool = False,
) -> tuple[Tensor, Tensor]:
    """Scalar training loss (sum over sources, as two independent networks would be trained)
    and the per-source errors it is made of."""
    errors = per_source_error(masks, mix, targets, loss)
    weighted = errors * volume_weights(targets) if volume_balance else errors
    return weighted.sum(), errors.detach()
