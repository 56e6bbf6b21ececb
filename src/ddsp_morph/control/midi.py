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
    morph_cc: int = 1
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
        return mido.MidiFile(str(path))
    except FileNotFoundError as e:
        raise DDSPMorphError(f"{path}: no such MIDI file") from e
    except (OSError, EOFError, ValueError, KeyError, IndexError) as e:
        raise DDSPMorphError(f"{path}: not a readable MIDI file ({e})") from e


def midi_to_controls(
    path: str | Path,
    *,
    frame_rate: float,
    settings: MidiSettings | None = None,
    tail_s: float = 0.5,
) -> dict[str, np.ndarray]:
    """Frame-rate controls of a MIDI file.

    Returns:
        f0_hz, loudness_db, gate (1 while a note is held), morph (the morph CC in 0..1, held
        between changes) — each Shape [n_frames].
    """
    s = settings or MidiSettings()
    mid = read_midi(Path(path))
    events = []
    t = 0.0
    for msg in mid:  # iterating a MidiFile yields messages with delta times in seconds
        t += msg.time
        if msg.is_meta or (s.channel is not None and getattr(msg, "channel", None) != s.channel):
            continue
        events.append((t, msg))
    end = t + tail_s
    n_frames = max(1, int(np.ceil(end * frame_rate)))
    f0 = np.zeros(n_frames)
    loud = np.full(n_frames, s.loudness_min_db)
    gate = np.zeros(n_frames)
    morph = np.zeros(n_frames)
    held: list[tuple[int, int]] = []  # (note, velocity), last = sounding
    bend, cc, note_on_t, release_t, last = 0.0, 0.0, 0.0, None, None
    k = 0
    for m in range(n_frames):
        now = m / frame_rate
        while k < len(events) and events[k][0] <= now:
            et, msg = events[k]
            k += 1
            if msg.type == "note_on" and msg.velocity > 0:
                held = [h for h in held if h[0] != msg.note] + [(msg.note, msg.velocity)]
                note_on_t, release_t, last = et, None, (msg.note, msg.velocity)
            elif msg.type in ("note_off", "note_on"):
                was_top = bool(held) and held[-1][0] == msg.note
                held = [h for h in held if h[0] != msg.note]
                if was_top and held:  # last-note priority: fall back to the previous held note
                    last = held[-1]
                elif was_top:
                    release_t = et
            elif msg.type == "pitchwheel":
                bend = msg.pitch / 8192.0 * s.bend_range
            elif msg.type == "control_change" and msg.control == s.morph_cc:
                cc = min(max(msg.value / 127.0, 0.0), 1.0)
        morph[m] = cc
        if last is None:
            continue
        note, vel = last
        f0[m] = 440.0 * 2 ** ((note + bend - 69) / 12)
        gate[m] = 1.0 if held else 0.0
        loud[m] = envelope_db(now - note_on_t, None if held else now - (release_t or now), s, vel)
    # Before the first note f0 has no value: hold the first note's pitch there.
    voiced = np.nonzero(f0 > 0)[0]
    if not len(voiced):
        raise DDSPMorphError(f"{path}: no notes")
    f0[: voiced[0]] = f0[voiced[0]]
    return {
        "f0_hz": f0.astype(np.float32),
        "loudness_db": loud.astype(np.float32),
        "gate": gate.astype(np.float32),
        "morph": morph.astype(np.float32),
    }
