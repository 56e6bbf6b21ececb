"""A TorchScript file that nn~ (Max/MSP, Pure Data) opens as it is.

nn~ loads a scripted module and reads its method contract: ``get_methods()``, per method a
buffer ``<method>_params`` = [in channels, in ratio, out channels, out ratio] and the lists
``<method>_input_labels`` / ``<method>_output_labels``; ``get_attributes()`` and the sample
rate (``get_sample_rate``). It calls a method with [batch, channels, n] at the host's rate and
any buffer size n. This module implements that contract directly (the ``nn-tilde`` package
would do the same, but it pins torch 2.5).

``audio``: your instrument in (its f0, level and voicing tracked as the live audio-in mode
does: ``realtime.tracker``, scripted) and morph; the timbre-transferred audio out. Its
latency adds the tracker's lag (half its window: ~10 ms for the default corpus's range).

``forward``: three audio-rate inputs — f0 (Hz), loudness (dB, the training feature's scale),
morph (0..1 along the path between the instruments' centroids, slerp) — and the synthesized
audio out. The host's samples are gathered into model frames (one frame = ``hop * ratio``
host samples; the controls of a frame are the mean over its samples), each frame is run
through the traced streaming synth (GRU, phase, noise and reverb state inside) and
upsampled to the host rate by a polyphase FIR. Latency: one frame plus the FIR's half length
(8 ms + 0.49 ms at 48 kHz).

Voices: in Max's ``mc.nn~`` every channel is a batch element, and here every batch element is
an independent voice with its own state (GRU, phases, noise tail, reverb, fifos): one
traced synth runs all ``voices`` of the export together (a batch), so a chord costs one
call per frame. A batch of one plays the single-voice synth (the one ``audio`` also plays);
a batch larger than the export's voices is refused. Channels above the batch are silent.
"""

from pathlib import Path
from typing import List  # noqa: UP035 - TorchScript reads these annotations

import numpy as np
import torch
from torch import nn

from ddsp_morph.config import group_defaults
from ddsp_morph.dsp.resample import lowpass_taps
from ddsp_morph.errors import DDSPMorphError

INPUT_LABELS = [
    "(signal) f0 in Hz",
    "(signal) loudness in dB (the corpus's scale, about -80..0)",
    "(signal) morph 0..1 between the instruments",
]
OUTPUT_LABELS = ["(signal) audio"]
AUDIO_INPUT_LABELS = ["(signal) your instrument", "(signal) morph 0..1 between the instruments"]


class NNTildeSynth(nn.Module):
    forward_input_labels: List[str]  # noqa: UP006
    forward_output_labels: List[str]  # noqa: UP006
    audio_input_labels: List[str]  # noqa: UP006
    audio_output_labels: List[str]  # noqa: UP006
    instruments: List[str]  # noqa: UP006

    def __init__(
        self,
        synth: torch.jit.ScriptModule,
        *,
        host_rate: int,
        model_rate: int,
        hop: int,
        z_dim: int,
        path: torch.Tensor,
        centroids: torch.Tensor,
        instruments: list[str],
        follower: nn.Module,
        axes: torch.Tensor | None = None,
        voices_synth: torch.jit.ScriptModule | None = None,
        voices: int = 1,
    ) -> None:
        super().__init__()
        if host_rate % model_rate:
            raise DDSPMorphError(
                f"rate: {host_rate} Hz is not a multiple of the model's {model_rate} Hz "
                "(use 48000, 32000 or 16000)"
            )
        self.synth = synth
        self.ratio = host_rate // model_rate
        self.hop = hop
        self.frame = hop * self.ratio
        self.host_rate = host_rate
        self.z_dim = z_dim
        self.register_buffer("forward_params", torch.tensor([3, 1, 1, 1]))
        self.forward_input_labels = INPUT_LABELS
        self.forward_output_labels = OUTPUT_LABELS
        self.instruments = list(instruments)
        self.register_buffer("path", path.float())  # [n_points, max(1, z_dim)]
        self.register_buffer("centroids", centroids.float())  # [n_instruments, max(1, z_dim)]
        # the XY pad: the latent's first two principal axes (Neutone's knobs), [2, max(1, z_dim)]
        self.register_buffer(
            "axes", torch.zeros(2, path.shape[1]) if axes is None else axes.float()
        )
        h = torch.from_numpy(lowpass_taps(self.ratio)).float()
        self.register_buffer("fir", h.flip(0).reshape(1, 1, -1))
        self.register_buffer("fir_state", torch.zeros(1, 1, len(h) - 1))
        self.register_buffer("in_fifo", torch.zeros(3, 0))
        self.register_buffer("out_fifo", torch.zeros(self.frame))  # one frame of latency
        # the audio method: the input brought to the model rate, then tracked
        self.follower = follower
        self.register_buffer("audio_params", torch.tensor([2, 1, 1, 1]))
        self.audio_input_labels = AUDIO_INPUT_LABELS
        self.audio_output_labels = OUTPUT_LABELS
        self.register_buffer("down_fir", (h / self.ratio).flip(0).reshape(1, 1, -1))
        self.register_buffer("down_state", torch.zeros(1, 1, len(h) - 1))
        self.register_buffer("audio_fifo", torch.zeros(4, 0))
        self.register_buffer("audio_out_fifo", torch.zeros(self.frame))
        # mc.nn~: a batch of independent voices (``voices_synth``, traced for ``voices``)
        self.voices = int(voices)
        self.voices_synth = voices_synth if voices_synth is not None else synth
        self.register_buffer("v_in_fifo", torch.zeros(self.voices, 3, 0))
        self.register_buffer("v_out_fifo", torch.zeros(self.voices, self.frame))
        self.register_buffer("v_fir_state", torch.zeros(self.voices, 1, len(h) - 1))

    @torch.jit.export
    def get_methods(self) -> List[str]:  # noqa: UP006
        return ["forward", "audio"]

    @torch.jit.export
    def get_attributes(self) -> List[str]:  # noqa: UP006
        return []

    @torch.jit.export
    def get_buffer_attributes(self) -> List[str]:  # noqa: UP006
        return []

    @torch.jit.export
    def is_buffer_empty(self, buffer_name: str) -> bool:
        return True

    @torch.jit.export
    def get_sample_rate(self) -> int:
        return self.host_rate

    @torch.jit.export
    def set_sample_rate(self, sample_rate: int) -> None:
        if sample_rate != self.host_rate:
            raise RuntimeError("this export runs at the rate it was made for (see its .json)")

    @torch.jit.export
    def get_instruments(self) -> List[str]:  # noqa: UP006
        return self.instruments

    @torch.jit.export
    def get_voices(self) -> int:
        return self.voices

    @torch.jit.export
    def reset(self) -> None:
        self.fir_state.zero_()
        self.in_fifo = torch.zeros(3, 0)
        self.out_fifo = torch.zeros(self.frame)
        self.down_state.zero_()
        self.audio_fifo = torch.zeros(4, 0)
        self.audio_out_fifo = torch.zeros(self.frame)
        self.follower.reset()
        # the synth's stream state (GRU, phase, last controls, noise tail, reverb delay line)
        self.synth.hidden.zero_()
        self.synth.phase.zero_()
        self.synth.prev_f0.zero_()
        self.synth.prev_amps.zero_()
        self.synth.started.zero_()
        self.synth.noise_tail.zero_()
        self.synth.delay_line.zero_()
        self.synth.previous.zero_()
        self.v_in_fifo = torch.zeros(self.voices, 3, 0)
        self.v_out_fifo.zero_()
        self.v_fir_state.zero_()
        if self.voices > 1:
            self.voices_synth.hidden.zero_()
            self.voices_synth.phase.zero_()
            self.voices_synth.prev_f0.zero_()
            self.voices_synth.prev_amps.zero_()
            self.voices_synth.started.zero_()
            self.voices_synth.noise_tail.zero_()
            self.voices_synth.delay_line.zero_()
            self.voices_synth.previous.zero_()

    def z_at(self, morph: torch.Tensor) -> torch.Tensor:
        n = self.path.shape[0]
        pos = morph.clamp(0.0, 1.0) * (n - 1)
        i = int(torch.clamp(torch.floor(pos), 0, n - 2).item())
        frac = pos - i
        return (1.0 - frac) * self.path[i] + frac * self.path[i + 1]

    def _upsample(self, y: torch.Tensor) -> torch.Tensor:
        up = torch.zeros(1, 1, y.shape[0] * self.ratio)
        up[0, 0, :: self.ratio] = y  # the taps carry the gain (DC gain = ratio)
        x = torch.cat([self.fir_state, up], dim=-1)
        self.fir_state = x[:, :, x.shape[-1] - (self.fir.shape[-1] - 1) :]
        return torch.nn.functional.conv1d(x, self.fir)[0, 0]

    @torch.jit.export
    def audio(self, x: torch.Tensor) -> torch.Tensor:
        """x: [batch, 2, n] (instrument, morph) at the host rate -> [batch, 1, n]."""
        n = x.shape[-1]
        y = self.audio_xy(x[0, 0], x[0, 1], torch.zeros(n), torch.zeros(n))
        return y.reshape(1, 1, n).expand(x.shape[0], 1, n).contiguous()

    @torch.jit.export
    def audio_xy(
        self, audio: torch.Tensor, morph: torch.Tensor, px: torch.Tensor, py: torch.Tensor
    ) -> torch.Tensor:
        """[n] instrument, morph (0..1), XY (-1..1 along the latent's principal axes) at the
        host rate -> [n] audio."""
        x = torch.stack([audio, morph, px, py])[None]
        self.audio_fifo = torch.cat([self.audio_fifo, x[0]], dim=-1)
        produced: list[torch.Tensor] = [self.audio_out_fifo]
        while self.audio_fifo.shape[-1] >= self.frame:
            chunk = self.audio_fifo[:, : self.frame]
            self.audio_fifo = self.audio_fifo[:, self.frame :]
            xin = torch.cat([self.down_state, chunk[0].reshape(1, 1, -1)], dim=-1)
            self.down_state = xin[:, :, xin.shape[-1] - (self.down_fir.shape[-1] - 1) :]
            hop = torch.nn.functional.conv1d(xin, self.down_fir, stride=self.ratio)[0, 0]
            f0, loud = self.follower(hop[: self.hop])
            z = self.z_at(chunk[1].mean())
            z = z + chunk[2].mean() * self.axes[0] + chunk[3].mean() * self.axes[1]
            y = self.synth(torch.tensor([f0]).float(), torch.tensor([loud]).float(), z)
            produced.append(self._upsample(y))
        out = torch.cat(produced)
        n = x.shape[-1]
        self.audio_out_fifo = out[n:]
        return out[:n]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [batch, 3, n] at the host rate -> [batch, 1, n]; each batch element a voice."""
        if x.shape[0] > 1:
            return self.forward_voices(x)
        self.in_fifo = torch.cat([self.in_fifo, x[0]], dim=-1)
        produced: list[torch.Tensor] = [self.out_fifo]
        while self.in_fifo.shape[-1] >= self.frame:
            chunk = self.in_fifo[:, : self.frame]
            self.in_fifo = self.in_fifo[:, self.frame :]
            controls = chunk.mean(dim=-1)
            f0 = controls[0].clamp(20.0, 8000.0).reshape(1)
            loud = controls[1].reshape(1)
            z = self.z_at(controls[2])
            y = self.synth(f0, loud, z)
            produced.append(self._upsample(y))
        out = torch.cat(produced)
        n = x.shape[-1]
        self.out_fifo = out[n:]
        return out[:n].reshape(1, 1, n)

    def forward_voices(self, x: torch.Tensor) -> torch.Tensor:
        """x: [batch <= voices, 3, n] -> [batch, 1, n]: batch element b is voice b."""
        b, n = x.shape[0], x.shape[-1]
        if b > self.voices:
            raise RuntimeError("more channels than this export has voices (see its .json)")
        padded = torch.zeros(self.voices, 3, n)
        padded[:, 0] = 220.0  # the voices above the batch: silent
        padded[:, 1] = -120.0
        padded[:b] = x
        self.v_in_fifo = torch.cat([self.v_in_fifo, padded], dim=-1)
        produced: list[torch.Tensor] = [self.v_out_fifo]
        while self.v_in_fifo.shape[-1] >= self.frame:
            chunk = self.v_in_fifo[:, :, : self.frame]
            self.v_in_fifo = self.v_in_fifo[:, :, self.frame :]
            controls = chunk.mean(dim=-1)  # [voices, 3]
            f0 = controls[:, 0].clamp(20.0, 8000.0).reshape(self.voices, 1)
            loud = controls[:, 1].reshape(self.voices, 1)
            zs: list[torch.Tensor] = []
            for v in range(self.voices):
                zs.append(self.z_at(controls[v, 2]))
            y = self.voices_synth(f0, loud, torch.stack(zs))  # [voices, hop]
            up = torch.zeros(self.voices, 1, y.shape[-1] * self.ratio)
            up[:, 0, :: self.ratio] = y
            xin = torch.cat([self.v_fir_state, up], dim=-1)
            self.v_fir_state = xin[:, :, xin.shape[-1] - (self.fir.shape[-1] - 1) :]
            produced.append(torch.nn.functional.conv1d(xin, self.fir)[:, 0])
        out = torch.cat(produced, dim=-1)
        self.v_out_fifo = out[:, n:]
        return out[:b, :n].reshape(b, 1, n)


def build_nn_module(
    run,
    *,
    host_rate: int = 48000,
    path_kind: str | None = None,
    source: str | None = None,
    target: str | None = None,
    even: bool = True,
    voices: int = 1,
) -> tuple[NNTildeSynth, dict]:
    """The (unscripted) module of a loaded run, and what a host needs to know about it;
    ``voices`` > 1: ``forward`` also plays a batch of up to that many voices (mc.nn~)."""
    from ddsp_morph.latent.geometry import chain_points, speed_between
    from ddsp_morph.realtime.audio_in import AudioInSettings, corpus_stats, input_follower
    from ddsp_morph.realtime.tracing import trace_synth

    path_kind = path_kind or str(group_defaults("morph").path)
    latent = run.extra.get("latent") or {}
    centroids = latent.get("centroids", {})
    names = sorted(centroids)
    z_dim = run.model.encoder.z_dim if run.model.encoder is not None else 0
    if z_dim and not names:
        raise DDSPMorphError(f"{run.checkpoint_path}: no latent centroids stored; retrain")
    source = source or (names[0] if names else None)
    target = target or (names[1] if len(names) > 1 else source)
    for name in (source, target):
        if z_dim and name not in centroids:
            raise DDSPMorphError(f"instrument {name!r}: no centroid; this run knows {names}")
    path, cents = torch.zeros(2, 1), torch.zeros(1, 1)
    axes = torch.zeros(2, 1)
    speed = None
    if z_dim:
        pts = [np.asarray(centroids[n], np.float32) for n in (source, target)]
        speed = speed_between(latent, source, target, path_kind) if even else None
        path = torch.from_numpy(chain_points(pts, 65, path_kind, [speed]).astype(np.float32))
        cents = torch.from_numpy(np.stack([np.asarray(centroids[n], np.float32) for n in names]))
        axes = torch.zeros(2, z_dim)
        if "pca_components" in latent:  # as the realtime synth's XY: 2 std at the edge
            comps = torch.tensor(latent["pca_components"], dtype=torch.float32)[:2]
            std = torch.tensor(latent["pca_std"], dtype=torch.float32)[:2]
            axes[: len(comps)] = comps * (2.0 * std[:, None])
    sr, hop = int(run.cfg.data.sample_rate), int(run.cfg.data.hop_length)
    synth = trace_synth(run.model, 1, 0)
    voices_synth = trace_synth(run.model, 1, 0, voices=voices) if voices > 1 else None
    # the live mode's defaults: YIN over the run's f0 range, auto-gain
    follower = input_follower(corpus_stats(run), sr, hop, AudioInSettings())
    module = NNTildeSynth(
        synth,
        host_rate=host_rate,
        model_rate=sr,
        hop=hop,
        z_dim=z_dim,
        path=path,
        centroids=cents,
        instruments=names,
        follower=follower,
        axes=axes,
        voices_synth=voices_synth,
        voices=voices,
    )
    fir_half = (len(lowpass_taps(module.ratio)) - 1) // 2
    lag = int(round(follower.pitch.lag_frames * hop * module.ratio))
    info = {
        "host_sample_rate": host_rate,
        "model_sample_rate": sr,
        "morph_path": (
            f"{path_kind}{' (even timbre)' if speed is not None else ''}: "
            f"{source} (0) -> {target} (1)"
        )
        if z_dim
        else None,
        "instruments": names,
        "voices": voices,
        "latency_samples_forward": module.frame + fir_half,
        "latency_samples_audio": module.frame + 2 * fir_half + lag,
        "tracker_lag_ms": 1000 * follower.pitch.lag_frames * hop / sr,
    }
    return module, info


def export_nn_tilde(
    run,
    out: Path,
    *,
    host_rate: int = 48000,
    path_kind: str | None = None,
    source: str | None = None,
    target: str | None = None,
    voices: int = 8,
) -> dict:
    """Write ``out`` (.ts for nn~) from a loaded run; returns the metadata (also written as
    ``out.with_suffix('.json')``)."""
    import json

    module, info = build_nn_module(
        run, host_rate=host_rate, path_kind=path_kind, source=source, target=target, voices=voices
    )
    scripted = torch.jit.script(module)
    out.parent.mkdir(parents=True, exist_ok=True)
    scripted.save(str(out))
    meta = {
        "format": "nn_tilde",
        **info,
        "methods": {
            "forward": {"inputs": INPUT_LABELS, "outputs": OUTPUT_LABELS, "params": [3, 1, 1, 1]},
            "audio": {
                "inputs": AUDIO_INPUT_LABELS,
                "outputs": OUTPUT_LABELS,
                "params": [2, 1, 1, 1],
            },
        },
        "max_patch": f"[nn~ {out.name} forward] or [nn~ {out.name} audio]; "
        f"[mc.nn~ {out.name} forward @chans {voices}]: a voice per channel",
    }
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta
