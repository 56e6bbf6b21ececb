"""The realtime synth's headless path on a trained run: a melody with a morph-CC sweep.

    python experiments/realtime/headless_check.py --run <run dir> [--from violin --to flute]
        [--through violin,flute,trumpet,clarinet] [--seconds 12] [--hold 2] [--window 2]
        [--tag NAME] [--out experiments/realtime]

Writes sweep.mid, the render (sweep.wav at 48 kHz, its spectrogram sweep.png, the timing
sweep.json) and prints (``--tag``: the files are named <tag>.*, and <tag>_check.png plots the
classifier's probability of every instrument per window): f0 re-extracted (CREPE tiny, at 16 kHz) against the notes played
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
from ddsp_morph.runs import load_run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--from", dest="source", default="violin")
    ap.add_argument("--to", dest="target", default="flute")
    ap.add_argument("--through", default="", help="a path through several instruments")
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--hold", type=float, default=0.0, help="CC1 held at 0 / 127 this long")
    ap.add_argument("--window", type=float, default=2.0, help="classifier window, seconds")
    ap.add_argument("--path", default="slerp", choices=["slerp", "linear"])
    ap.add_argument("--tag", default="sweep")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    run = load_run(args.run, checkpoint="last")
    midi = sweep_midi(args.out / f"{args.tag}.mid", seconds=args.seconds, hold_s=args.hold)
    through = tuple(n.strip() for n in args.through.split(",") if n.strip())
    source, target = (through[0], through[-1]) if through else (args.source, args.target)
    s = PerformerSettings(
        source=source, target=target, through=through, path=args.path, device_rate=48000
    )
    audio, stats = render_midi_file(run, midi, s)
    write_render(args.out / f"{args.tag}.wav", audio, s.device_rate, stats)
    clf = corpus_classifier(Path(run.cfg.data.corpus_dir))
    result = judge_sweep(audio, s.device_rate, midi, clf, source, target, window_s=args.window)
    run_name = f"runs/{Path(args.run).resolve().name}"  # no machine path in the results
    result = {"run": run_name, "through": list(through), **result, "timing": stats}
    (args.out / f"{args.tag}_check.json").write_text(json.dumps(result, indent=2) + "\n")
    plot_windows(result, args.out / f"{args.tag}_check.png")
    print(json.dumps({k: v for k, v in result.items() if k != "windows"}, indent=2))
    for w in result["windows"]:
        print(
            f"t {w['t0_s']:5.1f} s  {w['predicted']:10s}",
            {k: round(v, 2) for k, v in w["p"].items()},
        )


def plot_windows(result: dict, path: Path) -> None:
    """The classifier's probability of every instrument per window along the sweep."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    windows = result["windows"]
    t = [w["t0_s"] for w in windows]
    fig, ax = plt.subplots(figsize=(7, 3))
    for name in windows[0]["p"]:
        ax.plot(t, [w["p"][name] for w in windows], "o-", ms=3, label=name)
    path_name = " → ".join(result["through"] or [result["source"], result["target"]])
    ax.set_title(f"CC1 sweep {path_name}: classifier per window", fontsize=9)
    ax.set_xlabel("window start (s); CC1 rises over the render")
    ax.set_ylabel("P(instrument)")
    ax.set_ylim(-0.03, 1.03)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=85)
    plt.close(fig)


if __name__ == "__main__":
    main()
