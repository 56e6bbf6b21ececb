"""Pitch post-processing on a magnitude spectrum: the octave (and twelfth) check.

A frame-wise pitch estimator with a weak fundamental in front of it tends to report a harmonic:
2, 3 or 6 times the true f0 on low reeds and strings. The spectrum says which: if ``f`` is
right, the positions k·f/m with k not a multiple of m hold no partials (only leakage and
noise); if the true f0 is f/m, they hold its partials. ``harmonic_divisor`` measures the mean
peak magnitude there against the mean at k·f and returns the m that explains the spectrum.
"""

from __future__ import annotations

import torch

N_FFT = 4096  # 3.9 Hz bins at 16 kHz: partials of a 50 Hz tone are 13 bins apart
HARMONICS = 8  # partials of f compared (and K·m candidate positions for f/m)
MAX_DIVISOR = 6
TOLERANCE = 0.015  # a partial is searched within ±1.5 % of its nominal frequency
MAX_SEARCH_BINS = 12
THRESHOLD = 0.4  # mean magnitude ratio (new positions / partials of f) that means "f/m"


def _peak_levels(mag: torch.Tensor, freqs: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Largest magnitude within ±TOLERANCE (at least ±1.5 bins) of each frequency.

    Args:
        mag: [n_bins, n_frames] magnitude spectrogram.
        freqs: [n_frames, n_positions] Hz.
    """
    n_bins, n_frames = mag.shape
    n_fft = 2 * (n_bins - 1)
    offsets = torch.arange(-MAX_SEARCH_BINS, MAX_SEARCH_BINS + 1)
    b = freqs * n_fft / sample_rate
    width = (b * TOLERANCE).clamp(1.5, MAX_SEARCH_BINS)
    idx = b.round().long()[..., None] + offsets
    inside = (offsets.abs() <= width[..., None]) & (idx >= 0) & (idx < n_bins)
    frames = torch.arange(n_frames)[:, None, None]
    vals = mag.T[frames, idx.clamp(0, n_bins - 1)]
    return (vals * inside).amax(-1)


def harmonic_divisor(
    audio: torch.Tensor,
    f0_hz: torch.Tensor,
    *,
    sample_rate: int,
    hop_length: int,
    fmin: float,
    fmax_partials: float = 6000.0,
    threshold: float = THRESHOLD,
    max_divisor: int = MAX_DIVISOR,
    smooth_frames: int = 5,
    passes: int = 2,
) -> torch.Tensor:
    """Per frame, the integer m (1 = keep) such that f0 / m is the pitch the spectrum supports.

    Each pass takes the divisor whose new positions hold the most partials (relative to the
    partials of f); a second pass resolves 6x as 3x then 2x.

    Args:
        audio: [n_samples] mono.
        f0_hz: [n_frames] an estimate per frame, frame m centred at m * hop_length.
        fmin: f0 / m is never taken below this.
        smooth_frames: a running median over this many frames (odd) steadies the choice.

    Returns:
        [n_frames] long.
    """
    n_frames = f0_hz.shape[0]
    mag = torch.stft(
        audio.float(),
        N_FFT,
        hop_length,
        window=torch.hann_window(N_FFT),
        center=True,
        return_complex=True,
    ).abs()[:, :n_frames]
    if mag.shape[1] < n_frames:
        mag = torch.nn.functional.pad(mag, (0, n_frames - mag.shape[1]))
    total = torch.ones(n_frames, dtype=torch.long)
    for _ in range(passes):
        m = _divisor_once(
            f0_hz / total,
            sample_rate=sample_rate,
            fmin=fmin,
            fmax_partials=fmax_partials,
            threshold=threshold,
            max_divisor=max_divisor,
            mag=mag,
        )
        if (m == 1).all():
            break
        total = total * m
    if smooth_frames > 1 and n_frames:
        half = smooth_frames // 2
        padded = torch.nn.functional.pad(total[None, None].double(), (half, half), mode="replicate")
        total = padded[0, 0].unfold(0, smooth_frames, 1).median(-1).values.long()
    return total


def _divisor_once(
    f0_hz: torch.Tensor,
    *,
    sample_rate: int,
    fmin: float,
    fmax_partials: float = 6000.0,
    threshold: float,
    max_divisor: int,
    mag: torch.Tensor,
) -> torch.Tensor:
    n_frames = f0_hz.shape[0]
    f = f0_hz.double()
    ks = torch.arange(1, HARMONICS + 1, dtype=torch.float64)
    own = f[:, None] * ks
    own_ok = own < fmax_partials
    ref = (_peak_levels(mag, own, sample_rate) * own_ok).sum(1) / own_ok.sum(1).clamp(min=1)
    ref = ref + 1e-9
    best_ratio = torch.zeros(n_frames, dtype=torch.float64)
    best = torch.ones(n_frames, dtype=torch.long)
    for m in range(2, max_divisor + 1):
        new_k = torch.tensor([k for k in range(1, HARMONICS * m + 1) if k % m], dtype=torch.float64)
        sub = f / m
        pos = sub[:, None] * new_k
        ok = pos < fmax_partials
        ratio = (_peak_levels(mag, pos, sample_rate) * ok).sum(1) / ok.sum(1).clamp(min=1) / ref
        ratio = torch.where(sub >= fmin, ratio, torch.zeros_like(ratio))
        better = ratio > best_ratio
        best_ratio = torch.where(better, ratio, best_ratio)
        best = torch.where(better, torch.full_like(best, m), best)
    return torch.where(best_ratio > threshold, best, torch.ones_like(best))
