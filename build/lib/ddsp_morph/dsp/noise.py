"""Filtered noise: per-frame noise magnitudes to linear-phase FIR filters, applied by FFT."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ddsp_morph.dsp.core import check_shape


def noise_filter_irs(magnitudes: torch.Tensor) -> torch.Tensor:
    """Per-frame linear-phase FIR filters by frequency sampling, Hann-windowed.

    The zero-phase impulse response of each frame's magnitudes is shifted to be causal
    (delay ``ir_size // 2`` samples) and windowed.

    Args:
        magnitudes: Shape [batch, n_frames, n_bands], linearly spaced from 0 Hz to Nyquist.

    Returns:
        Shape [batch, n_frames, ir_size] with ``ir_size = 2 * (n_bands - 1)``.
    """
    check_shape("magnitudes", magnitudes, "[batch, n_frames, n_bands]", 3)
    n_bands = magnitudes.shape[-1]
    if n_bands < 2:
        raise ValueError(f"magnitudes: need at least 2 bands, got {n_bands}")
    ir_size = 2 * (n_bands - 1)
    ir = torch.fft.irfft(
        magnitudes.to(torch.complex64 if magnitudes.dtype == torch.float32 else torch.complex128),
        n=ir_size,
    )
    ir = torch.roll(ir, shifts=ir_size // 2, dims=-1)
    # Periodic Hann: symmetric about ir_size // 2, so the windowed filter keeps its linear phase.
    window = torch.hann_window(ir_size, periodic=True, dtype=ir.dtype, device=ir.device)
    return ir * window


def _next_pow2(n: int) -> int:
    return 1 << (max(1, int(n)) - 1).bit_length()  # int(): under tracing a shape is a tensor


def filtered_noise(
    magnitudes: torch.Tensor,
    *,
    hop_length: int,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    tail: torch.Tensor | None = None,
    return_tail: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Filter white noise hop by hop with each frame's FIR, and overlap-add.

    Args:
        magnitudes: Shape [batch, n_frames, n_bands].
        hop_length: samples per frame.
        noise: Shape [batch, n_frames * hop_length] white noise; drawn uniform in [-1, 1)
            from ``generator`` when None.
        generator: the random source when ``noise`` is None.
        tail: Shape [batch, ir_size - 1], the ringing carried from the previous block.
        return_tail: also return the tail for the next block.

    Returns:
        Audio of shape [batch, n_frames * hop_length], and the tail if asked.
    """
    check_shape("magnitudes", magnitudes, "[batch, n_frames, n_bands]", 3)
    batch, n_frames, _ = magnitudes.shape
    n_samples = n_frames * hop_length
    if noise is None:
        noise = (
            torch.rand(
                batch,
                n_samples,
                generator=generator,
                dtype=magnitudes.dtype,
                device=magnitudes.device,
            )
            * 2.0
            - 1.0
        )
    check_shape("noise", noise, "[batch, n_samples]", 2)
    if noise.shape != (batch, n_samples):
        raise ValueError(f"noise: expected shape {(batch, n_samples)}, got {tuple(noise.shape)}")
    irs = noise_filter_irs(magnitudes)  # [B, M, L]
    ir_size = irs.shape[-1]
    seg = hop_length + ir_size - 1
    n_fft = _next_pow2(seg)
    frames = noise.reshape(batch, n_frames, hop_length)
    spec = torch.fft.rfft(frames, n_fft) * torch.fft.rfft(irs, n_fft)
    pieces = torch.fft.irfft(spec, n_fft)[..., :seg]  # [B, M, seg]
    total = (n_frames - 1) * hop_length + seg
    out = F.fold(
        pieces.transpose(1, 2), output_size=(1, total), kernel_size=(1, seg), stride=(1, hop_length)
    ).reshape(batch, total)
    if tail is not None:
        check_shape("tail", tail, "[batch, ir_size - 1]", 2)
        out = torch.cat([out[:, : ir_size - 1] + tail, out[:, ir_size - 1 :]], dim=1)
    audio = out[:, :n_samples]
    if not return_tail:
        return audio
    return audio, out[:, n_samples:]  # always ir_size - 1 samples
