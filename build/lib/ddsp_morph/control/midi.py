"""MIDI to frame-rate controls, offline (a whole file) — the same rules as the live synth:
monophonic with last-note priority, f0 from note + pitch bend, loudness from velocity through
an ADSR envelope mapped into the corpus's loudness range, a CC for the timbre position."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ddsp_morph.errors import DDSPMorphError


@dataclass
class MidiSettings:
    bend_range: float = 2.0  # semitones for a full pitch-bend swing
    attack_s: float = 0.02
    decay_s: float = 0.15
    sustain: float = 0.8  # of the peak amplitude
    release_s: float = 0.2
    loudness_min_db: float = -70.0  # silence and velocity 0 map here
    loudness_max_db: float = -15.0  # velocity 127 at the peak
    morph_cc: int = 1  # the mod wheel moves between the two instruments
    vibrato_cc: int = 2  # breath controller (the mod wheel is the morph by default)
    vibrato_depth: float = 0.5  # semitones at full CC
    vibrato_rate: float = 5.5  # Hz
    pc_ccs: tuple[int, int] = (16, 17)  # general-purpose controllers 1 and 2: latent PC 1 and 2
    portamento_s: float = 0.0  # glide time constant; 0: jump
    channel: int | None = None  # None: every channel


def envelope_db(
    gate_age_s: float, release_age_s: float | None, s: MidiSettings, velocity: int
) -> float:
    """Loudness in dB of a note ``gate_age_s`` after its note-on, ``release_age_s`` after its
    note-off (None while held), amplitude ADSR on a linear scale then mapped to dB."""
    if gate_age_s < s.attack_s:
        amp = gate_age_s / s.attack_s
    elif gate_age_s < s.attack_s + s.decay_s:
        amp = 1.0 - (1.0 - s.sustain) * (gate_age_s - s.attack_s) / s.decay_s
    else:
        amp = s.sustain
    if release_age_s is not None:
        amp *= max(0.0, 1.0 - release_age_s / s.release_s)
    vel = velocity / 127.0
    level = amp * vel
    if level <= 1e-4:
        return s.loudness_min_db
    # Peak at loudness_max_db for velocity 127, amplitude in dB below it, clipped into range.
    db = s.loudness_max_db + 20 * np.log10(level)
    return float(np.clip(db, s.loudness_min_db, s.loudness_max_db))


def read_midi(path: Path):
    import mido

    try:
        mid = mido.MidiFile(str(path))
    except FileNotFoundError as e:
        raise DDSPMorphError(f"{path}: no such MIDI file") from e
    except (OSError, EOFError, ValueError, KeyError, IndexError) as e:
        why = str(e) or f"{type(e).__name__}: the file ends inside a chunk"
        raise DDSPMorphError(f"{path}: not a readable MIDI file ({why})") from e
    # mido skips chunks it does not know: bytes after a header parse as no track at all
    if mid.type not in (0, 1, 2) or not mid.tracks:
        raise DDSPMorphError(
            f"{path}: not a readable MIDI file (header type {mid.type}, {len(mid.tracks)} "
            "track chunks)"
        )
    return mid


class MidiController:
    """MIDI (and OSC) events in, one frame of controls out — the state machine shared by the
    live synth and the headless renderer.

    Monophonic with last-note priority: a new note takes over; releasing it falls back to the
    most recent note still held; the sustain pedal (CC64) holds released notes until it lifts.
    f0 = note + pitch bend (± ``bend_range``) + vibrato (``vibrato_cc``: depth up to
    ``vibrato_depth`` semitones at ``vibrato_rate`` Hz), gliding with ``portamento_s``.
    Loudness = the velocity through an ADSR, in dB within the corpus range. ``morph_cc``
    (0..1) moves along the path between two instrument centroids; ``pc_ccs`` move over the
    latent's first two principal axes (-1..1). Every value is clamped to its range.
    """

    def __init__(self, settings: MidiSettings | None = None) -> None:
        self.s = settings or MidiSettings()
        self.held: list[tuple[int, int]] = []
        self.sustained: set[int] = set()
        self.pedal = False
        self.bend = 0.0
        self.vibrato = 0.0
        self.morph = 0.0
        self.pc = [0.0, 0.0]
        self.current: tuple[int, int] | None = None
        self.note_on_t = 0.0
        self.release_t: float | None = None
        self.semitone: float | None = None  # the gliding pitch
        self.osc_f0: float | None = None
        self.osc_loudness: float | None = None
        self.last_t = 0.0

    # --- events -------------------------------------------------------------------------
    def handle(self, msg, t: float) -> None:
        """Apply one mido message received at time ``t`` (seconds)."""
        s = self.s
        if s.channel is not None and getattr(msg, "channel", s.channel) != s.channel:
            return
        kind = msg.type
        if kind == "note_on" and msg.velocity > 0:
            self.held = [h for h in self.held if h[0] != msg.note] + [(msg.note, msg.velocity)]
            self.sustained.discard(msg.note)
            if self.current is None or self.release_t is not None or self.semitone is None:
                self.note_on_t = t  # a new attack; legato notes keep the envelope going
            self.current, self.release_t = (msg.note, msg.velocity), None
        elif kind in ("note_off", "note_on"):
            if self.pedal:
                self.sustained.add(msg.note)
                return
            self._release(msg.note, t)
        elif kind == "pitchwheel":
            self.bend = float(np.clip(msg.pitch / 8192.0, -1.0, 1.0)) * s.bend_range
        elif kind == "control_change":
            value = float(np.clip(msg.value / 127.0, 0.0, 1.0))
            if msg.control == s.morph_cc:
                self.morph = value
            if msg.control == s.vibrato_cc:
                self.vibrato = value
            for i, cc in enumerate(s.pc_ccs):
                if msg.control == cc:
                    self.pc[i] = 2.0 * value - 1.0
            if msg.control == 64:  # sustain pedal
                self.pedal = value >= 0.5
                if not self.pedal:
                    for note in sorted(self.sustained):
                        self._release(note, t)
                    self.sustained.clear()

    def _release(self, note: int, t: float) -> None:
        was_top = bool(self.held) and self.held[-1][0] == note
        self.held = [h for h in self.held if h[0] != note]
        if was_top and self.held:
            self.current = self.held[-1]  # last-note priority: back to the previous held note
        elif was_top:
            self.release_t = t

    def osc(self, address: str, *args: float) -> None:
        """OSC control: /f0 <Hz> (0 gives the keyboard back), /loudness <dB>, /morph <0..1>,
        /pc <x> <y> (-1..1). Out-of-range values are clamped; unknown addresses ignored."""
        try:
            values = [float(a) for a in args]
        except (TypeError, ValueError):
            return
        if not values or not all(np.isfinite(values)):
            return
        if address == "/f0":
            self.osc_f0 = float(np.clip(values[0], 20.0, 4000.0)) if values[0] > 0 else None
        elif address == "/loudness":
            self.osc_loudness = float(
                np.clip(values[0], self.s.loudness_min_db, self.s.loudness_max_db)
            )
        elif address == "/morph":
            self.morph = float(np.clip(values[0], 0.0, 1.0))
        elif address == "/pc":
            for i, v in enumerate(values[:2]):
                self.pc[i] = float(np.clip(v, -1.0, 1.0))

    # --- frames -------------------------------------------------------------------------
    def frame(self, t: float) -> tuple[float, float, float]:
        """(f0_hz, loudness_db, gate) at time ``t``; call once per frame, in order."""
        s = self.s
        dt = max(0.0, t - self.last_t)
        self.last_t = t
        if self.current is None:
            f0 = self.osc_f0 or 440.0
            loud = self.osc_loudness if self.osc_loudness is not None else s.loudness_min_db
            return f0, loud, 0.0
        note, vel = self.current
        target = note + self.bend
        if self.semitone is None or s.portamento_s <= 0:
            self.semitone = target
        else:
            self.semitone += (target - self.semitone) * (1.0 - np.exp(-dt / s.portamento_s))
        vibrato = self.vibrato * s.vibrato_depth * np.sin(2 * np.pi * s.vibrato_rate * t)
        f0 = self.osc_f0 or 440.0 * 2 ** ((self.semitone + vibrato - 69) / 12)
        gate = 1.0 if self.release_t is None else 0.0
        loud = envelope_db(
            t - self.note_on_t, None if self.release_t is None else t - self.release_t, s, vel
        )
        if self.osc_loudness is not None:
            loud = self.osc_loudness
        return float(f0), float(loud), gate


def midi_events(path: str | Path) -> list[tuple[float, object]]:
    """(time in seconds, message) of every non-meta message of a MIDI file."""
    mid = read_midi(Path(path))
    events, t = [], 0.0
    try:
        for msg in mid:  # iterating a MidiFile yields delta times in seconds
            t += msg.time
            if not msg.is_meta:
                events.append((t, msg))
    except (ValueError, KeyError, IndexError, EOFError) as e:
        raise DDSPMorphError(f"{path}: not a readable MIDI file ({e})") from e
    if not any(m.type == "note_on" and m.velocity > 0 for _, m in events):
        raise DDSPMorphError(f"{path}: no notes")
    return events


def midi_to_controls(
    path: str | Path,
    *,
    frame_rate: float,
    settings: MidiSettings | None = None,
    tail_s: float = 0.5,
) -> dict[str, np.ndarray]:
    """Frame-rate controls of a MIDI file, through the same MidiController as the live synth.

    Returns:
        f0_hz, loudness_db, gate (1 while a note is held), morph (0..1), pc (Shape
        [n_frames, 2]) — Shape [n_frames] unless stated.
    """
    events = midi_events(path)
    ctl = MidiController(settings)
    n_frames = max(1, int(np.ceil((events[-1][0] + tail_s) * frame_rate)))
    out = {k: np.zeros(n_frames, np.float32) for k in ("f0_hz", "loudness_db", "gate", "morph")}
    out["pc"] = np.zeros((n_frames, 2), np.float32)
    k = 0
    first_note = None
    for m in range(n_frames):
        now = m / frame_rate
        while k < len(events) and events[k][0] <= now:
            ctl.handle(events[k][1], events[k][0])
            k += 1
        f0, loud, gate = ctl.frame(now)
        if first_note is None and ctl.current is not None:
            first_note = m
        out["f0_hz"][m], out["loudness_db"][m], out["gate"][m] = f0, loud, gate
        out["morph"][m], out["pc"][m] = ctl.morph, ctl.pc
    # Before the first note f0 has no value: hold the first note's pitch there.
    if first_note:
        out["f0_hz"][:first_note] = out["f0_hz"][first_note]
    return out
