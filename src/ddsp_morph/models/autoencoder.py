from __future__ import annotations

import torch
from torch import nn

from ddsp_morph.dsp.core import hz_to_midi
from ddsp_morph.models.decoder import Decoder
from ddsp_morph.models.encoder import TimbreEncoder
from ddsp_morph.synths.stack import SynthStack

# Conditioning inputs this model knows how to scale: name -> channels.
INPUT_SIZES = {"f0": 1, "loudness": 1}


class DDSPAutoencoder(nn.Module):
    """Controls (f0, loudness, ...) [+ timbre z] -> decoder -> synth controls -> audio.

    Loudness is standardized with the corpus statistics, held as buffers so that a checkpoint
    carries them; f0 enters as MIDI / 127. With an ``encoder``, z comes from the batch's audio,
    unless the batch carries ``z`` itself (Shape [batch, z_dim] or [batch, n_frames, z_dim]):
    that is how interpolation, conversion and the realtime synth choose a timbre.
    """

    def __init__(
        self,
        *,
        decoder: Decoder,
        synth: SynthStack,
        conditioning: list[str],
        loudness_mean: float = -40.0,
        loudness_std: float = 15.0,
        encoder: TimbreEncoder | None = None,
    ) -> None:
        super().__init__()
        unknown = [c for c in conditioning if c not in INPUT_SIZES]
        if unknown:
            raise ValueError(
                f"conditioning: unknown inputs {unknown}; known: {sorted(INPUT_SIZES)}"
            )
        self.decoder, self.synth, self.conditioning = decoder, synth, list(conditioning)
        self.encoder = encoder
        self.register_buffer("loudness_mean", torch.tensor(float(loudness_mean)))
        self.register_buffer("loudness_std", torch.tensor(float(loudness_std)))

    def set_loudness_stats(self, mean: float, std: float) -> None:
        self.loudness_mean.fill_(mean)
        self.loudness_std.fill_(std)

    def decoder_inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        inputs = {}
        if "f0" in self.conditioning:
            inputs["f0"] = (hz_to_midi(batch["f0_hz"]) / 127.0).unsqueeze(-1)
        if "loudness" in self.conditioning:
            inputs["loudness"] = (
                (batch["loudness_db"] - self.loudness_mean) / self.loudness_std
            ).unsqueeze(-1)
        return inputs

    def latent(self, batch: dict[str, torch.Tensor], n_frames: int) -> dict[str, torch.Tensor]:
        """z for every frame: given in the batch, else encoded from its audio."""
        if "z" in batch:
            z = batch["z"]
            if z.dim() == 2:
                z = z.unsqueeze(1)
            return {"z": z.expand(-1, n_frames, -1) if z.shape[1] == 1 else z}
        assert self.encoder is not None
        return self.encoder(batch["audio"], n_frames)

    @torch.no_grad()
    def encode(self, audio: torch.Tensor, n_frames: int) -> torch.Tensor:
        """One timbre vector per clip: the posterior mean, averaged over frames. Shape [batch, z_dim]."""
        if self.encoder is None:
            raise ValueError("encode: this model has no latent (latent=none)")
        return self.encoder(audio, n_frames)["mu"].mean(dim=1)

    def forward(
        self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Args: batch with f0_hz, loudness_db Shape [batch, n_frames] (and audio, or z, when the
        model has a latent). Returns signals, controls, and the posterior (mu, logvar)."""
        inputs = self.decoder_inputs(batch)
        enc: dict[str, torch.Tensor] = {}
        if self.encoder is not None:
            enc = self.latent(batch, batch["f0_hz"].shape[1])
            inputs["z"] = enc["z"]
        raw = self.decoder(inputs)
        controls = self.synth.get_controls(raw)
        out = self.synth(
            batch["f0_hz"], controls, instrument_id=batch.get("instrument_id"), generator=generator
        )
        out.update(controls)
        out.update(enc)
        return out
