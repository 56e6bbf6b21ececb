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

from ddsp_morph.evaluation.classifier import corpus_classifier
from ddsp_morph.evaluation.sweep import judge_sweep, sweep_midi
from ddsp_morph.realtime.cli import write_render
from ddsp_morph.realtime.performer import PerformerSettings, render_midi_file
from ddsp_morph.training.checkpoint import load_run


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
    clf = corpus_classifier(Path(run.cfg.data.corpus_dir))
    result = judge_sweep(audio, s.device_rate, midi, clf, args.source, args.target)
    result = {"run": str(args.run), **result, "timing": stats}
    (args.out / "sweep_check.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
