"""Generated musical phrases for a monophonic instrument, with the performance they encode.

A phrase is a list of notes plus control curves (pitch bend in semitones and MIDI expression)
sampled at ``CONTROL_RATE``. The renderer plays exactly these, so the ground truth it saves
(f0, voicing, dynamics) is what was performed, not an estimate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CONTROL_RATE = 400  # control updates per second (2.5 ms)

# General MIDI programs (0-based) and comfortable ranges (MIDI notes) of monophonic instruments.
INSTRUMENTS: dict[str, dict[str, int]] = {
    "violin": {"program": 40, "low": 55, "high": 91},
    "viola": {"program": 41, "low": 48, "high": 81},
    "cello": {"program": 42, "low": 36, "high": 72},
    "trumpet": {"program": 56, "low": 55, "high": 82},
    "trombone": {"program": 57, "low": 40, "high": 72},
    "french_horn": {"program": 60, "low": 41, "high": 77},
    "soprano_sax": {"program": 64, "low": 56, "high": 87},
    "alto_sax": {"program": 65, "low": 49, "high": 80},
    "oboe": {"program": 68, "low": 58, "high": 91},
    "bassoon": {"program": 70, "low": 34, "high": 72},
    "clarinet": {"program": 71, "low": 50, "high": 89},
    "flute": {"program": 73, "low": 60, "high": 96},
    # low and high registers, for the f0 validation (CREPE's bins end at 32.7 Hz and 1976 Hz)
    "contrabass": {"program": 43, "low": 31, "high": 60},
    "tuba": {"program": 58, "low": 33, "high": 58},
    "piccolo": {"program": 72, "low": 74, "high": 95},
}

MAJOR = [0, 2, 4, 5, 7, 9, 11]
MINOR = [0, 2, 3, 5, 7, 8, 10]
TRIADS = [[0, 4, 7, 12], [0, 3, 7, 12], [0, 4, 7, 10, 12]]


@dataclass
class Note:
    start_s: float
    end_s: float
    pitch: int
    velocity: int


@dataclass
class Phrase:
    """Notes and control curves of one phrase.

    bend_semitones, expression: Shape [n_controls] at CONTROL_RATE.
    """

    seconds: float
    notes: list[Note] = field(default_factory=list)
    bend_semitones: np.ndarray = field(default_factory=lambda: np.zeros(0))
    expression: np.ndarray = field(default_factory=lambda: np.zeros(0))
    kinds: list[str] = field(default_factory=list)


def _scale_pitches(rng: np.random.Generator, low: int, high: int, n: int) -> list[int]:
    tonic = int(rng.integers(low, max(low + 1, high - 12)))
    steps = MAJOR if rng.random() < 0.5 else MINOR
    pitches = [tonic + 12 * (i // 7) + steps[i % 7] for i in range(n)]
    if rng.random() < 0.5:
        pitches = pitches[::-1]
    return [p for p in pitches if low <= p <= high] or [tonic]


def _arpeggio_pitches(rng: np.random.Generator, low: int, high: int, n: int) -> list[int]:
    root = int(rng.integers(low, max(low + 1, high - 12)))
    chord = TRIADS[int(rng.integers(len(TRIADS)))]
    up = [root + c for c in chord]
    seq = (up + up[-2:0:-1]) * 3
    return [p for p in seq[:n] if low <= p <= high] or [root]


def _legato_pitches(rng: np.random.Generator, low: int, high: int, n: int) -> list[int]:
    p = int(rng.integers(low + 3, high - 3))
    out = []
    for _ in range(n):
        out.append(p)
        p = int(np.clip(p + rng.choice([-4, -3, -2, -1, 1, 2, 3, 4, 5, -5]), low, high))
    return out


def generate_phrase(
    rng: np.random.Generator, *, low: int, high: int, seconds: float, tail_seconds: float = 0.4
) -> Phrase:
    """Fill ``seconds`` with segments: scales, arpeggios, legato lines, repeated notes, long
    notes with vibrato and crescendo, slides via pitch bend, and rests."""
    n_controls = int(round(seconds * CONTROL_RATE))
    bend = np.zeros(n_controls)
    expression = np.full(n_controls, 100.0)
    phrase = Phrase(seconds=seconds, bend_semitones=bend, expression=expression)
    t = float(rng.uniform(0.05, 0.3))
    end_limit = seconds - tail_seconds
    kinds = ["scale", "arpeggio", "legato", "repeated", "long", "slide", "rest"]
    weights = np.array([0.18, 0.15, 0.2, 0.1, 0.15, 0.12, 0.1])
    while t < end_limit - 0.25:
        kind = str(rng.choice(kinds, p=weights / weights.sum()))
        phrase.kinds.append(kind)
        velocity = int(rng.integers(35, 125))
        if kind == "rest":
            t += float(rng.uniform(0.15, 0.7))
            continue
        if kind in ("scale", "arpeggio", "legato", "repeated"):
            n = int(rng.integers(4, 9))
            if kind == "scale":
                pitches, dur, gap = _scale_pitches(rng, low, high, n), rng.uniform(0.18, 0.45), 0.02
            elif kind == "arpeggio":
                pitches, dur, gap = (
                    _arpeggio_pitches(rng, low, high, n),
                    rng.uniform(0.15, 0.4),
                    0.03,
                )
            elif kind == "legato":
                pitches, dur, gap = _legato_pitches(rng, low, high, n), rng.uniform(0.3, 0.9), 0.0
            else:
                pitches = [int(rng.integers(low, high + 1))] * n
                dur, gap = rng.uniform(0.12, 0.25), rng.uniform(0.05, 0.15)
            for p in pitches:
                if t + dur > end_limit:
                    break
                v = int(np.clip(velocity + rng.integers(-12, 13), 20, 127))
                phrase.notes.append(Note(t, t + dur, int(p), v))
                t += dur + gap
        else:  # long note (vibrato + dynamics) or slide
            dur = float(rng.uniform(0.8, 2.5))
            dur = min(dur, end_limit - t)
            if dur < 0.3:
                break
            p = int(rng.integers(low + 2, high - 2))
            phrase.notes.append(Note(t, t + dur, p, velocity))
            i0, i1 = int(t * CONTROL_RATE), min(n_controls, int((t + dur) * CONTROL_RATE))
            tt = np.arange(i1 - i0) / CONTROL_RATE
            # expression: crescendo, decrescendo or swell
            shape = rng.integers(3)
            lo, hi = rng.uniform(40, 80), rng.uniform(95, 127)
            if shape == 0:
                expression[i0:i1] = lo + (hi - lo) * tt / max(dur, 1e-3)
            elif shape == 1:
                expression[i0:i1] = hi - (hi - lo) * tt / max(dur, 1e-3)
            else:
                expression[i0:i1] = lo + (hi - lo) * np.sin(np.pi * tt / max(dur, 1e-3))
            if kind == "long":
                rate, depth = rng.uniform(4.5, 6.5), rng.uniform(0.15, 0.4)  # semitones
                onset = min(0.3, dur / 3)
                ramp = np.clip((tt - onset) / 0.3, 0.0, 1.0)
                bend[i0:i1] = depth * ramp * np.sin(2 * np.pi * rate * np.maximum(tt - onset, 0))
            else:
                target = float(rng.choice([-2, -1, 1, 2]))
                s0, s1 = dur * 0.3, dur * 0.6
                bend[i0:i1] = target * np.clip((tt - s0) / (s1 - s0), 0.0, 1.0)
            t += dur + float(rng.uniform(0.0, 0.1))
    return phrase
