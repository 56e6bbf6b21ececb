from __future__ import annotations

import torch
from torch import nn

from ddsp_morph.dsp.core import exp_sigmoid
from ddsp_morph.synths.harmonic import HarmonicSynth
from ddsp_morph.synths.noise import FilteredNoise
from ddsp_morph.synths.reverb import Reverb

NOISE_BIAS = -5.0  # start the noise quiet (as in DDSP)
# Added to a head's raw output before exp_sigmoid.
CONTROL_BIAS = {"noise_magnitudes": NOISE_BIAS}


class SynthStack(nn.Module):
    """Harmonic synth, optional filtered noise, optional reverb; built from the ``synth`` config.

    ``control_sizes`` tells the decoder which heads to grow; ``get_controls`` maps the raw head
    outputs to synth controls; ``forward`` renders them.
    """

    def __init__(
        self,
        *,
        sample_rate: int,
        hop_length: int,
        n_harmonics: int = 100,
        noise: bool = True,
        n_noise_bands: int = 65,
        reverb: bool = False,
        upsample: str = "hann",
        reverb_mode: str = "decaying_noise",
        reverb_seconds: float = 1.0,
        reverb_per_instrument: bool = False,
        n_instruments: int = 1,
    ) -> None:
        super().__init__()
        self.sample_rate, self.hop_length = sample_rate, hop_length
        self.harmonic = HarmonicSynth(
            sample_rate=sample_rate,
            hop_length=hop_length,
            n_harmonics=n_harmonics,
            upsample=upsample,
        )
        self.noise = FilteredNoise(hop_length=hop_length, n_bands=n_noise_bands) if noise else None
        self.reverb = (
            Reverb(
                sample_rate=sample_rate,
                ir_seconds=reverb_seconds,
                mode=reverb_mode,
                n_irs=n_instruments if reverb_per_instrument else 1,
            )
            if reverb
            else None
        )

    @property
    def control_sizes(self) -> dict[str, int]:
        sizes = {"amplitude": 1, "harmonic_distribution": self.harmonic.n_harmonics}
        if self.noise is not None:
            sizes["noise_magnitudes"] = self.noise.n_bands
        return sizes

    def get_controls(self, raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Raw head outputs -> synth controls: exp_sigmoid(raw + CONTROL_BIAS) per head."""
        return {
            k: exp_sigmoid(raw[k] + CONTROL_BIAS[k] if k in CONTROL_BIAS else raw[k])
            for k in self.control_sizes
        }

    def forward(
        self,
        f0_hz: torch.Tensor,
        controls: dict[str, torch.Tensor],
        *,
        instrument_id: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Args: f0_hz Shape [batch, n_frames]. Returns signals of shape [batch, n_samples]."""
        out = {
            "harmonic": self.harmonic(
                f0_hz, controls["amplitude"], controls["harmonic_distribution"]
            )
        }
        audio = out["harmonic"]
        if self.noise is not None:
            out["noise"] = self.noise(controls["noise_magnitudes"], generator=generator)
            audio = audio + out["noise"]
        out["dry"] = audio
        if self.reverb is not None:
            audio = self.reverb(audio, instrument_id)
        out["audio"] = audio
        return out
