"""The polyphonic synth: ``n_voices`` streaming engines, one per voice (each its own GRU state,
oscillator phases and noise-filter tail), summed through a soft limiter.

A voice that is silent costs nothing: it is not rendered. A voice released and faded to the
floor of the corpus's loudness is free again. A stolen voice plays its old note out over 5 ms
(a linear fade) before its new note starts at the next block, so a steal does not click."""

from __future__ import annotations

import time

import numpy as np

from ddsp_morph.control.voices import PolyController
from ddsp_morph.realtime.performer import Performer, PerformerSettings

STEAL_FADE_SECONDS = 0.005
LIMIT_KNEE = 0.7  # the sum passes unchanged below this; above it bends softly toward 1.0
SILENT_DB = 1.0  # a released voice this close to the loudness floor is over


def soft_limit(x: np.ndarray) -> np.ndarray:
    """Identity below LIMIT_KNEE, then a tanh knee: |y| < 1 for any input."""
    a = np.abs(x)
    over = a > LIMIT_KNEE
    if not over.any():
        return x
    y = x.copy()
    room = 1.0 - LIMIT_KNEE
    y[over] = np.sign(x[over]) * (LIMIT_KNEE + room * np.tanh((a[over] - LIMIT_KNEE) / room))
    return y


class PolyPerformer(Performer):
    def __init__(
        self,
        run,
        settings: PerformerSettings | None = None,
        *,
        n_voices: int = 8,
        mpe: bool = False,
    ):
        super().__init__(run, settings)
        self.controller = PolyController(n_voices, self.controller.s, mpe=mpe)
        self.engines = [self.engine] + [self.make_engine() for _ in range(n_voices - 1)]
        self.fade = np.clip(
            1.0 - np.arange(self.block_size) / (STEAL_FADE_SECONDS * self.sample_rate), 0.0, 1.0
        ).astype(np.float32)
        self.active_counts: list[int] = []

    def _frames(self, controller) -> tuple[np.ndarray, np.ndarray, float]:
        n = self.s.frames_per_block
        f0, loud = np.empty(n, np.float32), np.empty(n, np.float32)
        gate = 0.0
        for i in range(n):
            f0[i], loud[i], gate = controller.frame(self.t + i * self.hop / self.sample_rate)
        return f0, loud, gate

    def _z(self, morph: float | None):
        if self.latent is None:
            return None
        return self.latent.z(self.controller.morph if morph is None else morph, self.controller.pc)

    def next_block(self, f0_hz=None, loudness_db=None) -> np.ndarray:
        start = time.perf_counter()
        pc = self.controller
        mix = np.zeros(self.block_size, np.float32)
        floor = pc.settings.loudness_min_db + SILENT_DB
        active = 0
        for i, voice in enumerate(pc.voices):
            engine = self.engines[i]
            if voice.steal is not None:  # play the stolen note out, then start afresh
                f0, loud, _ = self._frames(voice.steal)
                mix += self.fade * self.synthesize(engine, f0, loud, self._z(None))
                voice.steal = None
                engine.reset()
                active += 1
                continue
            if voice.note is None:
                continue
            f0, loud, gate = self._frames(pc.controllers[i])
            voice.level_db = float(loud.max())
            if voice.released is not None and gate == 0.0 and voice.level_db <= floor:
                pc.free(i)  # its release has ended: silent, free, not rendered
                engine.reset()
                continue
            mix += self.synthesize(engine, f0, loud, self._z(voice.morph))
            active += 1
        self.active_counts.append(active)
        self.t += self.block_size / self.sample_rate
        audio = self.to_device_rate(soft_limit(mix))
        self.compute_seconds.append(time.perf_counter() - start)
        return audio


def performer_for(run, settings: PerformerSettings) -> Performer:
    """The monophonic performer for one voice (last-note priority, legato, portamento), the
    polyphonic one for more, or with MPE."""
    if settings.voices == 1 and not (settings.mpe or settings.layer or settings.split is not None):
        return Performer(run, settings)
    return PolyPerformer(run, settings, n_voices=settings.voices, mpe=settings.mpe)
