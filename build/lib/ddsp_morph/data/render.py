"""Render phrases with a General MIDI SoundFont (tinysoundfont) and keep the ground truth."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from ddsp_morph.data.phrases import CONTROL_RATE, Phrase
from ddsp_morph.errors import DDSPMorphError

DEBIAN_FLUID = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
PITCH_BEND_RANGE = 2.0  # semitones, the GM default


def resolve_soundfont(soundfont: str) -> Path:
    """``auto``: Debian's FluidR3_GM.sf2 when installed, else pretty_midi's TimGM6mb.sf2."""
    if soundfont == "auto":
        if os.path.exists(DEBIAN_FLUID):
            return Path(DEBIAN_FLUID)
        import pretty_midi

        return Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
    path = Path(soundfont).expanduser()
    if not path.is_file():
        raise DDSPMorphError(
            f"SoundFont not found: {path} (set data.corpus.soundfont to an .sf2/.sf3 file, or 'auto')"
        )
    return path


@dataclass
class Rendered:
    """Audio at ``sample_rate`` and the per-frame truth (frames centred at m * hop_length).

    audio: Shape [n_samples]. f0_hz, voiced, velocity, expression: Shape [n_frames]
    (f0_hz is 0 where unvoiced).
    """

    audio: np.ndarray
    f0_hz: np.ndarray
    voiced: np.ndarray
    velocity: np.ndarray
    expression: np.ndarray


class PhraseRenderer:
    """Plays phrases on one GM program. Render at ``render_rate``, resample to ``sample_rate``."""

    def __init__(
        self,
        soundfont: Path,
        program: int,
        *,
        sample_rate: int,
        render_rate: int,
        gain_db: float = 6.0,
    ):
        import tinysoundfont

        if render_rate % CONTROL_RATE:
            raise DDSPMorphError(
                f"data.corpus.render_rate: {render_rate} must be a multiple of {CONTROL_RATE}"
            )
        self.sample_rate = sample_rate
        self.render_rate = render_rate
        self.synth = tinysoundfont.Synth(samplerate=render_rate, gain=gain_db)
        try:
            sfid = self.synth.sfload(str(soundfont))
        except Exception as e:
            raise DDSPMorphError(f"SoundFont {soundfont}: cannot load ({e})") from e
        self.synth.program_select(0, sfid, 0, program)
        self.synth.pitchbend_range(0, PITCH_BEND_RANGE)

    def render(self, phrase: Phrase, *, hop_length: int) -> Rendered:
        synth = self.synth
        synth.sounds_off()
        block = self.render_rate // CONTROL_RATE
        n_controls = len(phrase.bend_semitones)
        events: dict[int, list[tuple[str, int, int]]] = {}
        for note in phrase.notes:
            on = int(round(note.start_s * CONTROL_RATE))
            off = max(on + 1, int(round(note.end_s * CONTROL_RATE)))
            events.setdefault(off, []).append(("off", note.pitch, 0))
            events.setdefault(on, []).append(("on", note.pitch, note.velocity))
        # Per control step: which note sounds (gate) and with what velocity.
        gate_pitch = np.zeros(n_controls)
        gate_velocity = np.zeros(n_controls)
        current: tuple[int, int] | None = None
        out = np.zeros(n_controls * block, dtype=np.float32)
        last_bend, last_expr = None, None
        for i in range(n_controls):
            for kind, pitch, velocity in sorted(events.get(i, []), key=lambda e: e[0] != "off"):
                if kind == "off":
                    synth.noteoff(0, pitch)
                    if current is not None and current[0] == pitch:
                        current = None
                else:
                    synth.noteon(0, pitch, velocity)
                    current = (pitch, velocity)
            bend = int(np.clip(8192 + phrase.bend_semitones[i] / PITCH_BEND_RANGE * 8192, 0, 16383))
            if bend != last_bend:
                synth.pitchbend(0, bend)
                last_bend = bend
            expr = int(np.clip(round(phrase.expression[i]), 0, 127))
            if expr != last_expr:
                synth.control_change(0, 11, expr)
                last_expr = expr
            if current is not None:
                gate_pitch[i], gate_velocity[i] = current
            stereo = np.frombuffer(synth.generate(block), dtype=np.float32).reshape(-1, 2)
            out[i * block : (i + 1) * block] = stereo.mean(axis=1)
        audio = soxr.resample(out, self.render_rate, self.sample_rate, quality="HQ").astype(
            np.float32
        )
        n_frames = len(audio) // hop_length
        audio = audio[: n_frames * hop_length]
        # Truth at frame centres: the control step that was playing at that instant.
        idx = np.minimum(
            (np.arange(n_frames) * hop_length / self.sample_rate * CONTROL_RATE).astype(int),
            n_controls - 1,
        )
        voiced = gate_pitch[idx] > 0
        semitones = gate_pitch[idx] + phrase.bend_semitones[idx]
        f0 = np.where(voiced, 440.0 * 2.0 ** ((semitones - 69.0) / 12.0), 0.0)
        velocity = np.where(voiced, gate_velocity[idx], 0.0)
        expression = np.clip(np.round(phrase.expression[idx]), 0, 127)
        return Rendered(
            audio,
            f0.astype(np.float32),
            voiced,
            velocity.astype(np.float32),
            expression.astype(np.float32),
        )
