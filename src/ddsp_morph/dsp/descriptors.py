"""Frame-rate audio descriptors used as extra conditioning: spectral centroid, spectral
flatness, MFCC and roughness. Frame m is centred at sample m * hop_length (a centred,
zero-padded STFT), as f0 and loudness are, so every descriptor lines up with the model frames.
"""

from __future__ import annotations

import math

import torch

from ddsp_morph.dsp.core import check_shape
from ddsp_morph.dsp.spectral import frame_spectrum, magnitude, power_spectrum

EPS = 1e-10


BLACKMAN_HARRIS = (0.35875, 0.48829, 0.14128, 0.01168)  # 4-term, sidelobes below -92 dB


def analysis_window(kind: str, n_fft: int, **like) -> torch.Tensor:
    """Periodic ``hann`` or 4-term ``blackman_harris`` window of n_fft samples."""
    if kind == "hann":
        return torch.hann_window(n_fft, **like)
    if kind == "blackman_harris":
        phase = 2 * math.pi * torch.arange(n_fft, **like) / n_fft
        a0, a1, a2, a3 = BLACKMAN_HARRIS
        return a0 - a1 * torch.cos(phase) + a2 * torch.cos(2 * phase) - a3 * torch.cos(3 * phase)
    raise ValueError(f"window: expected 'hann' or 'blackman_harris', got {kind!r}")


def frame_magnitudes(
    audio: torch.Tensor,
    *,
    n_fft: int,
    hop_length: int,
    n_frames: int | None = None,
    window: str = "hann",
) -> torch.Tensor:
    """Windowed, centred STFT magnitudes, frame m centred at m * hop_length.

    Args:
        audio: Shape [batch, n_samples].
        n_frames: frames to return (default n_samples // hop_length); zero frames pad the end.
        window: ``hann`` or ``blackman_harris``.

    Returns:
        Shape [batch, n_frames, n_fft // 2 + 1].
    """
    return _frame_values(audio, n_fft, hop_length, n_frames, window, magnitude)


def frame_power(
    audio: torch.Tensor,
    *,
    n_fft: int,
    hop_length: int,
    n_frames: int | None = None,
    window: str = "hann",
) -> torch.Tensor:
    """``frame_magnitudes(...) ** 2``, formed as re^2 + im^2 (no square root to take back, and
    a gradient that is finite at silent bins). Same arguments and shape."""
    return _frame_values(audio, n_fft, hop_length, n_frames, window, power_spectrum)


def _frame_values(audio, n_fft, hop_length, n_frames, window, value) -> torch.Tensor:
    check_shape("audio", audio, "[batch, n_samples]", 2)
    n = audio.shape[-1] // hop_length if n_frames is None else n_frames
    w = analysis_window(window, n_fft, dtype=audio.dtype, device=audio.device)
    spec = value(frame_spectrum(audio, n_fft, hop_length, w, pad_mode="constant"))[:, :n]
    if spec.shape[1] < n:
        spec = torch.nn.functional.pad(spec, (0, 0, 0, n - spec.shape[1]))
    return spec


def bin_frequencies_hz(n_fft: int, sample_rate: int, **like) -> torch.Tensor:
    return torch.arange(n_fft // 2 + 1, **like) * (sample_rate / n_fft)


def spectral_centroid_hz(
    audio: torch.Tensor, *, sample_rate: int, hop_length: int, n_fft: int = 1024
) -> torch.Tensor:
    """Magnitude-weighted mean frequency per frame, in Hz; 0 for an all-zero frame.

    Args: audio Shape [batch, n_samples]. Returns Shape [batch, n_samples // hop_length].
    """
    mag = frame_magnitudes(audio, n_fft=n_fft, hop_length=hop_length)
    freqs = bin_frequencies_hz(n_fft, sample_rate, dtype=mag.dtype, device=mag.device)
    total = mag.sum(-1)
    return torch.where(total > EPS, (mag * freqs).sum(-1) / total.clamp_min(EPS), 0.0)


def spectral_flatness_db(
    audio: torch.Tensor, *, hop_length: int, n_fft: int = 1024
) -> torch.Tensor:
    """Wiener entropy per frame in dB: 10 log10(geometric mean / arithmetic mean) of the power
    spectrum (floored at 1e-10). 0 dB for white noise, very negative for a pure tone.

    Args: audio Shape [batch, n_samples]. Returns Shape [batch, n_samples // hop_length].
    """
    power = frame_power(audio, n_fft=n_fft, hop_length=hop_length) + EPS
    log_geo = power.log().mean(-1)
    return 10.0 / math.log(10.0) * (log_geo - power.mean(-1).log())


def mfcc(
    audio: torch.Tensor,
    *,
    mel_basis: torch.Tensor,
    dct_basis: torch.Tensor,
    hop_length: int,
    n_frames: int | None = None,
    power: torch.Tensor | None = None,
) -> torch.Tensor:
    """MFCCs: centred Hann STFT -> power -> mel filterbank -> natural log (floored at 1e-10)
    -> DCT. With librosa's Slaney mel basis and an orthonormal DCT-II this equals
    ``librosa.feature.mfcc(..., top_db=None)`` times ln(10) / 10.

    Args:
        audio: Shape [batch, n_samples].
        mel_basis: Shape [n_mels, n_fft // 2 + 1] (its width sets n_fft).
        dct_basis: Shape [n_mfcc, n_mels].

    Returns:
        Shape [batch, n_frames, n_mfcc].
    """
    n_fft = (mel_basis.shape[-1] - 1) * 2
    if power is None:  # else: the caller's STFT power of these frames [batch, frames, bins]
        power = frame_power(audio, n_fft=n_fft, hop_length=hop_length, n_frames=n_frames)
    log_mel = torch.log((power @ mel_basis.T).clamp_min(EPS))
    return log_mel @ dct_basis.T


def harmonic_levels(
    audio: torch.Tensor,
    f0_hz: torch.Tensor,
    *,
    n_harmonics: int,
    sample_rate: int,
    n_fft: int = 1024,
    hop_length: int = 128,
    floor_db: float = -80.0,
    power: torch.Tensor | None = None,
) -> torch.Tensor:
    """The level of each of the first ``n_harmonics`` harmonics of f0 in every frame, in dB
    below the frame's strongest harmonic: the log STFT power (centred Hann) read at k * f0 by
    linear interpolation between bins. A timbre descriptor that the register does not shift,
    where MFCCs move with the pitch. Harmonics at or above Nyquist, and frames without f0,
    read ``floor_db``.

    Args:
        audio: Shape [batch, n_samples].
        f0_hz: Shape [batch, n_frames].

    Returns:
        Shape [batch, n_frames, n_harmonics], dB in [floor_db, 0].
    """
    n_frames = f0_hz.shape[1]
    if power is None:  # else: the caller's STFT power of these frames [batch, frames, bins]
        power = frame_power(audio, n_fft=n_fft, hop_length=hop_length, n_frames=n_frames)
    db = 10.0 * torch.log10(power.clamp_min(EPS))  # [batch, frames, bins]
    n_bins = db.shape[-1]
    k = torch.arange(1, n_harmonics + 1, dtype=db.dtype, device=db.device)
    pos = f0_hz.to(db.dtype).unsqueeze(-1) * k * (n_fft / sample_rate)  # fractional bins
    valid = (pos > 0) & (pos < n_bins - 1)
    lo = pos.floor().clamp(0, n_bins - 2)
    frac = (pos - lo).clamp(0, 1)
    lo = lo.long()
    level = torch.gather(db, -1, lo) * (1 - frac) + torch.gather(db, -1, lo + 1) * frac
    level = torch.where(valid, level, torch.full_like(level, -1e4))
    top = level.amax(dim=-1, keepdim=True)
    return torch.where(valid, level - top, torch.full_like(level, floor_db)).clamp_min(floor_db)


# Vassilakis' roughness model (P. N. Vassilakis, "Perceptual and physical properties of
# amplitude fluctuation and their musical significance", PhD thesis, UCLA 2001; and
# "SRA: a web-based research tool for spectral and roughness analysis of sound signals",
# SMC 2007), over the spectral peaks of each frame:
#
#   R = sum_{i<j} X_ij^0.1 * 0.5 * Y_ij^3.11 * Z_ij
#   X_ij = A_i * A_j                                (amplitude product: loudness dependence)
#   Y_ij = 2 * min(A_i, A_j) / (A_i + A_j)          (amplitude fluctuation degree)
#   Z_ij = exp(-b1 s (f_j - f_i)) - exp(-b2 s (f_j - f_i)),  f_i < f_j
#   s = 0.24 / (0.0207 * f_i + 18.96),  b1 = 3.5,  b2 = 5.75
#
# (Z is Sethares' fit of Plomp & Levelt's dissonance curve: zero at unison, largest near a
# quarter of a critical band, fading over a critical band.) Peaks: local maxima of the
# magnitude spectrum, refined by parabolic interpolation of the log magnitude, the
# ``max_peaks`` largest per frame within 60 dB of the largest; A is the peak's linear amplitude
# (a sine of amplitude a gives A = a). The frame is Blackman-Harris windowed: a Hann window's
# -31 dB sidelobes would pair up into spurious roughness of a pure tone.
ROUGHNESS_B1, ROUGHNESS_B2 = 3.5, 5.75


def spectral_peaks(
    mag: torch.Tensor,
    *,
    sample_rate: int,
    n_fft: int,
    window_sum: float,
    max_peaks: int = 20,
    floor_db: float = -60.0,
    min_amplitude: float = 1e-4,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``max_peaks`` largest local maxima of each frame's magnitude spectrum, keeping
    those within ``floor_db`` of the frame's largest and above ``min_amplitude``.

    Args: mag Shape [batch, n_frames, n_bins]; window_sum: the analysis window's sum (a sine
        of amplitude a then gives a peak of amplitude a).
    Returns: (frequencies in Hz, amplitudes) Shape [batch, n_frames, max_peaks]; missing peaks
        have amplitude 0.
    """
    left, mid, right = mag[..., :-2], mag[..., 1:-1], mag[..., 2:]
    is_peak = (mid > left) & (mid >= right) & (mid > EPS)
    k = min(max_peaks, is_peak.shape[-1])
    score = torch.where(is_peak, mid, torch.zeros_like(mid))
    amp, idx = score.topk(k, dim=-1)
    la, ma, ra = (torch.log(torch.gather(t, -1, idx).clamp_min(EPS)) for t in (left, mid, right))
    denom = la - 2 * ma + ra
    delta = torch.where(denom.abs() > EPS, 0.5 * (la - ra) / denom, 0.0).clamp(-0.5, 0.5)
    peak_log = ma - 0.25 * (la - ra) * delta
    freqs = (idx + 1 + delta) * (sample_rate / n_fft)
    amps = torch.where(amp > 0, peak_log.exp() * (2.0 / window_sum), 0.0)
    floor = amps.amax(-1, keepdim=True) * 10.0 ** (floor_db / 20.0)
    amps = torch.where((amps >= floor) & (amps >= min_amplitude), amps, 0.0)
    return freqs, amps


def roughness(
    audio: torch.Tensor,
    *,
    sample_rate: int,
    hop_length: int,
    n_fft: int = 4096,
    max_peaks: int = 20,
) -> torch.Tensor:
    """Vassilakis roughness per frame (formula above), over the spectral peaks of a centred
    Blackman-Harris frame of ``n_fft`` samples (4096 at 16 kHz: 3.9 Hz bins; two partials
    resolve from about 16 Hz apart). 0 for a single pure tone.

    Args: audio Shape [batch, n_samples]. Returns Shape [batch, n_samples // hop_length].
    """
    mag = frame_magnitudes(audio, n_fft=n_fft, hop_length=hop_length, window="blackman_harris")
    f, a = spectral_peaks(
        mag,
        sample_rate=sample_rate,
        n_fft=n_fft,
        max_peaks=max_peaks,
        window_sum=n_fft * BLACKMAN_HARRIS[0],
    )
    fi, fj = f.unsqueeze(-1), f.unsqueeze(-2)
    ai, aj = a.unsqueeze(-1), a.unsqueeze(-2)
    f_lo, f_hi = torch.minimum(fi, fj), torch.maximum(fi, fj)
    a_min, a_max = torch.minimum(ai, aj), torch.maximum(ai, aj)
    s = 0.24 / (0.0207 * f_lo + 18.96)
    df = f_hi - f_lo
    z = torch.exp(-ROUGHNESS_B1 * s * df) - torch.exp(-ROUGHNESS_B2 * s * df)
    x = (a_min * a_max).clamp_min(0.0)
    y = 2 * a_min / (a_min + a_max).clamp_min(EPS)
    r = x.pow(0.1) * 0.5 * y.pow(3.11) * z
    upper = torch.triu(torch.ones(r.shape[-2:], dtype=torch.bool, device=r.device), diagonal=1)
    return (r * upper).sum((-2, -1))


# Conditioning signals beside f0: the decoder input name -> the batch key that holds it.
# Each enters the decoder as conditioning_transform(name, value), standardized with the
# training split's statistics (stats.json beside the manifest).
CONDITIONING_KEYS = {
    "loudness": "loudness_db",
    "centroid": "centroid_hz",
    "periodicity": "periodicity",
    "flatness": "flatness_db",
    "roughness": "roughness",
    "mfcc": "mfcc",
}
ROUGHNESS_FLOOR = 1e-4


def conditioning_transform(name: str, value: torch.Tensor) -> torch.Tensor:
    """The scale a signal is standardized on: log2 Hz for the centroid (so +20% is a shift),
    log10 for roughness (floored at 1e-4), dB floored at -100 for flatness, else as is."""
    if name == "centroid":
        return torch.log2(value.clamp_min(20.0))
    if name == "roughness":
        return torch.log10(value.clamp_min(0.0) + ROUGHNESS_FLOOR)
    if name == "flatness":
        return value.clamp_min(-100.0)
    return value
