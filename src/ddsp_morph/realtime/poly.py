"""The polyphonic synth: ``n_voices`` voices, each its own GRU state, oscillator phases and
noise-filter tail, summed, through one shared reverb, into a peak limiter.

- The compiled engine (``engine="fast"``, the default) plays the active voices together in a
  ``VoiceBank``: each decoder weight is read once per frame for all of them. The torch engine
  (the reference, ``TorchVoices``) runs the same voices as one batch. Both put one reverb on
  the sum, and share the code below (the live loop and the headless render alike).
- A voice that is silent costs nothing: it is not rendered. A voice released and faded to the
  floor of the corpus's loudness is free again.
- A stolen voice plays its old note out over 5 ms (a linear fade) before its new note starts
  at the next block, so a steal does not click.
- With the compiled engine a block allocates no array, whether notes start, stop or are stolen
  (the voice is zeroed in place; its timbre vector comes from a cache)."""

from __future__ import annotations

import time

import numpy as np
from numba import njit

from ddsp_morph.control.voices import PolyController
from ddsp_morph.realtime.performer import Performer, PerformerSettings
from ddsp_morph.realtime.voice_bank import TorchVoices, VoiceBank

STEAL_FADE_SECONDS = 0.005
LIMIT_KNEE = 0.7  # the limiter holds the sum's peaks here (-3.1 dBFS)
LIMIT_RELEASE_SECONDS = 0.08  # the limiter's gain recovers with this time constant
SILENT_DB = 1.0  # a released voice this close to the loudness floor is over
Z_KEYS = 256  # timbre vectors kept per (morph, pc) position


@njit(cache=True)
def limit_into(x, out, state, release):  # pragma: no cover - compiled
    """A peak limiter on the voices' sum: unity gain while |x| stays under LIMIT_KNEE (a voice
    alone plays exactly as the mono synth); a peak above it pulls the gain down at once to
    hold the peak at the knee, and the gain recovers toward 1 with the ``release``
    coefficient per sample. A tanh knee after it (identity below LIMIT_KNEE) keeps |out| < 1
    whatever comes. ``state[0]``: the gain, carried from block to block."""
    room = 1.0 - LIMIT_KNEE
    g = state[0]
    for i in range(x.shape[0]):
        a = abs(x[i])
        if a * g > LIMIT_KNEE:
            g = LIMIT_KNEE / a
        v = x[i] * g
        av = abs(v)
        if av > LIMIT_KNEE:
            w = LIMIT_KNEE + room * np.tanh((av - LIMIT_KNEE) / room)
            v = w if v > 0 else -w
        out[i] = v
        g += (1.0 - g) * release
    state[0] = g


def release_coefficient(sample_rate: float) -> float:
    return 1.0 - float(np.exp(-1.0 / (LIMIT_RELEASE_SECONDS * sample_rate)))


class PolyPerformer(Performer):
    def __init__(
        self,
        run,
        settings: PerformerSettings | None = None,
        *,
        n_voices: int = 8,
        mpe: bool = False,
    ):
        self.n_voices = n_voices
        super().__init__(run, settings)
        s = self.s
        self.controller = PolyController(
            n_voices, self.controller.s, mpe=mpe, split=s.split, layer=s.layer
        )
        self.bank = self.engine  # a VoiceBank (compiled) or TorchVoices (the reference)
        self.fade = np.clip(
            1.0 - np.arange(self.block_size) / (STEAL_FADE_SECONDS * self.sample_rate), 0.0, 1.0
        ).astype(np.float32)
        self.bank.fade[:] = self.fade
        self.restart = np.zeros(n_voices, np.bool_)
        self.limited = np.empty(self.block_size, np.float32)
        self.limiter_gain = np.ones(1)  # the limiter's state
        self.release = release_coefficient(self.sample_rate)
        self._zs: dict[tuple, np.ndarray] = {}
        self.active_counts: list[int] = []

    def make_engine(self):
        s = self.s
        if s.engine == "fast":  # every voice in one bank
            return VoiceBank(
                self.run.model,
                self.n_voices,
                frames_per_block=s.frames_per_block,
                instrument_id=self.source_id,
                weights=s.weights,
                input_tables=s.input_tables,
                activations=s.activations,
            )
        if s.engine == "torch":
            return TorchVoices(
                self.run.model,
                self.n_voices,
                frames_per_block=s.frames_per_block,
                instrument_id=self.source_id,
            )
        return super().make_engine()  # (refuses an unknown engine)

    def _controls(self, controller, f0: np.ndarray, loud: np.ndarray) -> float:
        """The block's controls of one voice into ``f0`` and ``loud``; returns the last gate."""
        gate = 0.0
        for i in range(f0.shape[0]):
            f0[i], loud[i], gate = controller.frame(self.t + i * self.hop / self.sample_rate)
        if gate and not self.out_of_range_warned:
            self._check_range(float(f0[-1]))
        return gate

    def _z(self, morph: float | None) -> np.ndarray | None:
        """The timbre of a voice (its own morph under MPE or a split, else the global one),
        computed once per position and kept."""
        if self.latent is None:
            return None
        if self.z_override is not None:  # a copy: the bank skips an array it has seen
            return np.array(self.z_override, np.float32)
        pc = self.controller
        key = (pc.morph if morph is None else morph, pc.pc[0], pc.pc[1])
        z = self._zs.get(key)
        if z is None:
            if len(self._zs) >= Z_KEYS:
                self._zs.pop(next(iter(self._zs)))
            z = self._zs[key] = self.latent.z(key[0], list(key[1:])).numpy()
        return z

    def next_block(self, f0_hz=None, loudness_db=None) -> np.ndarray:
        start = time.perf_counter()
        mix = self._bank_block()
        limit_into(mix, self.limited, self.limiter_gain, self.release)
        self.t += self.block_size / self.sample_rate
        audio = self.to_device_rate(self.limited)
        if audio is self.limited:
            audio = self.limited.copy()
        self.compute_seconds.append(time.perf_counter() - start)
        return audio

    def _voice_ended(self, i: int, gate: float, loud: np.ndarray) -> bool:
        """Store the voice's level; True (and the voice freed) when its release has ended."""
        pc = self.controller
        voice = pc.voices[i]
        voice.level_db = float(loud.max())
        floor = pc.settings.loudness_min_db + SILENT_DB
        if voice.released is not None and gate == 0.0 and voice.level_db <= floor:
            pc.free(i)  # silent, free, not rendered
            return True
        return False

    def _bank_block(self) -> np.ndarray:
        pc, bank = self.controller, self.bank
        n = 0
        for i, voice in enumerate(pc.voices):
            if voice.steal is not None:  # play the stolen note out, then start afresh
                self._controls(voice.steal, bank.f0_hz[i], bank.loudness_db[i])
                bank.slots[n], bank.fading[n] = i, True
                self.restart[i] = True
                voice.steal = None
                n += 1
                continue
            if voice.note is None:
                continue
            gate = self._controls(pc.controllers[i], bank.f0_hz[i], bank.loudness_db[i])
            if self._voice_ended(i, gate, bank.loudness_db[i]):
                bank.reset_voice(i)
                continue
            z = self._z(voice.morph)
            if z is not None:
                bank.set_z(i, z)
            bank.slots[n], bank.fading[n] = i, False
            n += 1
        mix = bank.process(n)
        for i in range(self.n_voices):
            if self.restart[i]:
                bank.reset_voice(i)
                self.restart[i] = False
        self.active_counts.append(n)
        return mix


def performer_for(run, settings: PerformerSettings) -> Performer:
    """The monophonic performer for one voice (last-note priority, legato, portamento), the
    polyphonic one for more, or with MPE."""
    if settings.voices == 1 and not (settings.mpe or settings.layer or settings.split is not None):
        return Performer(run, settings)
    return PolyPerformer(run, settings, n_voices=settings.voices, mpe=settings.mpe)
