"""Unit conversions, shape checks and frame-to-sample upsampling."""

from __future__ import annotations

import math

import torch

LOG10 = math.log(10.0)


def check_shape(name: str, x: torch.Tensor, expected: str, ndim: int) -> None:
    """Raise a ValueError naming ``name`` when ``x`` does not have ``ndim`` dimensions."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{name}: expected a torch.Tensor of shape {expected}, got {type(x).__name__}"
        )
    if x.ndim != ndim:
        raise ValueError(f"{name}: expected shape {expected}, got {tuple(x.shape)}")


def hz_to_midi(f0_hz: torch.Tensor) -> torch.Tensor:
    """Frequency in Hz to (fractional) MIDI note number; 0 Hz maps to MIDI 0."""
    midi = 12.0 * torch.log2(f0_hz.clamp_min(1e-5) / 440.0) + 69.0
    return torch.where(f0_hz > 0, midi, torch.zeros_like(midi))


def midi_to_hz(midi: torch.Tensor) -> torch.Tensor:
    """MIDI note number to frequency in Hz."""
    return 440.0 * torch.pow(2.0, (midi - 69.0) / 12.0)


def amplitude_to_db(amplitude: torch.Tensor, *, amin: float = 1e-10) -> torch.Tensor:
    """Linear amplitude to dB (20 log10), floored at ``amin``."""
    return 20.0 * torch.log10(amplitude.abs().clamp_min(amin))


def db_to_amplitude(db: torch.Tensor) -> torch.Tensor:
    """dB to linear amplitude."""
    return torch.pow(10.0, db / 20.0)


EXP_SIGMOID_EXPONENT, EXP_SIGMOID_MAX, EXP_SIGMOID_THRESHOLD = 10.0, 2.0, 1e-7


def exp_sigmoid(
    x: torch.Tensor,
    *,
    exponent: float = EXP_SIGMOID_EXPONENT,
    max_value: float = EXP_SIGMOID_MAX,
    threshold: float = EXP_SIGMOID_THRESHOLD,
) -> torch.Tensor:
    """The DDSP output nonlinearity: ``max_value * sigmoid(x) ** log(exponent) + threshold``.

    Positive, with a wide dynamic range and a gradient that does not vanish for quiet outputs.
    """
    return max_value * torch.sigmoid(x) ** math.log(exponent) + threshold


def upsample_frames(
    frames: torch.Tensor,
    hop_length: int,
    *,
    method: str = "hann",
    previous: torch.Tensor | None = None,
) -> torch.Tensor:
    """Upsample control frames to audio rate, causally.

    Frame ``m`` is reached at the last sample of hop ``m``: samples ``[m*hop, (m+1)*hop)``
    move from frame ``m-1`` to frame ``m``. Frame ``-1`` is ``previous`` when given (the last
    frame of the preceding block, for streaming) and frame 0 otherwise, so a block-by-block
    render equals a one-shot render.

    Args:
        frames: Shape [batch, n_frames, channels].
        hop_length: samples per frame.
        method: ``"hann"`` (overlapping raised-cosine windows, which sum to one) or ``"linear"``.
        previous: Shape [batch, channels], or None.

    Returns:
        Shape [batch, n_frames * hop_length, channels].
    """
    check_shape("frames", frames, "[batch, n_frames, channels]", 3)
    batch, n_frames, channels = frames.shape
    prev = frames[:, :1] if previous is None else previous.reshape(batch, 1, channels)
    start = torch.cat([prev, frames[:, :-1]], dim=1)  # [B, M, C]
    ramp = upsample_ramp(hop_length, method=method, dtype=frames.dtype, device=frames.device)
    # [B, M, 1, C] + [H, 1] * [B, M, 1, C]
    out = start.unsqueeze(2) + ramp.view(1, 1, hop_length, 1) * (frames - start).unsqueeze(2)
    return out.reshape(batch, n_frames * hop_length, channels)


def upsample_ramp(
    hop_length: int,
    *,
    method: str = "hann",
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Weight of the new frame at each sample of a hop, rising from just above 0 to exactly 1.

    Returns:
        Shape [hop_length].
    """
    alpha = torch.arange(1, hop_length + 1, dtype=torch.float64, device=device) / hop_length
    if method == "linear":
        ramp = alpha
    elif method == "hann":
        # Rising half of a periodic Hann window of length 2*hop: overlapping windows sum to one.
        ramp = torch.sin(0.5 * math.pi * alpha) ** 2
    else:
        raise ValueError(f"method: expected 'hann' or 'linear', got {method!r}")
    return ramp.to(dtype)
