from __future__ import annotations

import torch
from torch import nn

from ddsp_morph.dsp.noise import filtered_noise


class FilteredNoise(nn.Module):
    """Filtered noise; see ``dsp.noise.filtered_noise``."""

    def __init__(self, *, hop_length: int, n_bands: int) -> None:
        super().__init__()
        self.hop_length, self.n_bands = hop_length, n_bands

    def forward(
        self,
        magnitudes: torch.Tensor,
        *,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        tail: torch.Tensor | None = None,
        return_tail: bool = False,
    ):
        return filtered_noise(
            magnitudes,
            hop_length=self.hop_length,
            noise=noise,
            generator=generator,
            tail=tail,
            return_tail=return_tail,
        )
