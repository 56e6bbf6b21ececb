"""A listener trained beside the model: which instrument a clip is, from its band statistics.

The conversion terms of the latent ask that a clip's performance played with another clip's
z re-encodes to that z (the timbre cycle): the encoder is the only listener. This one hears
what a listener comparing instruments hears (``dsp.spectral.band_statistics``: each mel band's
level and movement over the sounding frames), is trained on real crops only, and the
conversions are asked to be heard as the instrument whose z they were played with — the
domain-classifier term of many-to-many voice conversion (StarGAN-VC), here on statistics of a
clip, not on frames, so that what it pushes is level, spectral shape and movement.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ddsp_morph.dsp.spectral import band_statistics


class InstrumentCritic(nn.Module):
    """Logistic regression on standardized band statistics (running mean and variance of the
    real crops' features, updated with ``momentum`` per step; the first step sets them).

    Args:
        n_instruments: classes (the corpus's instruments, ``instrument_id`` order).
        mel_basis: Shape [n_bands, n_fft // 2 + 1]: the bands it hears.
        hop: the STFT hop, samples.
    """

    def __init__(
        self, n_instruments: int, mel_basis: torch.Tensor, *, hop: int, momentum: float = 0.01
    ) -> None:
        super().__init__()
        if n_instruments < 2:
            raise ValueError(f"critic: needs at least 2 instruments, got {n_instruments}")
        self.hop, self.momentum = int(hop), float(momentum)
        self.register_buffer(
            "basis", torch.as_tensor(mel_basis, dtype=torch.float32), persistent=False
        )
        n = 4 * self.basis.shape[0]
        self.register_buffer("feature_mean", torch.zeros(n))
        self.register_buffer("feature_var", torch.ones(n))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.linear = nn.Linear(n, n_instruments)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """Shape [batch, 4 * n_bands], float32 (outside autocast)."""
        with torch.autocast(audio.device.type, enabled=False):
            return band_statistics(audio.float(), self.basis, hop=self.hop)

    def logits(self, feats: torch.Tensor, *, fixed: bool = False) -> torch.Tensor:
        """``fixed``: the weights as constants (a conversion is judged, the critic not moved)."""
        x = (feats - self.feature_mean) / torch.sqrt(self.feature_var + 1e-5)
        w, b = self.linear.weight, self.linear.bias
        if fixed:
            w, b = w.detach(), b.detach()
        return F.linear(x, w, b)

    @torch.no_grad()
    def _track(self, feats: torch.Tensor) -> None:
        mean, var = feats.mean(0), feats.var(0, unbiased=False)
        if int(self.updates) == 0:
            self.feature_mean.copy_(mean)
            self.feature_var.copy_(var)
        else:
            self.feature_mean.lerp_(mean, self.momentum)
            self.feature_var.lerp_(var, self.momentum)
        self.updates += 1

    def learn(self, real: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The critic's own loss on real crops (no gradient to the audio). Returns (cross-entropy,
        accuracy)."""
        feats = self.features(real.detach())
        if self.training:
            self._track(feats)
        logits = self.logits(feats)
        labels = labels.long().reshape(-1)
        return F.cross_entropy(logits, labels), (logits.argmax(-1) == labels).float().mean()

    def judge(self, audio: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of ``target`` for ``audio`` (gradient to the audio only)."""
        return F.cross_entropy(
            self.logits(self.features(audio), fixed=True), target.long().reshape(-1)
        )
