"""Polyphony on a trained run: a chord progression, a split and an MPE phrase, rendered by the
headless path (the same code as the live synth), each with its wav, spectrogram PNG and the
measured f0 of every note.

    python experiments/realtime/polyphony/make_report.py --run <run dir> [--out DIR]

Writes <name>.mid, <name>.wav (16 kHz, the model rate), <name>.png and results.json. The f0
of a note is the spectral peak nearest its expected pitch (within ±60 cents, parabolic
interpolation) over the note's held part (from 0.15 s after its onset to its note-off, or
to a bend), measured on the mix; its height over the band's median says the note sounds.
The MPE phrase is also judged voice by voice (each voice's own samples) by the corpus
classifier: the held note whose CC74 rises should turn from violin to flute, the others not.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import mido
import numpy as np

from ddsp_morph.evaluation.classifier import corpus_classifier
from ddsp_morph.plots import spectrogram_png
from ddsp_morph.realtime.headless import write_render
from ddsp_morph.realtime.performer import PerformerSettings, render_midi_file
from ddsp_morph.realtime.recording import SpectrogramSummary
from ddsp_morph.runs import load_run

SR = 16000
TPB = 960


def write_midi(path: Path, events: list[tuple[float, mido.Message]]) -> Path:
    """(seconds, message) events, any order, into a one-track file at 120 bpm."""
    mid = mido.MidiFile(ticks_per_beat=TPB)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    now = 0.0
    for t, msg in sorted(events, key=lambda e: (e[0], e[1].type != "note_off")):
        track.append(msg.copy(time=round((t - now) * 2 * TPB)))
        now = t
    mid.save(path)
    return path


def on(t, note, channel=0, velocity=96):
    return (t, mido.Message("note_on", note=note, velocity=velocity, channel=channel))


def off(t, note, channel=0):
    return (t, mido.Message("note_off", note=note, channel=channel))


def hz(note: float) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


def peak(x: np.ndarray, expected: float) -> tuple[float, float]:
    """(f0 in Hz of the spectral peak within ±60 cents of ``expected``, its height over the
    median of the 60-2000 Hz band)."""
    n = 8 * len(x)
    mag = np.abs(np.fft.rfft(x * np.hanning(len(x)), n))
    freqs = np.fft.rfftfreq(n, 1 / SR)
    band = np.flatnonzero((freqs > expected * 2**-0.05) & (freqs < expected * 2**0.05))
    k = band[np.argmax(mag[band])]
    a, b, c = np.log(mag[k - 1 : k + 2] + 1e-12)
    shift = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) != 0 else 0.0
    f = freqs[k] + shift * (freqs[1] - freqs[0])
    ref = np.median(mag[(freqs > 60) & (freqs < 2000)])
    return float(f), float(mag[k] / ref)


def measure(audio, voices, slots, notes: list[dict], clf) -> list[dict]:
    """Per note: its f0 in the mix, and the classifier's verdict on its own voice's samples
    (the voice slot that held the note in the middle of its window)."""
    rows = []
    hop = voices.shape[1] // len(slots)
    for nt in notes:
        a, b = int((nt["start"] + 0.15) * SR), int(nt["end"] * SR)
        f, height = peak(audio[a:b], nt["hz"])
        row = {
            **nt,
            "measured_hz": round(f, 2),
            "cents": round(1200 * np.log2(f / nt["hz"]), 1),
            "height": round(height, 1),
        }
        slot = slots[(a + b) // 2 // hop].index(nt["note"])
        p = clf.proba_of(voices[slot, a:b])
        row["heard_as"] = max(p, key=p.get)
        row["p_heard"] = round(p[row["heard_as"]], 3)
        if "instrument" in nt:
            row["p_instrument"] = round(p[nt["instrument"]], 3)
        rows.append(row)
    return rows


def render(run, midi: Path, out: Path, settings: PerformerSettings, title: str):
    """The headless render, with each voice's own samples and the note each slot held, per
    block."""
    voices: list[np.ndarray] = []
    slots: list[list] = []

    def watch(p) -> None:
        voices.append(p.bank.voices_out.copy())
        slots.append([v.note for v in p.controller.voices])

    audio, stats = render_midi_file(run, midi, settings, watch=watch)
    write_render(out, audio, settings.device_rate, stats, title=title)
    return audio, np.concatenate(voices, axis=1), slots, stats


def headroom(run) -> list[dict]:
    """The limiter at work: 1, 3 and 8 notes held (minor thirds from G3) at velocity 96 and 127,
    2.4 s each: the peak of the voices' sum (after the reverb), of the output, the deepest
    gain reduction at a block's end, and the share of samples the sum had over the knee."""
    from ddsp_morph.realtime.poly import LIMIT_KNEE, PolyPerformer

    rows = []
    for n_notes, velocity in ((1, 96), (3, 96), (8, 96), (8, 127)):
        s = PerformerSettings(device_rate=SR, voices=8, source="violin", target="flute")
        p = PolyPerformer(run, s, n_voices=8)
        notes = [55 + 3 * k for k in range(n_notes)]
        pre, post, gains = [], [], []
        for b in range(350):
            for note in notes:
                if b == 5:
                    p.controller.handle(mido.Message("note_on", note=note, velocity=velocity), p.t)
                if b == 300:
                    p.controller.handle(mido.Message("note_off", note=note), p.t)
            post.append(p.next_block())
            pre.append(p.bank.out.copy())
            gains.append(float(p.limiter_gain[0]))
        pre, post = np.concatenate(pre), np.concatenate(post)
        rows.append(
            {
                "notes": n_notes,
                "velocity": velocity,
                "sum_peak": round(float(np.abs(pre).max()), 3),
                "out_peak": round(float(np.abs(post).max()), 3),
                "gain_min_db": round(20 * np.log10(min(gains)), 1),
                "over_knee_percent": round(100 * float(np.mean(np.abs(pre) > LIMIT_KNEE)), 2),
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = ap.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    run = load_run(args.run, checkpoint="last")
    clf = corpus_classifier(Path(run.cfg.data.corpus_dir))
    results: dict = {"run": str(args.run)}
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent,
    )
    results["commit"] = commit.stdout.strip()

    # 1. A chord progression: C, A minor, F, G (close voicings around middle C), on violin
    chords = [[60, 64, 67], [57, 60, 64], [53, 57, 60, 65], [55, 59, 62, 67]]
    ev, notes = [], []
    for i, chord in enumerate(chords):
        t0, t1 = 0.2 + 1.2 * i, 0.2 + 1.2 * i + 1.1
        for n in chord:
            ev += [on(t0, n), off(t1, n)]
            notes.append({"note": n, "start": t0, "end": t1, "hz": hz(n), "instrument": "violin"})
    midi = write_midi(out / "chords.mid", ev)
    s = PerformerSettings(device_rate=SR, voices=8, source="violin", target="flute")
    audio, voices, slots, stats = render(
        run, midi, out / "chords.wav", s, "C, Am, F, G on violin, 8 voices"
    )
    results["chords"] = {"stats": stats, "notes": measure(audio, voices, slots, notes, clf)}

    # 2. A split at middle C: a violin bass line under a flute melody
    ev, notes = [], []
    bass = [48, 52, 55, 53]
    melody = [72, 74, 76, 79, 77, 76, 74, 72]
    for i, n in enumerate(bass):
        t0, t1 = 0.2 + 1.0 * i, 0.2 + 1.0 * i + 0.95
        ev += [on(t0, n), off(t1, n)]
        notes.append({"note": n, "start": t0, "end": t1, "hz": hz(n), "instrument": "violin"})
    for i, n in enumerate(melody):
        t0, t1 = 0.2 + 0.5 * i, 0.2 + 0.5 * i + 0.45
        ev += [on(t0, n), off(t1, n)]
        notes.append({"note": n, "start": t0, "end": t1, "hz": hz(n), "instrument": "flute"})
    midi = write_midi(out / "split.mid", ev)
    s = PerformerSettings(device_rate=SR, voices=8, source="violin", target="flute", split=60)
    audio, voices, slots, stats = render(
        run, midi, out / "split.wav", s, "split at middle C: violin bass, flute melody"
    )
    results["split"] = {"stats": stats, "notes": measure(audio, voices, slots, notes, clf)}

    # 3. An MPE phrase: three notes held on member channels 2-4; channel 3's CC74 rises from
    #    0 to 127 between 1.5 s and 3.5 s (violin -> flute), the others stay at 0 (violin)
    ev = []
    held = {(55, 1): "still", (62, 2): "moved", (67, 3): "still"}
    for n, c in held:
        ev += [
            on(0.2, n, channel=c),
            (0.2, mido.Message("control_change", control=74, value=0, channel=c)),
        ]
        ev += [off(5.0, n, channel=c)]
    for k in range(41):
        t = 1.5 + 2.0 * k / 40
        ev.append(
            (t, mido.Message("control_change", control=74, value=round(127 * k / 40), channel=2))
        )
    midi = write_midi(out / "mpe.mid", ev)
    s = PerformerSettings(device_rate=SR, voices=8, mpe=True, source="violin", target="flute")
    audio, voices, slots, stats = render(
        run,
        midi,
        out / "mpe.wav",
        s,
        "MPE, three notes held; CC74 takes the middle one violin → flute",
    )
    notes = [
        {"note": n, "channel": c + 1, "start": 0.2, "end": 5.0, "hz": hz(n), "cc74": role}
        for (n, c), role in held.items()
    ]
    rows = measure(audio, voices, slots, notes, clf)
    for slot, ((n, c), role) in enumerate(held.items()):  # each voice's own samples, apart
        summary = SpectrogramSummary()
        summary.push(voices[slot])
        spectrogram_png(
            out / f"mpe_voice{slot + 1}.png",
            summary.image(),
            duration=voices.shape[1] / SR,
            top_khz=SR / 2000,
            title=f"MPE phrase, voice {slot + 1} alone: note {n}, channel {c + 1}, CC74 {role}",
        )
    # the voices took slots 0, 1, 2 in the order the notes came
    for slot, row in enumerate(rows):
        v = voices[slot]
        for name, (a, b) in {"before": (0.4, 1.4), "after": (3.8, 4.9)}.items():
            p = clf.proba_of(v[int(a * SR) : int(b * SR)])
            row[f"p_violin_{name}"] = round(p["violin"], 3)
            row[f"p_flute_{name}"] = round(p["flute"], 3)
    results["mpe"] = {"stats": stats, "notes": rows}
    results["headroom"] = headroom(run)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
