"""A-weighted loudness (level in dB) per frame."""

from __future__ import annotations

import math

import torch

from ddsp_morph.dsp.core import check_shape

# IEC 61672-1 A-weighting pole frequencies, Hz.
_F1, _F2, _F3, _F4 = 20.598997, 107.65265, 737.86223, 12194.217
# Offset making the curve 0 dB at 1 kHz.
_A1000_DB = 2.0
POWER_FLOOR = 1e-10  # -100 dB


def a_weighting_db(frequencies_hz: torch.Tensor) -> torch.Tensor:
    """A-weighting gain in dB at the given frequencies (IEC 61672-1); -inf at 0 Hz is clipped to -200."""
    f2 = frequencies_hz.to(torch.float64) ** 2
    num = (_F4**2) * f2**2
    den = (f2 + _F1**2) * torch.sqrt((f2 + _F2**2) * (f2 + _F3**2)) * (f2 + _F4**2)
    gain = 20.0 * torch.log10((num / den).clamp_min(1e-10)) + _A1000_DB
    return gain.clamp_min(-200.0).to(
        frequencies_hz.dtype if frequencies_hz.is_floating_point() else torch.float32
    )


def a_weighted_loudness_db(
    audio: torch.Tensor, *, sample_rate: int, hop_length: int, n_fft: int = 1024
) -> torch.Tensor:
    """A-weighted power level of each frame, in dB relative to a full-scale square wave.

    A sine of amplitude 1 at 1 kHz reads 10*log10(0.5) = -3.01 dB; doubling the signal adds
    6.02 dB. Frames are centred at ``m * hop_length``; silence reads -100 dB.

    Args:
        audio: Shape [batch, n_samples].

    Returns:
        Shape [batch, n_samples // hop_length].
    """
    check_shape("audio", audio, "[batch, n_samples]", 2)
    n_frames = audio.shape[-1] // hop_length
    window = torch.hann_window(n_fft, dtype=audio.dtype, device=audio.device)
    spec = torch.stft(
        audio,
        n_fft,
        hop_length=hop_length,
        window=window,
        center=True,
        pad_mode="constant",
        return_complex=True,
    )[..., :n_frames]  # [B, F, M]
    power = spec.real**2 + spec.imag**2
    freqs = torch.linspace(
        0, sample_rate / 2, n_fft // 2 + 1, dtype=audio.dtype, device=audio.device
    )
    weight = torch.pow(10.0, a_weighting_db(freqs) / 10.0)
    # One-sided spectrum: every bin but DC and Nyquist stands for two.
    weight = weight * torch.where((freqs > 0) & (freqs < sample_rate / 2), 2.0, 1.0)
    # Parseval: mean windowed power = sum |X|^2 / (n_fft * sum w^2).
    norm = n_fft * float((window**2).sum())
    level = (power * weight.unsqueeze(-1)).sum(dim=1) / norm
    return 10.0 * torch.log10(level.clamp_min(POWER_FLOOR))


def rms_db(audio: torch.Tensor) -> float:
    """Unweighted RMS level of a whole signal in dB."""
    return 10.0 * math.log10(max(float((audio.double() ** 2).mean()), POWER_FLOOR))


SOUNDING_DB = 30.0  # a clip's sounding frames: within this many dB of its loudest


def sounding_level(loudness_db: torch.Tensor) -> torch.Tensor:
    """The mean loudness of each clip's sounding frames (within SOUNDING_DB of its loudest).

    Args: loudness_db Shape [batch, n_frames]. Returns Shape [batch]."""
    top = loudness_db.amax(dim=-1, keepdim=True)
    mask = (loudness_db >= top - SOUNDING_DB).to(loudness_db.dtype)
    return (loudness_db * mask).sum(-1) / mask.sum(-1)
