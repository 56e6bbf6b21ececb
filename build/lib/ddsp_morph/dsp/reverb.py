"""Reverb: FFT convolution with an impulse response, one-shot and block by block."""

from __future__ import annotations

import torch

from ddsp_morph.dsp.core import check_shape
from ddsp_morph.dsp.noise import _next_pow2


def fft_convolve(signal: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
    """Linear convolution by FFT, cropped to the signal's length (causal).

    Args:
        signal: Shape [batch, n_samples].
        ir: Shape [batch, ir_size] or [1, ir_size] (shared).

    Returns:
        Shape [batch, n_samples].
    """
    check_shape("signal", signal, "[batch, n_samples]", 2)
    check_shape("ir", ir, "[batch or 1, ir_size]", 2)
    n_samples = signal.shape[-1]
    n_fft = _next_pow2(n_samples + ir.shape[-1] - 1)
    spec = torch.fft.rfft(signal, n_fft) * torch.fft.rfft(ir, n_fft)
    return torch.fft.irfft(spec, n_fft)[..., :n_samples]


def decaying_noise_ir(
    noise: torch.Tensor, decay_per_second: torch.Tensor, *, sample_rate: int
) -> torch.Tensor:
    """Exponentially decaying noise: ``noise[t] * exp(-decay * t / sample_rate)``.

    Args:
        noise: Shape [n_irs, ir_size].
        decay_per_second: Shape [n_irs] (positive; 6.9 / decay gives the T60 in seconds).

    Returns:
        Shape [n_irs, ir_size].
    """
    check_shape("noise", noise, "[n_irs, ir_size]", 2)
    t = torch.arange(noise.shape[-1], dtype=noise.dtype, device=noise.device) / sample_rate
    return noise * torch.exp(-decay_per_second.reshape(-1, 1) * t)


def reverb(
    audio: torch.Tensor,
    ir: torch.Tensor,
    *,
    wet: torch.Tensor | float = 1.0,
    dry: torch.Tensor | float = 1.0,
) -> torch.Tensor:
    """``dry * audio + wet * (audio conv ir)``, cropped to the input length.

    Args:
        audio: Shape [batch, n_samples].
        ir: Shape [batch or 1, ir_size].
        wet, dry: scalars or Shape [batch, 1].
    """
    return dry * audio + wet * fft_convolve(audio, ir)


class PartitionedConvolver:
    """Uniformly partitioned overlap-save convolution for block-by-block reverb.

    Splits the IR into ``block_size`` partitions, keeps a frequency-domain delay line of the
    past input blocks, and costs one FFT, one multiply-accumulate over the partitions and one
    inverse FFT per block. The output of consecutive blocks equals ``fft_convolve`` of the
    concatenated input; latency is zero beyond the block itself.

    Args:
        ir: Shape [batch, ir_size] (already including any wet gain); held detached.
        block_size: samples per call to ``process``.
    """

    def __init__(self, ir: torch.Tensor, block_size: int) -> None:
        check_shape("ir", ir, "[batch, ir_size]", 2)
        ir = ir.detach()
        batch, ir_size = ir.shape
        self.block_size = block_size
        n_parts = -(-ir_size // block_size)
        padded = torch.nn.functional.pad(ir, (0, n_parts * block_size - ir_size))
        parts = padded.reshape(batch, n_parts, block_size)
        self.ir_spectra = torch.fft.rfft(parts, 2 * block_size)  # [B, P, F]
        self.delay_line = torch.zeros_like(self.ir_spectra)
        self.previous = torch.zeros(batch, block_size, dtype=ir.dtype, device=ir.device)
        self._head = 0

    def reset(self) -> None:
        self.delay_line.zero_()
        self.previous.zero_()
        self._head = 0

    def process(self, block: torch.Tensor) -> torch.Tensor:
        """Convolve the next block. Shape [batch, block_size] in and out."""
        if block.shape != self.previous.shape:
            raise ValueError(
                f"block: expected shape {tuple(self.previous.shape)}, got {tuple(block.shape)}"
            )
        n_parts = self.ir_spectra.shape[1]
        # Ring buffer: slot head holds the newest block's spectrum.
        self._head = (self._head - 1) % n_parts
        frame = torch.cat([self.previous, block], dim=-1)
        self.delay_line[:, self._head] = torch.fft.rfft(frame)
        self.previous.copy_(block)
        # Partition p multiplies the spectrum p blocks old: slot (head + p) mod P.
        order = (torch.arange(n_parts) + self._head) % n_parts
        acc = (self.delay_line[:, order] * self.ir_spectra).sum(dim=1)
        return torch.fft.irfft(acc, 2 * self.block_size)[..., self.block_size :]
