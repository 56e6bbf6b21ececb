from __future__ import annotations

import torch
from torch import nn

from ddsp_morph.dsp.oscillators import HarmonicState, harmonic_synth


class HarmonicSynth(nn.Module):
    """Harmonic oscillator bank; see ``dsp.oscillators.harmonic_synth``."""

    def __init__(
        self, *, sample_rate: int, hop_length: int, n_harmonics: int, upsample: str = "hann"
    ) -> None:
        super().__init__()
        self.sample_rate, self.hop_length = sample_rate, hop_length
        self.n_harmonics, self.upsample = n_harmonics, upsample

    def forward(
        self,
        f0_hz: torch.Tensor,
        amplitude: torch.Tensor,
        harmonic_distribution: torch.Tensor,
        state: HarmonicState | None = None,
        return_state: bool = False,
    ):
        return harmonic_synth(
            f0_hz,
            amplitude,
            harmonic_distribution,
            sample_rate=self.sample_rate,
            hop_length=self.hop_length,
            upsample=self.upsample,
            state=state,
            return_state=return_state,
        )
