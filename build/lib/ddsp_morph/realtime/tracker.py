"""Streaming f0, level and voicing of an input, hop by hop, in TorchScript-able torch.

One implementation for the live audio-in mode (``realtime.audio_in``), the nn~ export's
audio method and the Neutone export, so that the three agree to the sample.

- ``StreamingYin``: YIN (de Cheveigné & Kawahara, 2002) on the latest samples. The window
  holds two periods of ``fmin``, so its lag (half the window) follows the lowest note asked
  for: 20 ms at 50 Hz, 10 ms at 100 Hz. One FFT correlation per hop.
- ``StreamingLoudness``: the A-weighted level of the latest ``window`` samples, on the
  training feature's scale (a full-scale 1 kHz sine reads -3.01 dB).
- ``InputFollower``: both, plus the voicing gate (silence or an unpitched input sends the
  corpus's quietest loudness while f0 holds its last voiced value, so nothing clicks) and
  the level map (a slow follower of the voiced input level is mapped onto the corpus's mean
  note level, plus a trim): a player 12 dB louder or quieter than the corpus plays the same
  timbre.
"""

import math

import torch
from torch import nn

from ddsp_morph.dsp.loudness import a_weighting_db


class StreamingYin(nn.Module):
    def __init__(
        self, sample_rate: int, hop: int, fmin: float, fmax: float, threshold: float = 0.15
    ) -> None:
        super().__init__()
        self.sample_rate, self.hop, self.threshold = sample_rate, hop, threshold
        self.tau_min = max(2, int(sample_rate / fmax))
        self.tau_max = int(math.ceil(sample_rate / fmin))
        self.length = max(self.tau_max, hop // 2)  # integration length
        self.window = self.length + self.tau_max
        self.n_fft = 1 << int(math.ceil(math.log2(self.window + self.length)))
        self.lag_frames = self.window / 2 / hop
        self.register_buffer("buffer", torch.zeros(self.window, dtype=torch.float64))

    def reset(self) -> None:
        self.buffer.zero_()

    def forward(self, hop_samples: torch.Tensor) -> tuple[float, float]:
        """hop_samples [n] -> (f0 Hz, confidence in [0, 1]; 0 for silence)."""
        n = hop_samples.shape[0]
        x = torch.cat([self.buffer[n:], hop_samples.double()])
        self.buffer.copy_(x)
        L, T = self.length, self.tau_max
        c = torch.cat([torch.zeros(1, dtype=x.dtype), torch.cumsum(x * x, 0)])
        if float(c[L]) < 1e-9 * L or float(c[-1] - c[-L - 1]) < 1e-9 * L:
            return 0.0, 0.0
        corr = torch.fft.irfft(
            torch.conj(torch.fft.rfft(x[:L], self.n_fft)) * torch.fft.rfft(x, self.n_fft),
            self.n_fft,
        )[: T + 1]
        taus = torch.arange(T + 1)
        d = (c[L] + c[taus + L] - c[taus] - 2.0 * corr).clamp_min(0.0)
        d[0] = 0.0
        cum = torch.cumsum(d[1:], 0)
        cmnd = torch.ones(T + 1, dtype=x.dtype)
        cmnd[1:] = d[1:] * taus[1:].double() / cum.clamp_min(1e-12)
        lo = self.tau_min
        below = torch.nonzero(cmnd[lo:T] < self.threshold).flatten()
        if below.numel() > 0:
            tau = lo + int(below[0])
            while tau + 1 < T and float(cmnd[tau + 1]) < float(cmnd[tau]):
                tau += 1
        else:
            tau = lo + int(torch.argmin(cmnd[lo:T]))
        conf = min(max(1.0 - float(cmnd[tau]), 0.0), 1.0)
        tau_f = float(tau)
        if 1 <= tau and tau < T:  # parabolic interpolation of the minimum
            a, b, e = float(cmnd[tau - 1]), float(cmnd[tau]), float(cmnd[tau + 1])
            den = a - 2.0 * b + e
            if den > 1e-12:
                tau_f = tau + min(max(0.5 * (a - e) / den, -1.0), 1.0)
        return self.sample_rate / max(tau_f, 1.0), conf


class StreamingLoudness(nn.Module):
    def __init__(self, sample_rate: int, window: int) -> None:
        super().__init__()
        self.window = window
        freqs = torch.linspace(0, sample_rate / 2, window // 2 + 1, dtype=torch.float64)
        self.register_buffer("weight", torch.pow(10.0, a_weighting_db(freqs) / 10.0))
        self.register_buffer("hann", torch.hann_window(window, dtype=torch.float64))
        self.register_buffer("buffer", torch.zeros(window, dtype=torch.float64))
        self.offset_db = 0.0
        t = torch.arange(window, dtype=torch.float64) / sample_rate
        self.offset_db = -3.0103 - self.level(torch.sin(2 * math.pi * 1000.0 * t))

    def reset(self) -> None:
        self.buffer.zero_()

    def level(self, x: torch.Tensor) -> float:
        spec = torch.fft.rfft(x * self.hann)
        power = float(torch.sum((spec.real**2 + spec.imag**2) * self.weight))
        return 10.0 * math.log10(power + 1e-20) + self.offset_db

    def forward(self, hop_samples: torch.Tensor) -> float:
        n = hop_samples.shape[0]
        x = torch.cat([self.buffer[n:], hop_samples.double()])
        self.buffer.copy_(x)
        return max(self.level(x), -100.0)


class InputFollower(nn.Module):
    """hop samples (model rate) -> (f0 Hz, loudness dB for the model); see the module doc.

    Args:
        target_db: the corpus's mean note level (stats.json ``loudness_db_voiced_mean``).
        floor_db: the corpus's quietest loudness: what silence sends.
    """

    def __init__(
        self,
        sample_rate: int,
        hop: int,
        *,
        fmin: float,
        fmax: float,
        target_db: float,
        floor_db: float,
        voicing_threshold: float = 0.8,
        gate_db: float = -70.0,
        follower_seconds: float = 2.0,
        max_auto_gain_db: float = 24.0,
        auto_gain: bool = True,
        gain_db: float = 0.0,
        loudness_window: int = 512,
    ) -> None:
        super().__init__()
        self.pitch = StreamingYin(sample_rate, hop, fmin, fmax)
        self.loudness = StreamingLoudness(sample_rate, loudness_window)
        self.target_db, self.floor_db = float(target_db), float(floor_db)
        self.voicing_threshold, self.gate_db = float(voicing_threshold), float(gate_db)
        self.alpha = 1.0 - math.exp(-hop / sample_rate / max(follower_seconds, 1e-3))
        self.max_auto_gain_db, self.auto_gain, self.gain_db = (
            float(max_auto_gain_db),
            bool(auto_gain),
            float(gain_db),
        )
        self.follower_db = 0.0
        self.has_follower = False
        self.f0_hold = 0.0
        self.last_level = -100.0
        self.last_voiced = False

    @torch.jit.export
    def reset(self) -> None:
        self.pitch.reset()
        self.loudness.reset()
        self.has_follower = False
        self.f0_hold = 0.0

    @torch.jit.export
    def current_gain_db(self) -> float:
        auto = 0.0
        if self.auto_gain and self.has_follower:
            auto = min(
                max(self.target_db - self.follower_db, -self.max_auto_gain_db),
                self.max_auto_gain_db,
            )
        return auto + self.gain_db

    def forward(self, hop_samples: torch.Tensor) -> tuple[float, float]:
        x = torch.nan_to_num(hop_samples.float(), 0.0, 1.0, -1.0).clamp(-1.0, 1.0)
        f0, confidence = self.pitch(x)
        return self.step(x, f0, confidence)

    @torch.jit.export
    def step(self, x: torch.Tensor, f0: float, confidence: float) -> tuple[float, float]:
        """The level, voicing and gain of a hop whose pitch was estimated elsewhere."""
        level = self.loudness(x)
        voiced = confidence >= self.voicing_threshold and level >= self.gate_db and f0 > 20.0
        if voiced:
            self.f0_hold = f0
            if self.has_follower:
                self.follower_db = self.follower_db + self.alpha * (level - self.follower_db)
            else:
                self.follower_db = level
                self.has_follower = True
        self.last_level, self.last_voiced = level, voiced
        loud = level + self.current_gain_db() if voiced else self.floor_db
        f0_out = self.f0_hold if self.f0_hold > 0 else 220.0
        return f0_out, max(loud, self.floor_db)
