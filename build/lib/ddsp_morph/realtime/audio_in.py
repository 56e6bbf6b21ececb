"""Audio in: a player's instrument drives the model (timbre transfer), block by block.

The input is brought to the model rate (a polyphase FIR for an integer ratio, soxr's quick
stream otherwise), then every hop (8 ms at 16 kHz) gives one frame of controls from
``realtime.tracker.InputFollower``: f0 from a streaming YIN whose window holds two periods of
the lowest note the run was trained on, the causal A-weighted loudness the model was trained
on, a voicing gate (unvoiced: the corpus's quietest loudness with f0 held, so nothing sticks
and nothing clicks) and the level map (a slow follower of the voiced input level mapped onto
the corpus's mean note level, plus a trim). ``tracker="pesto"`` takes f0 and voicing from
PESTO's streaming network instead (``pesto-pitch``, weights in the wheel; no lookahead, its
CQT's future half mirrored from the past), at about 12 times the cost.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from ddsp_morph.dsp.resample import PolyphaseDownsampler
from ddsp_morph.errors import DDSPMorphError


@dataclass
class AudioInSettings:
    # tracker confidence under this: unvoiced (None: 0.8 for yin, 0.5 for pesto)
    voicing_threshold: float | None = None
    gate_db: float = -70.0  # input level (A-weighted dB) under this: silence
    auto_gain: bool = True
    follower_seconds: float = 2.0  # time constant of the slow level follower
    max_auto_gain_db: float = 24.0
    gain_db: float = 0.0  # added to the mapped loudness (the player's trim)
    loudness_window: int = 512  # samples at the model rate (32 ms at 16 kHz)
    tracker: str = "yin"  # yin: cheap, lag set by the lowest note; pesto: a network
    fmin: float | None = None  # lowest f0 tracked (None: the run's trained range, less a fifth)
    fmax: float = 2000.0


class StreamingPitch:
    """PESTO (mir-1k_g7) in streaming mode: ``hop`` samples in, (f0 Hz, confidence) out.

    ``lag_frames``: the estimate describes the audio about this many hops before the newest
    sample (measured: ``experiments/realtime/audio_in``)."""

    lag_frames = 2

    def __init__(self, sample_rate: int, hop: int) -> None:
        import pesto

        self.hop = hop
        self.model = pesto.load_model(
            "mir-1k_g7",
            step_size=1000.0 * hop / sample_rate,
            sampling_rate=sample_rate,
            streaming=True,
            mirror=1.0,
            max_batch_size=1,
        ).eval()
        self.sample_rate = sample_rate

    def __call__(self, hop_samples: np.ndarray) -> tuple[float, float]:
        x = torch.from_numpy(np.ascontiguousarray(hop_samples, np.float32))[None]
        with torch.inference_mode():
            f0, conf, _ = self.model(
                x, sr=self.sample_rate, convert_to_freq=True, return_activations=False
            )
        return float(f0.reshape(-1)[-1]), float(conf.reshape(-1)[-1])


def voicing_threshold(s: AudioInSettings) -> float:
    """The tracker confidence under which a frame is unvoiced (the setting, or per tracker)."""
    if s.voicing_threshold is not None:
        return s.voicing_threshold
    return {"yin": 0.8, "pesto": 0.5}[s.tracker]


def input_follower(stats: dict, sample_rate: int, hop: int, s: AudioInSettings):
    """The InputFollower a run's corpus statistics ask for: YIN from a fifth under the lowest
    note it was trained on, the level map onto its mean note level, silence at its floor."""
    from ddsp_morph.realtime.tracker import InputFollower

    fmin = s.fmin
    if fmin is None:
        low = stats.get("f0_hz_voiced_p005", stats.get("f0_hz_min", 50.0))
        fmin = max(32.0, float(low) / 1.5)
    return InputFollower(
        sample_rate,
        hop,
        fmin=fmin,
        fmax=s.fmax,
        # the corpus's level of notes (older corpora: 10 dB under their 95th percentile)
        target_db=float(
            stats.get("loudness_db_voiced_mean", stats.get("loudness_db_p95", -20.0) - 10.0)
        ),
        floor_db=float(stats.get("loudness_db_min", -80.0)),
        voicing_threshold=voicing_threshold(s),
        gate_db=s.gate_db,
        follower_seconds=s.follower_seconds,
        max_auto_gain_db=s.max_auto_gain_db,
        auto_gain=s.auto_gain,
        gain_db=s.gain_db,
        loudness_window=s.loudness_window,
    )


class AudioFollower:
    """Input audio (any rate) -> per-frame (f0 Hz, loudness dB) for the model.

    Args:
        stats: the corpus statistics (stats.json) of the run: its note level and f0 range.
        input_rate: the device's (or file's) sample rate.
    """

    def __init__(
        self,
        *,
        sample_rate: int,
        hop: int,
        input_rate: int,
        stats: dict,
        settings: AudioInSettings | None = None,
    ) -> None:
        import soxr

        self.s = settings or AudioInSettings()
        if self.s.tracker not in ("yin", "pesto"):
            raise DDSPMorphError(f"--tracker: expected 'yin' or 'pesto', got {self.s.tracker!r}")
        self.sample_rate, self.hop, self.input_rate = sample_rate, hop, input_rate
        self.downsampler = None
        self.resampler = None
        if input_rate != sample_rate:
            if input_rate % sample_rate == 0:
                self.downsampler = PolyphaseDownsampler(input_rate // sample_rate)
            else:
                self.resampler = soxr.ResampleStream(
                    input_rate, sample_rate, 1, dtype="float32", quality="QQ"
                )
        self.threshold = voicing_threshold(self.s)
        self.follower = input_follower(stats, sample_rate, hop, self.s)
        self.pesto = StreamingPitch(sample_rate, hop) if self.s.tracker == "pesto" else None
        self.pitch = self.pesto or self.follower.pitch
        self.pending = np.zeros(0, np.float32)
        # (f0, input dB, voiced, gain) of the last 10 minutes of frames, for the render's stats
        self.frames: deque[tuple[float, float, bool, float]] = deque(
            maxlen=int(600 * sample_rate / hop)
        )

    @property
    def resampler_delay_s(self) -> float:
        if self.downsampler is not None:
            return self.downsampler.delay_samples / self.input_rate
        return 0.0 if self.resampler is None else 1e-3  # soxr QQ: about a millisecond

    def gain_db(self) -> float:
        return self.follower.current_gain_db()

    def push(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Feed input samples (mono, the input rate); returns the controls of every frame that
        completed: f0 [k], loudness [k] (k may be 0, 1 or more)."""
        x = np.nan_to_num(np.asarray(block, np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
        x = np.clip(x, -1.0, 1.0)  # a clipping input keeps streaming
        if self.downsampler is not None:
            x = self.downsampler.process(x)
        elif self.resampler is not None:
            x = self.resampler.resample_chunk(x)
        self.pending = np.concatenate([self.pending, x])
        f0s, louds = [], []
        while len(self.pending) >= self.hop:
            hop, self.pending = self.pending[: self.hop], self.pending[self.hop :]
            f0, ld = self.frame(hop)
            f0s.append(f0)
            louds.append(ld)
        return np.asarray(f0s, np.float32), np.asarray(louds, np.float32)

    def frame(self, hop_samples: np.ndarray) -> tuple[float, float]:
        x = torch.from_numpy(np.ascontiguousarray(hop_samples, np.float32))
        with torch.inference_mode():
            if self.pesto is not None:
                f0, loud = self.follower.step(x, *self.pesto(hop_samples))
            else:
                f0, loud = self.follower(x)
        fol = self.follower
        self.frames.append((f0, fol.last_level, fol.last_voiced, fol.current_gain_db()))
        return f0, loud


def corpus_stats(run) -> dict:
    import json
    from pathlib import Path

    path = Path(run.cfg.data.corpus_dir) / "stats.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DDSPMorphError(
            f"{path}: the corpus statistics of this run are missing ({type(e).__name__}); "
            "audio in maps the input level onto them — run `make data` for the run's corpus"
        ) from None


class AudioPerformer:
    """A Performer driven by input audio: ``process(input block)`` -> output block. The
    timbre (CC1 / OSC / XY) stays live through ``performer.controller``."""

    def __init__(self, run, settings, audio: AudioInSettings | None, input_rate: int) -> None:
        from ddsp_morph.realtime.performer import Performer

        self.performer = Performer(run, settings)
        p = self.performer
        self.follower = AudioFollower(
            sample_rate=p.sample_rate,
            hop=p.hop,
            input_rate=input_rate,
            stats=corpus_stats(run),
            settings=audio,
        )
        self.frames_per_block = settings.frames_per_block
        self.f0_queue = np.zeros(0, np.float32)
        self.loud_queue = np.zeros(0, np.float32)
        self.tracker_seconds: deque[float] = deque(maxlen=self.follower.frames.maxlen)

    def process(self, block: np.ndarray) -> list[np.ndarray]:
        """Input samples in; zero or more output blocks (device rate) out."""
        import time

        t0 = time.perf_counter()
        f0, loud = self.follower.push(block)
        self.tracker_seconds.append(time.perf_counter() - t0)
        self.f0_queue = np.concatenate([self.f0_queue, f0])
        self.loud_queue = np.concatenate([self.loud_queue, loud])
        out = []
        k = self.frames_per_block
        while len(self.f0_queue) >= k:
            out.append(self.performer.next_block(self.f0_queue[:k], self.loud_queue[:k]))
            self.f0_queue, self.loud_queue = self.f0_queue[k:], self.loud_queue[k:]
        return out


def render_audio_file(
    run,
    audio_path,
    settings,
    audio: AudioInSettings | None = None,
    *,
    sweep: bool = False,
    morph: float | None = None,
    midi_path=None,
) -> tuple[np.ndarray, dict]:
    """The headless twin of the live audio-in mode: the file is fed block by block, at the
    block size the device would deliver, through the same AudioPerformer. The timbre: a CC1
    sweep from 0 to 127 across the file (``sweep``), a fixed ``morph``, or a MIDI file's
    CC/OSC-equivalent events (``midi_path``; its notes are ignored, the audio plays)."""
    from ddsp_morph.control.midi import midi_events
    from ddsp_morph.data.io import read_audio

    x, rate = read_audio(audio_path)
    ap = AudioPerformer(run, settings, audio, rate)
    p = ap.performer
    block_in = int(round(p.block_size * rate / p.sample_rate))
    events = midi_events(midi_path) if midi_path is not None else []
    events = [(t, m) for t, m in events if m.type not in ("note_on", "note_off")]
    n_blocks = int(np.ceil(len(x) / block_in))
    out, k = [], 0
    for b in range(n_blocks):
        t = b * block_in / rate
        if sweep:
            p.controller.morph = min(1.0, t / max(len(x) / rate, 1e-9))
        elif morph is not None:
            p.controller.morph = float(morph)
        while k < len(events) and events[k][0] <= t:
            p.controller.handle(events[k][1], events[k][0])
            k += 1
        out += ap.process(x[b * block_in : (b + 1) * block_in])
    out.append(p.flush())
    y = np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)
    c = np.asarray(p.compute_seconds)
    tr = np.asarray(ap.tracker_seconds)
    block_s = p.block_size / p.sample_rate
    frames = ap.follower.frames
    stats = {
        "blocks": int(len(c)),
        "block_ms": 1000 * block_s,
        "model_ms_median": float(np.median(c) * 1000) if len(c) else 0.0,
        "tracker_ms_median": float(np.median(tr) * 1000) if len(tr) else 0.0,
        "real_time_factor": float((c.sum() + tr.sum()) / max(len(c) * block_s, 1e-9)),
        "voiced_fraction": float(np.mean([f[2] for f in frames])) if frames else 0.0,
        "input_level_db_median": float(np.median([f[1] for f in frames if f[2]]))
        if any(f[2] for f in frames)
        else None,
        "auto_gain_db_final": float(frames[-1][3]) if frames else 0.0,
        "tracker": ap.follower.s.tracker,
        "tracker_lag_ms": 1000 * ap.follower.pitch.lag_frames * p.hop / p.sample_rate,
        "resampler_in_ms": 1000 * ap.follower.resampler_delay_s,
        "source": p.latent.source if p.latent else None,
        "target": p.latent.target if p.latent else None,
    }
    return y, stats
