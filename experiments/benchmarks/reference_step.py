"""A reference training step shaped as acids-ircam/ddsp_pytorch's, for the benchmark to hold ours
against in the same process (written here from that project's published design, not imported:
it is not installable, and the benchmark needs no network).

The shape that sets its cost: two 3-layer MLPs (Linear, LayerNorm, LeakyReLU) read f0 and
loudness, a GRU reads their concatenation, a 3-layer MLP reads the GRU's output with f0 and
loudness; one projection gives the harmonic levels (and a total amplitude), one the noise bands.
The harmonic bank runs at the audio rate (controls upsampled by repetition, phase a cumulative
sum, every harmonic's sine summed), the noise is white noise filtered frame by frame with a
windowed FIR from the bands (FFT convolution at twice the frame), the reverb a learned 1 s
impulse convolved by FFT over the whole clip, and the loss the linear and log magnitudes of six
STFTs (4096 down to 128, 75% overlap). Adam on every parameter."""

from __future__ import annotations

import math

import torch
from torch import nn


def _scale(x: torch.Tensor) -> torch.Tensor:
    return 2 * torch.sigmoid(x) ** math.log(10) + 1e-7


def _mlp(n_in: int, hidden: int, layers: int = 3) -> nn.Sequential:
    out: list[nn.Module] = []
    for i in range(layers):
        out += [nn.Linear(n_in if i == 0 else hidden, hidden), nn.LayerNorm(hidden), nn.LeakyReLU()]
    return nn.Sequential(*out)


def _fft_convolve(signal: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Linear convolution of equal-length last axes, the first half of the result kept."""
    n = signal.shape[-1]
    y = torch.fft.irfft(
        torch.fft.rfft(nn.functional.pad(signal, (0, n)))
        * torch.fft.rfft(nn.functional.pad(kernel, (0, n))),
        n=2 * n,
    )
    return y[..., :n]


class ReferenceDDSP(nn.Module):
    def __init__(
        self,
        hidden: int = 512,
        n_harmonics: int = 100,
        n_bands: int = 65,
        sample_rate: int = 16000,
        block: int = 160,
    ) -> None:
        super().__init__()
        self.sr, self.block = sample_rate, block
        self.in_f0, self.in_loud = _mlp(1, hidden), _mlp(1, hidden)
        self.gru = nn.GRU(2 * hidden, hidden, batch_first=True)
        self.out = _mlp(hidden + 2, hidden)
        self.to_harmonics = nn.Linear(hidden, n_harmonics + 1)
        self.to_noise = nn.Linear(hidden, n_bands)
        self.ir_noise = nn.Parameter(torch.rand(sample_rate) * 2 - 1)
        self.ir_decay = nn.Parameter(torch.tensor(5.0))
        self.ir_wet = nn.Parameter(torch.tensor(0.0))
        self.register_buffer("ir_t", torch.arange(sample_rate) / sample_rate)

    def forward(self, f0: torch.Tensor, loudness: torch.Tensor) -> torch.Tensor:
        """f0 (Hz) and loudness (normalized) [B, M, 1] -> audio [B, M * block]."""
        h = torch.cat([self.in_f0(f0), self.in_loud(loudness)], -1)
        h = self.out(torch.cat([self.gru(h)[0], f0, loudness], -1))
        p = _scale(self.to_harmonics(h))
        total, amps = p[..., :1], p[..., 1:]
        k = torch.arange(1, amps.shape[-1] + 1, dtype=f0.dtype)
        amps = amps * ((f0 * k < self.sr / 2).to(amps) + 1e-4)
        amps = amps / amps.sum(-1, keepdim=True) * total
        amps = amps.repeat_interleave(self.block, dim=1)
        phase = torch.cumsum(2 * math.pi * f0.repeat_interleave(self.block, dim=1) / self.sr, 1)
        harmonic = (torch.sin(phase * k) * amps).sum(-1)
        bands = _scale(self.to_noise(h) - 5)
        ir = torch.fft.irfft(torch.complex(bands, torch.zeros_like(bands)))
        size = ir.shape[-1]
        ir = torch.roll(ir, size // 2, -1) * torch.hann_window(size, dtype=ir.dtype)
        ir = torch.roll(nn.functional.pad(ir, (0, self.block - size)), -size // 2, -1)
        noise = torch.rand(*ir.shape[:2], self.block) * 2 - 1
        noise = _fft_convolve(noise, ir).reshape(ir.shape[0], -1)
        signal = harmonic + noise
        impulse = self.ir_noise * torch.exp(
            -nn.functional.softplus(-self.ir_decay) * self.ir_t * 500
        )
        impulse = impulse * torch.sigmoid(self.ir_wet)
        impulse = torch.cat([torch.ones(1), impulse[1:]])
        impulse = nn.functional.pad(impulse, (0, signal.shape[-1] - impulse.shape[-1]))
        return _fft_convolve(signal, impulse.expand_as(signal))


def reference_loss(
    pred: torch.Tensor, target: torch.Tensor, scales=(4096, 2048, 1024, 512, 256, 128)
) -> torch.Tensor:
    loss = pred.new_zeros(())
    for s in scales:
        window = torch.hann_window(s)
        mags = [
            torch.stft(
                x, s, s // 4, s, window, center=True, normalized=True, return_complex=True
            ).abs()
            for x in (pred, target)
        ]
        loss = loss + (mags[0] - mags[1]).abs().mean()
        loss = loss + (torch.log(mags[0] + 1e-7) - torch.log(mags[1] + 1e-7)).abs().mean()
    return loss
