"""Polyphony: which voice plays which note, and the controls of every voice.

Each voice has its own ``MidiController`` (its note, envelope, bend, vibrato), so a voice plays
exactly what the monophonic synth plays for one note. Allocation takes a free voice; if none is
free it steals the voice released longest ago, then the quietest one (the synth fades a stolen
voice out within 5 ms). The sustain pedal holds voices.

MPE (MIDI Polyphonic Expression, lower zone): channel 1 is the master (its messages reach every
voice), member channels 2-16 carry one note each, and that channel's pitch bend (±48 semitones
unless RPN 0 says otherwise), CC74 (the voice's own place on the morph path) and channel
pressure (its loudness) move only that note's voice. Without MPE, bends and CCs reach every
voice, and velocity sets each note's loudness."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ddsp_morph.control.midi import MidiController, MidiSettings

MPE_MASTER = 0  # mido's channel numbers are 0-based: MIDI channel 1
MPE_BEND_RANGE = 48.0
TIMBRE_CC = 74


@dataclass
class VoiceState:
    note: int | None = None  # the note it plays (None: free)
    channel: int = 0
    started: int = 0  # allocation order
    released: int | None = None  # release order (None: held)
    level_db: float = -120.0  # the loudness it plays at now (set by the synth)
    morph: float | None = None  # MPE CC74: its own place on the morph path (None: the global one)
    steal: MidiController | None = None  # the note it plays out (fading) before the new one


class PolyController:
    """Routes MIDI messages to ``n_voices`` per-voice controllers."""

    def __init__(
        self,
        n_voices: int,
        settings: MidiSettings | None = None,
        *,
        mpe: bool = False,
        split: int | None = None,
        layer: bool = False,
    ):
        """``split``: notes below it play the path's first instrument (morph 0), from it up the
        second (morph 1); ``layer``: every note plays both, on two voices."""
        if n_voices < 1:
            raise ValueError(f"n_voices: need at least 1, got {n_voices}")
        base = settings or MidiSettings()
        if mpe:
            base = replace(base, bend_range=MPE_BEND_RANGE, channel=None)
        self.settings, self.mpe, self.split, self.layer = base, mpe, split, layer
        self.controllers = [MidiController(base) for _ in range(n_voices)]
        self.voices = [VoiceState() for _ in range(n_voices)]
        self.clock = 0
        self.morph = 0.0
        self.pc = [0.0, 0.0]
        self.pedal = False
        self.rpn: dict[int, tuple[int | None, int | None]] = {}  # channel -> (CC101, CC100)
        self.bend_ranges: dict[int, float] = {}  # channel -> semitones (RPN 0)

    # --- allocation ----------------------------------------------------------------------
    def allocate(self) -> tuple[int, bool]:
        """(voice, stolen): a free voice, else the one released longest ago, else the quietest."""
        free = [i for i, v in enumerate(self.voices) if v.note is None]
        if free:
            return min(free, key=lambda i: self.voices[i].started), False
        released = [i for i, v in enumerate(self.voices) if v.released is not None]
        if released:
            return min(released, key=lambda i: self.voices[i].released), True
        return min(range(len(self.voices)), key=lambda i: self.voices[i].level_db), True

    def voice_of(self, note: int, channel: int) -> list[int]:
        return [
            i
            for i, v in enumerate(self.voices)
            if v.note == note and v.channel == channel and v.released is None
        ]

    def free(self, i: int) -> None:
        """The synth found voice ``i`` silent after its release: it is free again."""
        self.voices[i] = VoiceState(started=self.voices[i].started)

    # --- events --------------------------------------------------------------------------
    def handle(self, msg, t: float) -> None:
        kind = msg.type
        channel = getattr(msg, "channel", 0)
        member = self.mpe and channel != MPE_MASTER
        if kind == "note_on" and msg.velocity > 0:
            self._note_on(msg, channel, t)
        elif kind in ("note_on", "note_off"):
            for i in self.voice_of(msg.note, channel):
                c = self.controllers[i]
                c.handle(msg, t)
                if c.release_t is not None and not c.held:
                    self.voices[i].released = self._tick()
        elif kind == "pitchwheel":
            for i in self._targets(channel, member):
                c = self.controllers[i]
                rng = self.bend_ranges.get(channel, c.s.bend_range)
                c.bend = float(np.clip(msg.pitch / 8192.0, -1.0, 1.0)) * rng
        elif kind == "aftertouch" and member:
            for i in self._targets(channel, member):
                c = self.controllers[i]
                s = c.s
                pressure = float(np.clip(msg.value / 127.0, 0.0, 1.0))
                c.osc_loudness = s.loudness_min_db + pressure * (
                    s.loudness_max_db - s.loudness_min_db
                )
        elif kind == "control_change":
            self._control(msg, channel, member, t)

    def _note_on(self, msg, channel: int, t: float) -> None:
        for i in self.voice_of(msg.note, channel):  # the same key again: retrigger its voice
            self.voices[i].released = self._tick()
        if self.layer:
            morphs: list[float | None] = [0.0, 1.0]
        elif self.split is not None:
            morphs = [0.0 if msg.note < self.split else 1.0]
        else:
            morphs = [None]
        for morph in morphs:
            i, stolen = self.allocate()
            old = self.controllers[i]
            fresh = MidiController(self.settings)
            fresh.morph, fresh.pc, fresh.vibrato = self.morph, list(self.pc), old.vibrato
            if not self.mpe:
                fresh.bend = old.bend
            fresh.pedal = self.pedal
            fresh.last_t = t
            fresh.handle(msg, t)
            self.controllers[i] = fresh
            self.voices[i] = VoiceState(
                note=msg.note,
                channel=channel,
                started=self._tick(),
                morph=morph,
                steal=old if stolen else None,
            )

    def _control(self, msg, channel: int, member: bool, t: float) -> None:
        s = self.settings
        if member and msg.control == TIMBRE_CC:
            for i in self._targets(channel, member):
                self.voices[i].morph = float(np.clip(msg.value / 127.0, 0.0, 1.0))
            return
        if msg.control in (101, 100):  # RPN select (MSB, LSB)
            msb, lsb = self.rpn.get(channel, (None, None))
            self.rpn[channel] = (msg.value, lsb) if msg.control == 101 else (msb, msg.value)
            return
        if msg.control == 6 and self.rpn.get(channel) == (0, 0):  # RPN 0: pitch bend range
            self.bend_ranges[channel] = float(msg.value)
            if self.mpe and channel == MPE_MASTER:  # the zone's members follow the master
                for ch in range(1, 16):
                    self.bend_ranges[ch] = float(msg.value)
            return
        if msg.control == s.morph_cc:
            self.morph = float(np.clip(msg.value / 127.0, 0.0, 1.0))
        for k, cc in enumerate(s.pc_ccs):
            if msg.control == cc:
                self.pc[k] = float(np.clip(msg.value / 127.0, 0.0, 1.0)) * 2.0 - 1.0
        if msg.control == 64:
            self.pedal = msg.value >= 64
        for i in self._targets(channel, member):
            c = self.controllers[i]
            c.handle(msg, t)
            if msg.control == 64 and not self.pedal:
                if self.voices[i].note is not None and c.release_t is not None and not c.held:
                    if self.voices[i].released is None:
                        self.voices[i].released = self._tick()

    def _targets(self, channel: int, member: bool) -> list[int]:
        if member:
            return [
                i for i, v in enumerate(self.voices) if v.note is not None and v.channel == channel
            ]
        return list(range(len(self.voices)))

    def _tick(self) -> int:
        self.clock += 1
        return self.clock
