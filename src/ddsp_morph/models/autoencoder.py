from __future__ import annotations

import torch
from torch import nn

from ddsp_morph.dsp.core import hz_to_midi
from ddsp_morph.dsp.descriptors import CONDITIONING_KEYS, conditioning_transform
from ddsp_morph.dsp.loudness import sounding_level
from ddsp_morph.models.decoder import Decoder
from ddsp_morph.models.encoder import TimbreEncoder
from ddsp_morph.synths.stack import SynthStack

# Conditioning inputs this model knows how to scale: name -> channels (mfcc: n_mfcc).
KNOWN_INPUTS = ("f0", *CONDITIONING_KEYS)
# Inputs standardized with stored corpus statistics (f0 enters as MIDI / 127; loudness keeps
# its own scalar buffers).
CONTEXT_INPUTS = tuple(k for k in CONDITIONING_KEYS if k != "loudness")


def input_sizes_for(conditioning: list[str], *, n_mfcc: int = 20) -> dict[str, int]:
    """The decoder's input sizes for a conditioning set; a clear error for an unknown name."""
    unknown = [c for c in conditioning if c not in KNOWN_INPUTS]
    if unknown:
        raise ValueError(f"conditioning: unknown inputs {unknown}; known: {sorted(KNOWN_INPUTS)}")
    if "f0" not in conditioning:
        raise ValueError(f"conditioning: {conditioning} must include f0")
    return {c: n_mfcc if c == "mfcc" else 1 for c in conditioning}


LOUDNESS_REFERENCES = ("corpus", "clip")


class Standardize(nn.Module):
    """One context input: batch[key] -> conditioning_transform -> (x - mean) / std, with the
    corpus statistics held as buffers (a checkpoint carries them)."""

    def __init__(self, name: str, key: str, channels: int) -> None:
        super().__init__()
        self.name, self.key = name, key
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Returns Shape [batch, n_frames, channels]."""
        if self.key not in batch:
            raise ValueError(f"batch: the conditioning input {self.name!r} needs {self.key!r}")
        x = conditioning_transform(self.name, batch[self.key])
        if x.dim() == 2:
            x = x.unsqueeze(-1)
        return (x - self.mean) / self.std


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
        n_mfcc: int = 20,
        lfo_rates: tuple[float, ...] = (),
        loudness_reference: str = "corpus",
    ) -> None:
        super().__init__()
        sizes = input_sizes_for(list(conditioning), n_mfcc=n_mfcc)
        self.decoder, self.synth, self.conditioning = decoder, synth, list(conditioning)
        self.encoder = encoder
        # Free-running oscillators the decoder reads (sin, cos per rate, a random phase per
        # clip): a source of periodic movement that z can switch on, for a timbre whose
        # movement the performance does not carry (a steady clarinet line played as violin).
        self.lfo_rates = tuple(float(r) for r in lfo_rates)
        if self.lfo_rates and decoder.input_names.count("lfo") != 1:
            raise ValueError("lfo_rates: the decoder needs an 'lfo' input of 2 per rate")
        # What the loudness input is measured from: "corpus" (the corpus mean: the decoder hears
        # the performance's absolute level) or "clip" (each clip's own sounding level: the
        # decoder hears the dynamics only and takes the level from z, so a conversion plays at
        # the target instrument's level, not the source phrase's; the clip's level is the
        # batch's "sounding_db" where the dataset gives it). A batch's "loudness_ref"
        # (Shape [batch] or a scalar) overrides either: the streaming synth passes the corpus
        # mean, the level a live performance is heard from.
        if loudness_reference not in LOUDNESS_REFERENCES:
            raise ValueError(
                f"loudness_reference: expected one of {LOUDNESS_REFERENCES}, got {loudness_reference!r}"
            )
        self.loudness_reference = loudness_reference
        self.register_buffer("loudness_mean", torch.tensor(float(loudness_mean)))
        self.register_buffer("loudness_std", torch.tensor(float(loudness_std)))
        # Context inputs: mean and std on the conditioning_transform scale, from stats.json.
        self.context_inputs = [c for c in self.conditioning if c in CONTEXT_INPUTS]
        self.context_norms = nn.ModuleDict(
            {c: Standardize(c, CONDITIONING_KEYS[c], sizes[c]) for c in self.context_inputs}
        )

    def set_loudness_stats(self, mean: float, std: float) -> None:
        self.loudness_mean.fill_(mean)
        self.loudness_std.fill_(std)

    def set_stats(self, stats: dict) -> None:
        """Loudness and context-input statistics from a corpus's stats.json."""
        self.set_loudness_stats(stats["loudness_db_mean"], stats["loudness_db_std"])
        known = stats.get("conditioning", {})
        for c in self.context_inputs:
            if c not in known:
                raise ValueError(
                    f"stats.json: no statistics for the conditioning input {c!r}; "
                    "run `make data` to refresh the corpus"
                )
            norm = self.context_norms[c]
            if len(known[c]["mean"]) != norm.mean.numel():
                raise ValueError(
                    f"stats.json: {c} has {len(known[c]['mean'])} channels, the model "
                    f"{norm.mean.numel()}"
                )
            norm.mean.copy_(torch.tensor(known[c]["mean"]))
            norm.std.copy_(torch.tensor(known[c]["std"]))

    @property
    def extra_inputs(self) -> list[str]:
        """Decoder inputs beyond f0, loudness and z (the realtime synth plays none of them)."""
        return [*self.context_inputs, *(["lfo"] if self.lfo_rates else [])]

    def lfo(
        self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """sin and cos of 2 pi rate t + phase per rate. Shape [batch, n_frames, 2 * n_rates].
        The phases (Shape [batch, n_rates], in turns) come from ``batch["lfo_phase"]``; when it
        is missing they are drawn (from ``generator`` if given; zero in eval mode without one)
        and stored there, so every decoder pass over one batch sees the same oscillators."""
        f0 = batch["f0_hz"]
        rates = torch.tensor(self.lfo_rates, device=f0.device)
        if "lfo_phase" not in batch:
            shape = (f0.shape[0], len(rates))
            if generator is not None:
                phase = torch.rand(shape, generator=generator).to(f0.device)
            elif self.training:
                phase = torch.rand(shape, device=f0.device)
            else:
                phase = torch.zeros(shape, device=f0.device)
            batch["lfo_phase"] = phase
        t = torch.arange(f0.shape[1], device=f0.device) * (
            self.synth.hop_length / self.synth.sample_rate
        )
        angle = 2 * torch.pi * (t[None, :, None] * rates + batch["lfo_phase"][:, None, :])
        return torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1)

    def decoder_inputs(
        self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Each conditioning input on the decoder's scale. Shape [batch, n_frames, channels]."""
        inputs = {}
        if self.lfo_rates:
            inputs["lfo"] = self.lfo(batch, generator)
        if "f0" in self.conditioning:
            inputs["f0"] = (hz_to_midi(batch["f0_hz"]) / 127.0).unsqueeze(-1)
        if "loudness" in self.conditioning:
            inputs["loudness"] = (
                (batch["loudness_db"] - self.loudness_ref(batch)) / self.loudness_std
            ).unsqueeze(-1)
        for c, norm in self.context_norms.items():
            inputs[c] = norm(batch)
        return inputs

    def loudness_ref(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The level the loudness input is measured from. Shape [batch, 1] or a scalar."""
        if "loudness_ref" in batch:
            ref = torch.as_tensor(batch["loudness_ref"], dtype=batch["loudness_db"].dtype)
            return ref.reshape(-1, 1) if ref.dim() else ref
        if self.loudness_reference == "clip":
            # a training crop is measured from its whole example's level (the dataset's
            # "sounding_db"), as the whole example is when it is converted
            level = batch.get("sounding_db")
            if level is None:
                level = sounding_level(batch["loudness_db"])
            return torch.as_tensor(level, dtype=batch["loudness_db"].dtype).reshape(-1, 1)
        return self.loudness_mean

    def latent(self, batch: dict[str, torch.Tensor], n_frames: int) -> dict[str, torch.Tensor]:
        """z for every frame: given in the batch, else encoded from its audio."""
        if "z" in batch:
            z = batch["z"]
            if z.dim() == 2:
                z = z.unsqueeze(1)
            return {"z": z.expand(-1, n_frames, -1) if z.shape[1] == 1 else z}
        assert self.encoder is not None
        return self.encoder(batch["audio"], n_frames, batch.get("f0_hz"))

    @torch.no_grad()
    def encode(
        self, audio: torch.Tensor, n_frames: int, f0_hz: torch.Tensor | None = None
    ) -> torch.Tensor:
        """One timbre vector per clip: the posterior mean, averaged over frames. Shape [batch, z_dim]."""
        if self.encoder is None:
            raise ValueError("encode: this model has no latent (latent=none)")
        return self.encoder(audio, n_frames, f0_hz)["mu"].mean(dim=1)

    def forward(
        self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Args: batch with f0_hz, loudness_db Shape [batch, n_frames] (and audio, or z, when the
        model has a latent). Returns signals, controls, and the posterior (mu, logvar)."""
        inputs = self.decoder_inputs(batch, generator)
        enc: dict[str, torch.Tensor] = {}
        if self.encoder is not None:
            enc = self.latent(batch, batch["f0_hz"].shape[1])
            inputs["z"] = enc["z"]
        raw = self.decoder(inputs)
        # Under mixed precision only the decoder runs in bf16/fp16: the controls, the
        # oscillator phase and the convolutions stay float32.
        with torch.autocast(batch["f0_hz"].device.type, enabled=False):
            controls = self.synth.get_controls({k: v.float() for k, v in raw.items()})
            out = self.synth(
                batch["f0_hz"].float(),
                controls,
                instrument_id=batch.get("instrument_id"),
                generator=generator,
            )
        out.update(controls)
        out.update(enc)
        return out
