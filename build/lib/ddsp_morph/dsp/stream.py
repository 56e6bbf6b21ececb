"""Block-by-block DSP kernels for the realtime path: the same arithmetic as the one-shot
functions (``harmonic_synth``, ``filtered_noise``, ``PartitionedConvolver``), with everything
that does not change between blocks computed once, so that a block costs a few dozen small
tensor operations instead of a few hundred. Gradients are not supported (inference only).

Consecutive blocks equal the one-shot render of the concatenated controls (tested to 1e-5).
"""

from __future__ import annotations

import math

import torch

from ddsp_morph.dsp.core import upsample_ramp
from ddsp_morph.dsp.reverb import PartitionedConvolver

TWO_PI = 2.0 * math.pi


class HarmonicStream:
    """The harmonic bank, one block of ``n_frames`` control frames at a time (batch 1).

    Args:
        n_harmonics: harmonics in the distribution.
        n_frames: control frames per block.
    """

    def __init__(
        self,
        *,
        n_harmonics: int,
        sample_rate: int,
        hop_length: int,
        n_frames: int = 1,
        upsample: str = "hann",
    ) -> None:
        self.sample_rate, self.hop, self.n_frames = sample_rate, hop_length, n_frames
        self.nyquist = sample_rate / 2.0
        self.k = torch.arange(1, n_harmonics + 1, dtype=torch.float32)
        self.ramp = upsample_ramp(hop_length, method=upsample)  # [H]
        # Scalars as tensors: an op with a Python float costs several microseconds more.
        self.nyquist_t = torch.tensor(self.nyquist)
        self.omega_scale = torch.tensor(TWO_PI / sample_rate, dtype=torch.float64)
        self.two_pi = torch.tensor(TWO_PI, dtype=torch.float64)
        self.eps = torch.tensor(1e-7)
        self.reset()

    def reset(self) -> None:
        self.phase = torch.zeros(1, dtype=torch.float64)
        self.f0_hz: torch.Tensor | None = None  # last frame's f0, Shape [1]
        self.amps: torch.Tensor | None = None  # last frame's amplitudes, Shape [K]

    def _count_below_nyquist(self, f0_hz: float) -> int:
        """How many of the harmonics can sound at this f0: those with k * f0 < Nyquist, so
        ceil(nyquist / f0) - 1 of them; one more is kept as a margin (float rounding), and it is
        silent wherever it is above Nyquist (its amplitude is zero there)."""
        return max(1, min(len(self.k), math.ceil(self.nyquist / max(f0_hz, 1e-3))))

    def process(
        self, f0_hz: torch.Tensor, amplitude: torch.Tensor, harmonic_distribution: torch.Tensor
    ) -> torch.Tensor:
        """f0_hz Shape [n_frames] (> 0), amplitude [n_frames], harmonic_distribution
        [n_frames, n_harmonics]. Returns Shape [n_frames * hop_length]."""
        k, m, hop = self.k, self.n_frames, self.hop
        f0 = f0_hz.reshape(m, 1)
        dist = harmonic_distribution * ((f0 * k) < self.nyquist_t)
        amps = amplitude.reshape(m, 1) * (
            dist / torch.maximum(dist.sum(-1, keepdim=True), self.eps)
        )
        prev_f0 = f0[:1] if self.f0_hz is None else self.f0_hz.reshape(1, 1)
        prev_amps = amps[:1] if self.amps is None else self.amps.reshape(1, -1)
        f0_start = torch.cat([prev_f0, f0[:-1]]) if m > 1 else prev_f0  # [M, 1]
        f0_samples = (f0_start + self.ramp * (f0 - f0_start)).reshape(-1)  # [M*H]
        phase = torch.cumsum(f0_samples.double() * self.omega_scale, 0) + self.phase
        phase = torch.remainder(phase, self.two_pi)
        self.phase = phase[-1:]
        # Harmonics that may be audible anywhere in the block (the rest are exact zeros).
        lo_hi = torch.stack(
            [torch.minimum(f0.min(), prev_f0.min()), torch.maximum(f0.max(), prev_f0.max())]
        )
        lowest, highest = lo_hi.tolist()
        kc = self._count_below_nyquist(lowest)
        kk = k[:kc]
        sines = torch.sin(phase.float().reshape(m, hop, 1) * kk)  # [M, H, kc]
        if self._count_below_nyquist(highest) != kc:
            # Some harmonic crosses Nyquist inside the block: silence it sample by sample.
            sines = sines * ((f0_samples.reshape(m, hop, 1) * kk) < self.nyquist_t)
        a_start = torch.cat([prev_amps, amps[:-1]]) if m > 1 else prev_amps  # [M, K]
        ends = torch.stack([a_start[:, :kc], amps[:, :kc]], dim=-1)  # [M, kc, 2]
        y2 = torch.matmul(sines, ends)  # [M, H, 2]
        out = torch.lerp(y2[..., 0], y2[..., 1], self.ramp)
        self.f0_hz, self.amps = f0[-1], amps[-1]
        return out.reshape(-1)


class NoiseStream:
    """Filtered noise, one block at a time (batch 1), by direct convolution: each frame's
    linear-phase FIR (``noise_filter_irs``: window * roll(irfft(magnitudes))) is a fixed linear
    map of its magnitudes, precomputed as a [n_bands, ir_size] matrix (taps reversed), and the
    frame's noise is convolved with it as one matrix-vector product over a sliding view.
    """

    def __init__(self, *, n_bands: int, hop_length: int, n_frames: int = 1) -> None:
        self.hop, self.n_frames = hop_length, n_frames
        self.ir_size = 2 * (n_bands - 1)
        eye = torch.eye(n_bands, dtype=torch.float64)
        ir = torch.fft.irfft(eye.to(torch.complex128), n=self.ir_size)
        ir = torch.roll(ir, shifts=self.ir_size // 2, dims=-1)
        ir = ir * torch.hann_window(self.ir_size, periodic=True, dtype=torch.float64)
        self.basis_reversed = ir.flip(-1).float()  # [n_bands, ir_size]
        self.seg = hop_length + self.ir_size - 1  # one frame's filtered length
        self.reset()

    def reset(self) -> None:
        self.tail = torch.zeros(self.ir_size - 1)

    def process(self, magnitudes: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """magnitudes Shape [n_frames, n_bands]; noise [n_frames * hop_length] white noise.
        Returns Shape [n_frames * hop_length]."""
        m, hop, seg, r = self.n_frames, self.hop, self.seg, self.ir_size - 1
        taps = (magnitudes @ self.basis_reversed).unsqueeze(-1)  # [M, L, 1]
        padded = torch.nn.functional.pad(noise.reshape(m, hop), (r, r))  # [M, hop + 2r]
        pieces = torch.matmul(padded.unfold(1, self.ir_size, 1), taps)  # [M, seg, 1]
        if m == 1:
            out = pieces.reshape(seg)
        else:
            total = (m - 1) * hop + seg
            out = torch.nn.functional.fold(
                pieces.reshape(m, seg).T.unsqueeze(0),
                output_size=(1, total),
                kernel_size=(1, seg),
                stride=(1, hop),
            ).reshape(total)
        n = m * hop
        full = torch.cat([out[:r] + self.tail, out[r:]])
        self.tail = full[n:]
        return full[:n]


class ReverbStream:
    """Uniformly partitioned overlap-save convolution (batch 1) with wet/dry mix. The delay
    line is a ring of input spectra; the IR's partition spectra are stored twice over, so the
    partitions aligned with the ring at any head are one contiguous slice, and a block costs
    one FFT, one complex multiply-accumulate over the partitions and one inverse FFT."""

    def __init__(self, ir: torch.Tensor, block_size: int, *, wet: float = 1.0, dry: float = 1.0):
        self.block = block_size
        spectra = PartitionedConvolver(ir.detach().reshape(1, -1), block_size).ir_spectra[0]
        n_parts = spectra.shape[0]
        # Ring slot q holds the block (q - head) % P blocks old: partition (q - head) % P, which
        # is row P - head + q of the doubled table.
        self.ir_twice = torch.cat([spectra, spectra]) * wet
        self.n_parts = n_parts
        self.dry = dry
        self.reset()

    def reset(self) -> None:
        self.delay_line = torch.zeros(self.n_parts, self.block + 1, dtype=torch.complex64)
        self.frame = torch.zeros(2 * self.block)
        self.head = 0

    def process(self, block: torch.Tensor) -> torch.Tensor:
        """Shape [block_size] in and out: dry * block + wet * (block convolved with the IR)."""
        b, p = self.block, self.n_parts
        self.frame = torch.cat([self.frame[b:], block])
        self.head = (self.head - 1) % p
        self.delay_line[self.head] = torch.fft.rfft(self.frame)
        ir = self.ir_twice[p - self.head : 2 * p - self.head]
        acc = (self.delay_line * ir).sum(0)
        return self.dry * block + torch.fft.irfft(acc, 2 * b)[b:]
