"""The third corpus of the cross-corpus study (issue 34, part 4): a folder of "takes", as a
user's recordings would be, from a phrase generator that is not the corpus's own.

    python experiments/ex2_latent/cross_corpus/make_takes.py OUT_DIR [--soundfont SF2]
        [--minutes 7.5] [--seed 0]
    make data SOURCE=OUT_DIR          # imported the way a user's folder is

Writes OUT_DIR/<instrument>/take_NNN.wav (16 kHz mono), 4-12 s each, until every instrument
has ``--minutes`` of audio. Unlike ``data.phrases`` (scales, arpeggios and legato lines over
the instrument's whole range, one phrase per example), a take here is:

- a few motifs, each a random walk of small steps with rare leaps, centred on a tessitura
  drawn per take (a normal around the range's middle, so the edges of the range are rare);
- rhythms from a set of note values at a tempo drawn per take (60-140 bpm), some notes
  detached (70% of their value), some tied;
- rests of 0.3-1.2 s between motifs, and in each rest a breath: band-passed noise 30-40 dB
  under the take's peak, 0.15-0.4 s, added to the rendered audio;
- dynamics as arcs over each motif (MIDI expression), velocities around the arc;
- vibrato that fades in after a note's first 0.25 s, 4.5-6.5 Hz, depth 0.1-0.3 semitone,
  on long notes only.

Each instrument is rendered with ``data.render.PhraseRenderer`` on its General MIDI program.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf

from ddsp_morph.data.phrases import CONTROL_RATE, INSTRUMENTS, Note, Phrase
from ddsp_morph.data.render import PhraseRenderer, resolve_soundfont

SR = 16000
NOTE_VALUES = [0.5, 0.5, 1.0, 1.0, 1.0, 1.5, 2.0, 0.75, 0.25, 3.0]  # in beats


def motif(rng: np.random.Generator, t0: float, centre: float, low: int, high: int, beat: float):
    """(notes, end time) of one motif: a random walk of small steps around ``centre``."""
    notes = []
    pitch = int(np.clip(round(centre + rng.normal(0, 2)), low, high))
    t = t0
    for _ in range(rng.integers(3, 9)):
        length = float(rng.choice(NOTE_VALUES)) * beat
        sounding = length * (0.7 if rng.random() < 0.25 else 0.98)
        notes.append(Note(t, t + sounding, pitch, 0))
        t += length
        step = (
            int(rng.choice([-2, -1, -1, 1, 1, 2, -3, 3, 0]))
            if rng.random() > 0.1
            else int(rng.choice([-7, -5, 5, 7, 12, -12]))
        )
        pitch = int(
            np.clip(pitch + step + np.sign(centre - pitch) * (rng.random() < 0.3), low, high)
        )
    return notes, t


def take(rng: np.random.Generator, instrument: str, seconds: float) -> tuple[Phrase, list]:
    """A take of about ``seconds``: motifs and rests (the rests' times, for the breaths)."""
    r = INSTRUMENTS[instrument]
    low, high = r["low"], r["high"]
    centre = float(np.clip(rng.normal((low + high) / 2, (high - low) / 6), low + 3, high - 3))
    beat = 60.0 / rng.uniform(60, 140)
    t, notes, rests = 0.2, [], []
    while t < seconds - 1.0:
        mnotes, end = motif(rng, t, centre, low, high, beat)
        arc_peak = rng.uniform(70, 120)
        for k, n in enumerate(mnotes):
            if n.end_s > seconds - 0.2:
                break
            frac = k / max(1, len(mnotes) - 1)
            level = arc_peak * (0.6 + 0.4 * np.sin(np.pi * frac))
            n.velocity = int(np.clip(level + rng.normal(0, 6), 30, 127))
            notes.append(n)
        rest = rng.uniform(0.3, 1.2)
        rests.append((min(end, seconds), min(end + rest, seconds)))
        t = end + rest
    n_controls = int(seconds * CONTROL_RATE)
    times = np.arange(n_controls) / CONTROL_RATE
    bend = np.zeros(n_controls)
    expression = np.full(n_controls, 100.0)
    for n in notes:
        i0, i1 = int(n.start_s * CONTROL_RATE), int(n.end_s * CONTROL_RATE)
        expression[i0:i1] = np.clip(n.velocity * 0.8 + 25, 40, 127)
        if n.end_s - n.start_s > 0.6:  # vibrato fading in on long notes
            rate, depth = rng.uniform(4.5, 6.5), rng.uniform(0.1, 0.3)
            tt = times[i0:i1] - n.start_s
            fade = np.clip((tt - 0.25) / 0.3, 0, 1)
            bend[i0:i1] = depth * fade * np.sin(2 * np.pi * rate * tt)
    return Phrase(seconds, notes, bend, expression, ["take"]), rests


def breath(rng: np.random.Generator, n: int) -> np.ndarray:
    """Band-passed noise (a crude breath), unit peak."""
    x = rng.standard_normal(n)
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(n, 1 / SR)
    centre = rng.uniform(800, 2500)
    spec *= np.exp(-0.5 * ((f - centre) / (0.6 * centre)) ** 2)
    y = np.fft.irfft(spec, n)
    y *= np.hanning(n)
    return y / (np.abs(y).max() + 1e-9)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--soundfont", default="auto")
    ap.add_argument("--instruments", default="violin,flute,trumpet,clarinet")
    ap.add_argument("--minutes", type=float, default=7.5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    sf2 = resolve_soundfont(args.soundfont)
    rng = np.random.default_rng(args.seed)
    for name in args.instruments.split(","):
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        renderer = PhraseRenderer(
            sf2, INSTRUMENTS[name]["program"], sample_rate=SR, render_rate=48000
        )
        total, k = 0.0, 0
        while total < 60 * args.minutes:
            seconds = float(rng.uniform(4.0, 12.0))
            phrase, rests = take(rng, name, seconds)
            if not phrase.notes:
                continue
            audio = renderer.render(phrase, hop_length=128).audio.astype(np.float64)
            peak = np.abs(audio).max()
            for a, b in rests:
                length = min(int(rng.uniform(0.15, 0.4) * SR), int((b - a) * SR))
                if length < 256:
                    continue
                start = int(a * SR) + int(rng.uniform(0, (b - a) * SR - length))
                end = min(start + length, len(audio))
                gain = peak * 10 ** (-rng.uniform(30, 40) / 20)
                audio[start:end] += gain * breath(rng, end - start)
            sf.write(folder / f"take_{k:03d}.wav", audio.astype(np.float32), SR)
            total += len(audio) / SR
            k += 1
        print(f"{name}: {k} takes, {total / 60:.1f} min ({sf2.name})")


if __name__ == "__main__":
    main()
