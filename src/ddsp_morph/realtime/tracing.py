"""TorchScript export of the streaming synth: a block of controls (and a timbre z) in, a block of
audio out, every state (GRU, phase, noise tail, reverb delay line) held inside the module.
The file loads with ``torch.jit.load`` in a process that never imports ddsp_morph."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from ddsp_morph.dsp.noise import filtered_noise
from ddsp_morph.dsp.oscillators import (
    HarmonicState,
    harmonic_synth,
    normalize_distribution,
    remove_above_nyquist,
)
from ddsp_morph.dsp.reverb import PartitionedConvolver
from ddsp_morph.models.autoencoder import DDSPAutoencoder


class StreamingSynth(nn.Module):
    """forward(f0_hz [k], loudness_db [k], z [z_dim]) -> audio [k * hop]; k = frames_per_block.
    With ``voices`` = V > 1, a batch of independent voices, each its own state:
    forward(f0_hz [V, k], loudness_db [V, k], z [V, z_dim]) -> audio [V, k * hop].

    The same computation as ``StreamingEngine`` written without Python-side state, so that it
    traces: the reverb's delay line shifts by one partition per block instead of a ring index.
    """

    def __init__(
        self,
        model: DDSPAutoencoder,
        frames_per_block: int = 1,
        instrument_id: int = 0,
        voices: int = 1,
        reverb: bool = True,
    ) -> None:
        """``reverb=False``: the voices dry (a polyphonic synth puts one reverb on their sum)."""
        super().__init__()
        if model.extra_inputs:
            raise ValueError(
                f"conditioning: this model also reads {model.extra_inputs}; the exported "
                "synth takes f0 and loudness only (train with conditioning=f0_loud)"
            )
        model = model.eval()
        self.model = model  # its decoder_inputs scales f0 and loudness as in training
        self.frames = int(frames_per_block)
        self.hop = model.synth.hop_length
        self.block = self.frames * self.hop
        self.z_dim = model.encoder.z_dim if model.encoder is not None else 0
        k = model.synth.harmonic.n_harmonics
        v = self.voices = int(voices)
        self.register_buffer("hidden", torch.zeros(1, v, model.decoder.gru.hidden_size))
        self.register_buffer("phase", torch.zeros(v, dtype=torch.float64))
        self.register_buffer("prev_f0", torch.zeros(v))
        self.register_buffer("prev_amps", torch.zeros(v, k))
        self.register_buffer("started", torch.zeros(v))
        self.has_noise = model.synth.noise is not None
        ir_size = 2 * (model.synth.noise.n_bands - 1) if self.has_noise else 2
        self.register_buffer("noise_tail", torch.zeros(v, ir_size - 1))
        self.has_reverb = model.synth.reverb is not None and reverb
        if self.has_reverb:
            rv = model.synth.reverb
            with torch.no_grad():
                ir = rv.impulse_response()
                wet, dry = rv.wet_dry()
                idx = instrument_id if rv.n_irs > 1 else 0
                ir, wet, dry = ir[idx : idx + 1], wet[idx], dry[idx]
            spectra = PartitionedConvolver(ir, self.block).ir_spectra
        else:
            wet, dry = torch.tensor(0.0), torch.tensor(1.0)
            spectra = torch.zeros(1, 1, self.block + 1, dtype=torch.complex64)
        self.register_buffer("ir_spectra", spectra)
        self.register_buffer("delay_line", torch.zeros_like(spectra).repeat(v, 1, 1))
        self.register_buffer("previous", torch.zeros(v, self.block))
        self.register_buffer("wet", wet.detach().reshape(1))
        self.register_buffer("dry", dry.detach().reshape(1))

    def forward(
        self, f0_hz: torch.Tensor, loudness_db: torch.Tensor, z: torch.Tensor
    ) -> torch.Tensor:
        v = self.voices
        state = (
            self.hidden, self.phase, self.prev_f0, self.prev_amps, self.started,
            self.noise_tail, self.delay_line, self.previous,
        )  # fmt: skip
        audio, new = self._step(
            f0_hz.reshape(v, self.frames), loudness_db.reshape(v, self.frames), z, None, state
        )
        for buffer, value in zip(state, new, strict=True):
            buffer.copy_(value)
        return audio[0] if v == 1 else audio

    @torch.no_grad()
    def play(
        self,
        voices: torch.Tensor,
        f0_hz: torch.Tensor,
        loudness_db: torch.Tensor,
        z: torch.Tensor,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The voices ``voices`` (indices, LongTensor [n]) only, in one batch: f0_hz,
        loudness_db [n, k], z [n, z_dim], noise [n, k * hop] (None: drawn) -> audio
        [n, k * hop]; the other voices' state is kept (eager mode: the polyphonic reference)."""
        n = voices.shape[0]
        state = (
            self.hidden[:, voices], self.phase[voices], self.prev_f0[voices],
            self.prev_amps[voices], self.started[voices], self.noise_tail[voices],
            self.delay_line[voices], self.previous[voices],
        )  # fmt: skip
        audio, new = self._step(
            f0_hz.reshape(n, self.frames), loudness_db.reshape(n, self.frames), z, noise, state
        )
        self.hidden[:, voices] = new[0]
        for buffer, value in zip(
            (self.phase, self.prev_f0, self.prev_amps, self.started, self.noise_tail,
             self.delay_line, self.previous),
            new[1:],
            strict=True,
        ):  # fmt: skip
            buffer[voices] = value
        return audio

    @torch.no_grad()
    def reset_voice(self, voice: int) -> None:
        for buffer in (
            self.phase, self.prev_f0, self.prev_amps, self.started, self.noise_tail,
            self.delay_line, self.previous,
        ):  # fmt: skip
            buffer[voice] = 0
        self.hidden[:, voice] = 0

    def _step(
        self,
        f0: torch.Tensor,
        loudness_db: torch.Tensor,
        z: torch.Tensor,
        noise: torch.Tensor | None,
        state: tuple[torch.Tensor, ...],
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """One block of ``f0.shape[0]`` voices from their state; returns (audio, new state)."""
        hidden, phase, prev_f0, prev_amps, started_f, noise_tail, delay_line, previous = state
        v = f0.shape[0]
        inputs = self.model.decoder_inputs(
            {"f0_hz": f0, "loudness_db": loudness_db, "loudness_ref": self.model.loudness_mean}
        )
        if self.z_dim:
            inputs["z"] = z.reshape(v, 1, self.z_dim).expand(v, self.frames, self.z_dim)
        raw, hidden = self.model.decoder(inputs, hidden, return_hidden=True)
        controls = self.model.synth.get_controls(raw)
        amplitude, dist = controls["amplitude"], controls["harmonic_distribution"]
        first = (
            amplitude
            * normalize_distribution(
                remove_above_nyquist(f0, dist, sample_rate=self.model.synth.harmonic.sample_rate)
            )
        )[:, 0]
        started = started_f > 0
        h_state = HarmonicState(
            phase,
            torch.where(started, prev_f0, f0[:, 0]),
            torch.where(started.unsqueeze(-1), prev_amps, first),
        )
        audio, new_h = harmonic_synth(
            f0,
            amplitude,
            dist,
            sample_rate=self.model.synth.harmonic.sample_rate,
            hop_length=self.hop,
            upsample=self.model.synth.harmonic.upsample,
            state=h_state,
            return_state=True,
        )
        if self.has_noise:
            filtered, noise_tail = filtered_noise(
                controls["noise_magnitudes"],
                hop_length=self.hop,
                noise=noise,
                tail=noise_tail,
                return_tail=True,
            )
            audio = audio + filtered
        if self.has_reverb:
            spec = torch.fft.rfft(torch.cat([previous, audio], dim=-1))
            delay_line = torch.cat([spec.unsqueeze(1), delay_line[:, :-1]], dim=1)
            wet = torch.fft.irfft((delay_line * self.ir_spectra).sum(dim=1), 2 * self.block)[
                ..., self.block :
            ]
            previous = audio
            audio = self.dry * audio + self.wet * wet
        new = (
            hidden, new_h.phase, new_h.f0_hz, new_h.amplitudes, torch.ones_like(started_f),
            noise_tail, delay_line, previous,
        )  # fmt: skip
        return audio, new


def trace_synth(
    model: DDSPAutoencoder, frames_per_block: int = 1, instrument_id: int = 0, voices: int = 1
) -> torch.jit.ScriptModule:
    """The streaming synth traced for a fixed block (and number of voices), its state back at
    silence."""
    module = StreamingSynth(model, frames_per_block, instrument_id, voices)
    lead = () if voices == 1 else (voices,)
    f0 = torch.full((*lead, frames_per_block), 220.0)
    loud = torch.full((*lead, frames_per_block), -40.0)
    z = torch.zeros(*lead, max(1, module.z_dim))
    state = {k: v.clone() for k, v in module.named_buffers()}  # the stream's state lives in buffers
    with torch.no_grad(), warnings.catch_warnings():
        # Shape checks and chunk counts become constants: right for a fixed block size.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(module, (f0, loud, z), check_trace=False)
    with torch.no_grad():  # tracing ran one block: start from silence again
        for name, buffer in traced.named_buffers():
            buffer.copy_(state[name])
    for p in traced.parameters():
        p.requires_grad_(False)
    return traced


def export_run(run, out: Path, *, frames_per_block: int = 1, instrument_id: int = 0) -> Path:
    """Trace the streaming synth of a loaded run and save it (TorchScript)."""
    traced = trace_synth(run.model, frames_per_block, instrument_id)
    out.parent.mkdir(parents=True, exist_ok=True)
    traced.save(str(out))
    return out
