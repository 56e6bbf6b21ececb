"""Block-by-block synthesis with every state carried: GRU hidden state, oscillator phase and
last controls, the noise filter's ringing, and the reverb's partitioned convolution. The output
of consecutive blocks equals the offline render of the same controls (and the same white
noise): what a live synth plays is what the evaluation measured."""

from __future__ import annotations

import torch

from ddsp_morph.dsp.noise import filtered_noise
from ddsp_morph.dsp.reverb import PartitionedConvolver
from ddsp_morph.models.autoencoder import DDSPAutoencoder


class StreamingEngine:
    """Args:
    model: a trained DDSPAutoencoder (put in eval mode; gradients off).
    frames_per_block: control frames per block (block = frames_per_block * hop samples).
    instrument_id: selects the reverb IR when the model holds one per instrument.
    seed: the white-noise generator's seed (the offline render with the same seed and one
        ``torch.rand`` over the whole length draws the same noise).
    """

    def __init__(
        self,
        model: DDSPAutoencoder,
        *,
        frames_per_block: int = 1,
        instrument_id: int = 0,
        seed: int = 0,
    ) -> None:
        if model.context_inputs:
            raise ValueError(
                f"conditioning: this model also reads {model.context_inputs}; the realtime "
                "synth plays f0 and loudness only (train with conditioning=f0_loud)"
            )
        self.model = model.eval()
        self.frames = int(frames_per_block)
        self.hop = model.synth.hop_length
        self.block_size = self.frames * self.hop
        self.instrument_id = torch.tensor([instrument_id])
        self.seed = seed
        self.has_latent = model.encoder is not None
        self.convolver: PartitionedConvolver | None = None
        self.wet = self.dry = None
        synth = model.synth
        if synth.reverb is not None:
            with torch.no_grad():
                ir = synth.reverb.impulse_response()
                wet, dry = synth.reverb.wet_dry()
                idx = self.instrument_id if synth.reverb.n_irs > 1 else torch.tensor([0])
                self.wet, self.dry = wet[idx].reshape(1, 1), dry[idx].reshape(1, 1)
                self.convolver = PartitionedConvolver(ir[idx] * 1.0, self.block_size)
        self.reset()

    def reset(self) -> None:
        self.hidden = None
        self.harmonic_state = None
        self.noise_tail = None
        self.generator = torch.Generator().manual_seed(self.seed)
        if self.convolver is not None:
            self.convolver.reset()

    @torch.no_grad()
    def process(
        self,
        f0_hz: torch.Tensor,
        loudness_db: torch.Tensor,
        z: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One block. f0_hz, loudness_db Shape [frames_per_block]; z Shape [z_dim] or
        [frames_per_block, z_dim] (models with a latent). Returns Shape [block_size]."""
        if f0_hz.shape != (self.frames,) or loudness_db.shape != (self.frames,):
            raise ValueError(
                f"f0_hz, loudness_db: expected shape ({self.frames},), got "
                f"{tuple(f0_hz.shape)} and {tuple(loudness_db.shape)}"
            )
        m = self.model
        batch = {"f0_hz": f0_hz.reshape(1, -1), "loudness_db": loudness_db.reshape(1, -1)}
        inputs = m.decoder_inputs(batch)
        if self.has_latent:
            if z is None:
                raise ValueError("z: this model has a latent; give a timbre vector")
            zz = z.reshape(1, -1, z.shape[-1])
            inputs["z"] = zz.expand(1, self.frames, -1) if zz.shape[1] == 1 else zz
        raw, self.hidden = m.decoder(inputs, self.hidden, return_hidden=True)
        controls = m.synth.get_controls(raw)
        audio, self.harmonic_state = m.synth.harmonic(
            batch["f0_hz"],
            controls["amplitude"],
            controls["harmonic_distribution"],
            state=self.harmonic_state,
            return_state=True,
        )
        if m.synth.noise is not None:
            n, self.noise_tail = filtered_noise(
                controls["noise_magnitudes"],
                hop_length=self.hop,
                noise=None if noise is None else noise.reshape(1, -1),
                generator=self.generator,
                tail=self.noise_tail,
                return_tail=True,
            )
            audio = audio + n
        if self.convolver is not None:
            audio = self.dry * audio + self.convolver.process(audio) * self.wet
        return audio[0]


@torch.no_grad()
def render_offline(
    model: DDSPAutoencoder,
    f0_hz: torch.Tensor,
    loudness_db: torch.Tensor,
    z: torch.Tensor | None = None,
    *,
    instrument_id: int = 0,
    seed: int = 0,
) -> torch.Tensor:
    """The same controls through the model in one pass: the reference the engine must equal."""
    batch = {
        "f0_hz": f0_hz.reshape(1, -1),
        "loudness_db": loudness_db.reshape(1, -1),
        "instrument_id": torch.tensor([instrument_id]),
    }
    if z is not None:
        batch["z"] = z.reshape(1, -1, z.shape[-1]) if z.dim() == 2 else z.reshape(1, -1)
    model.eval()
    return model(batch, generator=torch.Generator().manual_seed(seed))["audio"][0]
