"""Spectra and the multi-scale spectral loss."""

from __future__ import annotations

from collections.abc import Sequence

import torch

DEFAULT_FFT_SIZES = (2048, 1024, 512, 256, 128, 64)


def stft_magnitude(audio: torch.Tensor, n_fft: int, *, overlap: float = 0.75) -> torch.Tensor:
    """Magnitude STFT with a periodic Hann window, centred frames, hop = n_fft * (1 - overlap).

    Args:
        audio: Shape [batch, n_samples].

    Returns:
        Shape [batch, n_fft // 2 + 1, n_frames].
    """
    hop = max(1, int(n_fft * (1.0 - overlap)))
    window = torch.hann_window(n_fft, dtype=audio.dtype, device=audio.device)
    spec = torch.stft(audio, n_fft, hop_length=hop, window=window, center=True, return_complex=True)
    return spec.abs()


def multiscale_spectral_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    fft_sizes: Sequence[int] = DEFAULT_FFT_SIZES,
    overlap: float = 0.75,
    linear_weight: float = 1.0,
    log_weight: float = 1.0,
    eps: float = 1e-7,
) -> torch.Tensor:
    """Sum over FFT sizes of mean |S_pred - S_target| + log_weight * mean |log S_pred - log S_target|.

    Args:
        pred, target: Shape [batch, n_samples].

    Returns:
        A scalar.
    """
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target must match: got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    loss = pred.new_zeros(())
    for n_fft in fft_sizes:
        s_pred = stft_magnitude(pred, n_fft, overlap=overlap)
        s_true = stft_magnitude(target, n_fft, overlap=overlap)
        if linear_weight:
            loss = loss + linear_weight * (s_pred - s_true).abs().mean()
        if log_weight:
            loss = (
                loss + log_weight * (torch.log(s_pred + eps) - torch.log(s_true + eps)).abs().mean()
            )
    return loss
