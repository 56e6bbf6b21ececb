"""Streaming integer-ratio upsampling (16 kHz model -> 48 kHz device) with a polyphase FIR.

soxr's streaming HQ resampler holds 32 ms of input back before it emits (its quick mode
does not, at a lower quality); a short linear-phase FIR holds back half its length: 48 taps
at 48 kHz is 0.49 ms, with images 60 dB down."""

from __future__ import annotations

import numpy as np


def lowpass_taps(factor: int, taps_per_phase: int = 16, beta: float = 8.0) -> np.ndarray:
    """Kaiser-windowed sinc, cutoff at 0.9 x the input Nyquist, DC gain ``factor``."""
    n = factor * taps_per_phase
    t = np.arange(n) - (n - 1) / 2
    cutoff = 0.9 / factor  # in cycles per output sample x 2
    h = cutoff * np.sinc(cutoff * t) * np.kaiser(n, beta)
    return (h / h.sum() * factor).astype(np.float64)


class PolyphaseUpsampler:
    """Upsample by an integer ``factor``, block by block; consecutive blocks equal one call on
    the concatenation. Delay: ``delay_samples`` output samples."""

    def __init__(self, factor: int, taps_per_phase: int = 16, beta: float = 8.0) -> None:
        if factor < 1:
            raise ValueError(f"factor: must be >= 1, got {factor}")
        self.factor = factor
        h = lowpass_taps(factor, taps_per_phase, beta)
        self.phases = [h[p::factor] for p in range(factor)]  # phase p: h[p + factor * j]
        self.history = np.zeros(taps_per_phase - 1)
        self.delay_samples = (len(h) - 1) / 2

    def process(self, block: np.ndarray) -> np.ndarray:
        x = np.concatenate([self.history, np.asarray(block, np.float64)])
        out = np.empty(len(block) * self.factor)
        for p, g in enumerate(self.phases):
            out[p :: self.factor] = np.convolve(x, g, mode="valid")
        if len(self.history):
            self.history = x[-len(self.history) :]
        return out.astype(np.float32)


class PolyphaseDownsampler:
    """Downsample by an integer ``factor``, block by block (the upsampler's low-pass, then every
    ``factor``-th sample); blocks need not be multiples of ``factor``. Delay:
    ``delay_samples`` input samples."""

    def __init__(self, factor: int, taps_per_phase: int = 16, beta: float = 8.0) -> None:
        if factor < 1:
            raise ValueError(f"factor: must be >= 1, got {factor}")
        self.factor = factor
        self.h = lowpass_taps(factor, taps_per_phase, beta) / factor  # DC gain 1
        self.history = np.zeros(len(self.h) - 1)
        self.phase = 0  # index (into the next block) of the next output sample
        self.delay_samples = (len(self.h) - 1) / 2

    def process(self, block: np.ndarray) -> np.ndarray:
        x = np.concatenate([self.history, np.asarray(block, np.float64)])
        full = np.convolve(x, self.h[::-1], mode="valid")  # full[i]: filter ending at block[i]
        out = full[self.phase :: self.factor]
        n = len(block)
        self.phase = (self.phase - n) % self.factor if n else self.phase
        self.history = x[-(len(self.h) - 1) :] if len(self.h) > 1 else self.history
        return out.astype(np.float32)
