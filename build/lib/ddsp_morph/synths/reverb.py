from __future__ import annotations

import math

import torch
from torch import nn

from ddsp_morph.dsp.reverb import decaying_noise_ir, reverb


class Reverb(nn.Module):
    """A learnable impulse response applied by FFT convolution, with a learnable wet/dry mix.

    Args:
        mode: ``"free"`` (every tap learned) or ``"decaying_noise"`` (fixed noise under a
            learned exponential decay).
        n_irs: 1 for a shared IR, or the number of instruments (one IR each, selected by id).
        ir_seconds: IR length.
        initial_decay: decay rate per second at initialization (T60 = 6.9 / decay).
        initial_wet: wet gain at initialization, in (0, 1).
        seed: seeds the fixed noise and the free taps' initialization.
    """

    def __init__(
        self,
        *,
        sample_rate: int,
        ir_seconds: float = 1.0,
        mode: str = "decaying_noise",
        n_irs: int = 1,
        initial_decay: float = 8.0,
        initial_wet: float = 0.2,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if mode not in ("free", "decaying_noise"):
            raise ValueError(f"mode: expected 'free' or 'decaying_noise', got {mode!r}")
        self.sample_rate, self.mode, self.n_irs = sample_rate, mode, n_irs
        ir_size = int(round(ir_seconds * sample_rate))
        gen = torch.Generator().manual_seed(seed)
        noise = torch.rand(n_irs, ir_size, generator=gen) * 2.0 - 1.0
        noise[:, 0] = 0.0  # the dry path carries the direct sound
        inv_softplus = math.log(math.expm1(initial_decay))
        self.mix_logit = nn.Parameter(
            torch.full((n_irs,), math.log(initial_wet / (1.0 - initial_wet)))
        )
        if mode == "free":
            t = torch.arange(ir_size) / sample_rate
            self.taps = nn.Parameter(noise * torch.exp(-initial_decay * t) * 0.1)
        else:
            self.register_buffer("noise", noise * 0.1)
            self.decay_raw = nn.Parameter(torch.full((n_irs,), inv_softplus))

    def impulse_response(self) -> torch.Tensor:
        """Shape [n_irs, ir_size], before the wet gain."""
        if self.mode == "free":
            return self.taps
        decay = torch.nn.functional.softplus(self.decay_raw)
        return decaying_noise_ir(self.noise, decay, sample_rate=self.sample_rate)

    def wet_dry(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Shape [n_irs] each; wet + dry = 1."""
        wet = torch.sigmoid(self.mix_logit)
        return wet, 1.0 - wet

    def forward(
        self, audio: torch.Tensor, instrument_id: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Args: audio Shape [batch, n_samples]; instrument_id Shape [batch] (needed when n_irs > 1)."""
        ir = self.impulse_response()
        wet, dry = self.wet_dry()
        if self.n_irs > 1:
            if instrument_id is None:
                raise ValueError(
                    "instrument_id: required when the reverb holds one IR per instrument"
                )
            ir, wet, dry = ir[instrument_id], wet[instrument_id], dry[instrument_id]
        else:
            ir, wet, dry = ir, wet.expand(audio.shape[0]), dry.expand(audio.shape[0])
        return reverb(audio, ir, wet=wet.unsqueeze(-1), dry=dry.unsqueeze(-1))
