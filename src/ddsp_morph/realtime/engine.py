"""Block-by-block synthesis with every state carried: GRU hidden state, oscillator phase and
last controls, the noise filter's ringing, and the reverb's partitioned convolution. The output
of consecutive blocks equals the offline render of the same controls (and the same white
noise): what a live synth plays is what the evaluation measured."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ddsp_morph.dsp.core import EXP_SIGMOID_EXPONENT, EXP_SIGMOID_MAX, EXP_SIGMOID_THRESHOLD
from ddsp_morph.dsp.stream import HarmonicStream, NoiseStream, ReverbStream
from ddsp_morph.models.autoencoder import DDSPAutoencoder
from ddsp_morph.models.decoder import Decoder
from ddsp_morph.synths.stack import CONTROL_BIAS


def check_block(frames: int, f0_hz, loudness_db) -> None:
    """One block's controls must be Shape [frames] each (tensors or arrays), f0 > 0."""
    if tuple(f0_hz.shape) != (frames,) or tuple(loudness_db.shape) != (frames,):
        raise ValueError(
            f"f0_hz, loudness_db: expected shape ({frames},), got "
            f"{tuple(f0_hz.shape)} and {tuple(loudness_db.shape)}"
        )
    if not (f0_hz > 0).all():
        raise ValueError(f"f0_hz: expected > 0 Hz in every frame, got {f0_hz.tolist()}")


class DecoderStep:
    """The decoder, one block at a time at batch 1, with its weights laid out for it.

    Exact reformulation of ``Decoder.forward`` (the same arithmetic up to float rounding):
    each input's MLP runs as functional ops; the GRU's input projection and the output MLP's
    first layer are split by input, and one stacked matrix per input computes both; the
    latent's share (its MLP and both projections) is cached while z stays the same, which is
    every block between two moves of the morph control; the GRU cell is written out
    (r, z, n gates as in ``torch.nn.GRU``).
    """

    def __init__(self, decoder: Decoder, head_offsets: dict[str, float] | None = None) -> None:
        """head_offsets: a constant added to a head's output (folded into its bias)."""
        d = decoder
        self.names = list(d.input_names)
        self.mlps = {k: self._layers(d.input_mlps[k]) for k in self.names}
        g = d.gru.hidden_size
        self.gru_size = g
        w_ih, w_hh = d.gru.weight_ih_l0.detach(), d.gru.weight_hh_l0.detach()
        b_ih, b_hh = d.gru.bias_ih_l0.detach(), d.gru.bias_hh_l0.detach()
        out_layers = self._layers(d.out_mlp)
        w1, b1 = out_layers[0][0], out_layers[0][1]
        self.w1_gru = w1[:, :g].contiguous()
        widths = [self.mlps[k][-1][0].shape[0] for k in self.names]  # each MLP's output width
        self.stacked: dict[str, torch.Tensor] = {}
        start = 0
        for k, width in zip(self.names, widths, strict=True):
            cols = slice(start, start + width)
            self.stacked[k] = torch.cat(
                [w_ih[:, cols], w1[:, g + start : g + start + width]]
            ).contiguous()
            start += width
        self.bias = torch.cat([b_ih, b1])  # added once, with the cached latent share
        self.w_hh, self.b_hh = w_hh.contiguous(), b_hh
        self.out_norm = out_layers[0][2:]
        self.out_rest = out_layers[1:]
        self.head_w, self.head_b = d.head.weight.detach(), d.head.bias.detach().clone()
        self.output_sizes = dict(d.output_sizes)
        start = 0
        for k, size in self.output_sizes.items():
            self.head_b[start : start + size] += (head_offsets or {}).get(k, 0.0)
            start += size
        self.slope = self._slope(d.out_mlp)
        # z_mode "film": z sets the output MLP's LayerNorm gains and biases and offsets the
        # heads; the effective values are computed once per z, with the latent's share.
        self.film = d.film_params if d.film is not None else None
        self._z: torch.Tensor | None = None
        self._z_share: torch.Tensor | None = None
        self._z_norms: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self._z_head_b: torch.Tensor | None = None

    @staticmethod
    def _layers(seq: nn.Sequential) -> list[tuple]:
        """(weight, bias, ln_weight, ln_bias, ln_eps) per Linear -> LayerNorm -> LeakyReLU."""
        mods = list(seq)
        out = []
        for lin, ln in zip(mods[0::3], mods[1::3], strict=True):
            out.append(
                (
                    lin.weight.detach(),
                    lin.bias.detach(),
                    ln.weight.detach(),
                    ln.bias.detach(),
                    ln.eps,
                )
            )
        return out

    @staticmethod
    def _slope(seq: nn.Sequential) -> float:
        return float(seq[2].negative_slope)

    def _mlp(self, x: torch.Tensor, layers: list[tuple]) -> torch.Tensor:
        for w, b, lw, lb, eps in layers:
            x = F.leaky_relu(F.layer_norm(F.linear(x, w, b), lw.shape, lw, lb, eps), self.slope)
        return x

    def reset(self) -> None:
        self._z, self._z_share, self._z_norms, self._z_head_b = None, None, None, None

    def norms(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The output MLP's LayerNorm (gain, bias) per layer, without z's modulation."""
        return [tuple(self.out_norm[:2])] + [(lw, lb) for _, _, lw, lb, _ in self.out_rest]

    def film_for(
        self, z: torch.Tensor
    ) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
        """z Shape [M, z_dim] -> the effective LayerNorm (gain, bias) per output layer
        (Shape [M, hidden]) and head bias (Shape [M, n_heads]): FiLM after a LayerNorm is
        that LayerNorm with gain * (1 + gamma) and bias * (1 + gamma) + beta."""
        base = self.norms()
        if self.film is None:
            return base, self.head_b
        with torch.no_grad():
            gamma, beta, offset = self.film(z)  # Shape [M, n_layers, hidden], [M, n_heads]
        eff = [
            (lw * (1.0 + gamma[:, i]), lb * (1.0 + gamma[:, i]) + beta[:, i])
            for i, (lw, lb) in enumerate(base)
        ]
        return eff, self.head_b + offset

    def __call__(
        self, inputs: dict[str, torch.Tensor], hidden: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """inputs name -> Shape [n_frames, channels] (scaled as ``decoder_inputs`` does; z may
        be [1, z_dim] for a constant timbre); hidden Shape [gru_size] or None.
        Returns (the heads' outputs side by side [n_frames, sum of sizes] with the offsets
        added, new hidden [gru_size]); ``split`` names them."""
        share = self.bias
        if "z" in self.names:
            z = inputs["z"]
            if self._z is None or self._z.shape != z.shape or not torch.equal(self._z, z):
                self._z = z.clone()
                hz = self._mlp(z, self.mlps["z"])
                self._z_share = F.linear(hz, self.stacked["z"], self.bias)
                self._z_norms, self._z_head_b = self.film_for(z)
            share = self._z_share
        proj = share
        for k in self.names:
            if k != "z":
                proj = proj + F.linear(self._mlp(inputs[k], self.mlps[k]), self.stacked[k])
        g3 = 3 * self.gru_size
        gi, o1_inputs = proj[:, :g3], proj[:, g3:]  # [M, 3G], [M, H]
        h = torch.zeros(self.gru_size) if hidden is None else hidden
        outs = []
        for m in range(gi.shape[0]):
            gh = F.linear(h, self.w_hh, self.b_hh)
            i_r, i_z, i_n = gi[m].chunk(3)
            h_r, h_z, h_n = gh.chunk(3)
            r = torch.sigmoid(i_r + h_r)
            u = torch.sigmoid(i_z + h_z)
            n = torch.tanh(i_n + r * h_n)
            h = n + u * (h - n)
            outs.append(h)
        g = outs[0].unsqueeze(0) if len(outs) == 1 else torch.stack(outs)
        y = F.linear(g, self.w1_gru) + o1_inputs
        if self.film is None or self._z_norms is None or self._z_head_b is None:
            lw, lb, eps = self.out_norm
            y = F.leaky_relu(F.layer_norm(y, lw.shape, lw, lb, eps), self.slope)
            return F.linear(self._mlp(y, self.out_rest), self.head_w, self.head_b), h
        eps = self.out_norm[2]
        for i, (lw, lb) in enumerate(self._z_norms):
            if i > 0:
                w, b = self.out_rest[i - 1][:2]
                y = F.linear(y, w, b)
            y = F.leaky_relu(F.layer_norm(y, lw.shape[-1:], None, None, eps) * lw + lb, self.slope)
        return F.linear(y, self.head_w) + self._z_head_b, h

    def split(self, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """[..., sum of sizes] -> name -> [..., size]."""
        sizes = list(self.output_sizes.values())
        return dict(zip(self.output_sizes, torch.split(y, sizes, dim=-1), strict=True))


def reverb_stream(model, instrument_id: int, block_size: int) -> ReverbStream | None:
    """The model's reverb (the instrument's IR when it holds one per instrument) as a
    block-by-block convolver; None for a model without reverb."""
    rv = model.synth.reverb
    if rv is None:
        return None
    with torch.no_grad():
        ir = rv.impulse_response()
        wet, dry = rv.wet_dry()
        idx = instrument_id if rv.n_irs > 1 else 0
        return ReverbStream(ir[idx], block_size, wet=wet.reshape(-1)[idx], dry=dry.reshape(-1)[idx])


class StreamingEngine:
    """Args:
    model: a trained DDSPAutoencoder (put in eval mode; gradients off).
    frames_per_block: control frames per block (block = frames_per_block * hop samples).
    instrument_id: selects the reverb IR when the model holds one per instrument.
    seed: the white-noise generator's seed (the offline render with the same seed and one
        ``torch.rand`` over the whole length draws the same noise).

    A block runs the decoder (``DecoderStep``) and the realtime DSP kernels of ``dsp.stream``
    (harmonic bank, filtered noise, partitioned reverb), each carrying its own state.
    """

    def __init__(
        self,
        model: DDSPAutoencoder,
        *,
        frames_per_block: int = 1,
        instrument_id: int = 0,
        seed: int = 0,
    ) -> None:
        if model.extra_inputs:
            raise ValueError(
                f"conditioning: this model also reads {model.extra_inputs}; the realtime "
                "synth plays f0 and loudness only (train with conditioning=f0_loud)"
            )
        self.model = model.eval()
        self.frames = int(frames_per_block)
        synth = model.synth
        self.hop = synth.hop_length
        self.block_size = self.frames * self.hop
        self.instrument_id = torch.tensor([instrument_id])
        self.seed = seed
        self.has_latent = model.encoder is not None
        self.decoder = DecoderStep(model.decoder, head_offsets=CONTROL_BIAS)
        # Scalars as tensors (an op with a Python float costs several microseconds more):
        # f0 -> MIDI / 127 = log2(f0) * 12/127 + (69 - 12 log2 440) / 127, and exp_sigmoid's.
        self.f0_scale = torch.tensor(12.0 / 127.0)
        self.f0_offset = torch.tensor((69.0 - 12.0 * math.log2(440.0)) / 127.0)
        self.log_exponent = torch.tensor(math.log(EXP_SIGMOID_EXPONENT))
        self.max_value = torch.tensor(EXP_SIGMOID_MAX)
        self.threshold = torch.tensor(EXP_SIGMOID_THRESHOLD)
        self.two, self.one = torch.tensor(2.0), torch.tensor(1.0)
        self.harmonic = HarmonicStream(
            n_harmonics=synth.harmonic.n_harmonics,
            sample_rate=synth.sample_rate,
            hop_length=self.hop,
            n_frames=self.frames,
            upsample=synth.harmonic.upsample,
        )
        self.noise = (
            None
            if synth.noise is None
            else NoiseStream(n_bands=synth.noise.n_bands, hop_length=self.hop, n_frames=self.frames)
        )
        self.reverb = reverb_stream(model, instrument_id, self.block_size)
        self.reset()

    def reset(self) -> None:
        self.hidden: torch.Tensor | None = None
        self.generator = torch.Generator().manual_seed(self.seed)
        self.decoder.reset()
        self.harmonic.reset()
        for kernel in (self.noise, self.reverb):
            if kernel is not None:
                kernel.reset()

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
        check_block(self.frames, f0_hz, loudness_db)
        m = self.model
        # decoder_inputs' scaling (f0 > 0: checked above).
        inputs = {
            "f0": (torch.log2(f0_hz) * self.f0_scale + self.f0_offset).unsqueeze(-1),
            "loudness": ((loudness_db - m.loudness_mean) / m.loudness_std).unsqueeze(-1),
        }
        if self.has_latent:
            if z is None:
                raise ValueError("z: this model has a latent; give a timbre vector")
            inputs["z"] = z.reshape(-1, z.shape[-1])
        y, self.hidden = self.decoder(inputs, self.hidden)
        # get_controls: exp_sigmoid of every head at once (CONTROL_BIAS is in the head's bias).
        controls = self.decoder.split(
            torch.sigmoid(y).pow(self.log_exponent) * self.max_value + self.threshold
        )
        audio = self.harmonic.process(
            f0_hz, controls["amplitude"][:, 0], controls["harmonic_distribution"]
        )
        if self.noise is not None:
            if noise is None:
                noise = torch.rand(self.block_size, generator=self.generator) * self.two - self.one
            audio = audio + self.noise.process(controls["noise_magnitudes"], noise.reshape(-1))
        if self.reverb is not None:
            audio = self.reverb.process(audio)
        return audio


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
    """The same controls through the model in one pass: the reference the engine must equal
    (the loudness measured from the corpus mean, as the engine measures it)."""
    batch = {
        "f0_hz": f0_hz.reshape(1, -1),
        "loudness_db": loudness_db.reshape(1, -1),
        "loudness_ref": model.loudness_mean,
        "instrument_id": torch.tensor([instrument_id]),
    }
    if z is not None:
        batch["z"] = z.reshape(1, -1, z.shape[-1]) if z.dim() == 2 else z.reshape(1, -1)
    model.eval()
    return model(batch, generator=torch.Generator().manual_seed(seed))["audio"][0]
