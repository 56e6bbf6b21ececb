"""The realtime synth's headless path on a trained run: a melody with a morph-CC sweep.

    python experiments/realtime/headless_check.py --run <run dir> [--from violin --to flute]
        [--out experiments/realtime]

Writes sweep.mid, the render (sweep.wav at 48 kHz, its spectrogram sweep.png, the timing
sweep.json) and prints: f0 re-extracted (CREPE tiny, at 16 kHz) against the notes played
(median cents on frames where a note is held and the output is voiced), and the instrument
classifier's P(from) and P(to) over consecutive 2 s windows along the sweep.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import mido
import numpy as np
import soxr

from ddsp_morph.control.midi import midi_to_controls
from ddsp_morph.data.features import FeatureSettings, extract_f0
from ddsp_morph.evaluation.classifier import InstrumentClassifier, train_on_corpus
from ddsp_morph.realtime.cli import write_render
from ddsp_morph.realtime.performer import PerformerSettings, render_midi_file
from ddsp_morph.training.checkpoint import load_run


def sweep_midi(path: Path, seconds: float = 12.0, low: int = 64, high: int = 76) -> Path:
    """A legato-ish melody (0.5 s notes, 0.05 s gaps) with CC1 rising from 0 to 127."""
    mid = mido.MidiFile(ticks_per_beat=480)  # 120 bpm: 960 ticks per second
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    rng = np.random.default_rng(0)
    events = []
    t = 0.0
    while t < seconds - 0.5:
        note = int(rng.integers(low, high + 1))
        events += [
            (t, mido.Message("note_on", note=note, velocity=100)),
            (t + 0.45, mido.Message("note_off", note=note)),
        ]
        t += 0.5
    for i in range(128):
        events.append((seconds * i / 127, mido.Message("control_change", control=1, value=i)))
    events.sort(key=lambda e: e[0])
    last = 0
    for t, msg in events:
        tick = int(round(t * 960))
        tr.append(msg.copy(time=tick - last))
        last = tick
    mid.save(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--from", dest="source", default="violin")
    ap.add_argument("--to", dest="target", default="flute")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    run = load_run(args.run, checkpoint="last")
    midi = sweep_midi(args.out / "sweep.mid")
    s = PerformerSettings(source=args.source, target=args.target, device_rate=48000)
    audio, stats = render_midi_file(run, midi, s)
    write_render(args.out / "sweep.wav", audio, s.device_rate, stats)
    y = soxr.resample(audio, 48000, 16000).astype(np.float32)
    f0, periodicity = extract_f0(y, FeatureSettings())
    ctl = midi_to_controls(midi, frame_rate=125.0)
    n = min(len(f0), len(ctl["f0_hz"]))
    held = (ctl["gate"][:n] > 0) & (periodicity[:n] >= 0.5)
    # the performer applies a message at the next block: compare with a one-frame lag allowed
    cents = np.abs(1200 * np.log2(f0[:n][held] / ctl["f0_hz"][:n][held]))
    corpus = Path(run.cfg.data.corpus_dir)
    clf_path = corpus / "classifier.npz"
    clf = InstrumentClassifier.load(clf_path) if clf_path.exists() else train_on_corpus(corpus)[0]
    windows = []
    for w0 in range(0, len(y) - 32000 + 1, 32000):
        p = clf.proba_of(y[w0 : w0 + 32000])
        windows.append(
            {
                "t0_s": w0 / 16000,
                "morph": w0 / len(y),
                f"p_{args.source}": p[args.source],
                f"p_{args.target}": p[args.target],
            }
        )
    result = {
        "run": str(args.run),
        "f0_cents_median": float(np.median(cents)),
        "f0_frames_compared": int(held.sum()),
        "f0_within_50_cents": float((cents <= 50).mean()),
        "windows": windows,
        "timing": stats,
    }
    (args.out / "sweep_check.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
