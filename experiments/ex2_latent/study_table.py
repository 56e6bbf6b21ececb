"""One markdown row per run of a morph study, from the files a training run writes.

    python experiments/ex2_latent/study_table.py NAME=RUN_DIR [NAME=RUN_DIR ...]

Reads ``morph_summary.json``, ``morph.csv``, ``val_history.csv`` and ``train_history.csv`` of each
run (the end-of-run morph table; for a morph re-measured into a folder of the run, the run's
histories) and prints steps, best validation loss, conversion, resynthesis and how many of the
12 ordered pairs meet each per-pair target of issue 13 (P(B) at alpha = 1 both on the path's
clips and over every test clip of A), then P(B) at alpha = 1 over every test clip of A for each
ordered pair, one row per run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

HEADER = (
    "| arm | steps | best val loss | conversion | resynthesis (worst) | P(B) α=0 max "
    "| pairs P(B) α=1 ≥ 0.9 (min) | every clip: pairs P(B) α=1 ≥ 0.9 (min) "
    "| Spearman min (pairs ≥ 0.95) "
    "| largest step max / median (pairs ≤ 0.35) | centroid step ratio (median) | targets met |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def end_over_every_clip(run: Path) -> pd.Series:
    """P(B) at alpha = 1 per ordered pair over every test clip of A, from morph_renders.csv
    (each clip decoded with B's centroid): what morph.csv's p_b_end_all holds, also for runs
    made before that column existed."""
    r = pd.read_csv(run / "morph_renders.csv")
    conv = r[(r["target"] != "resynthesis") & (r["target"] != r["source"])]
    return conv.groupby(["source", "target"])["p_target"].mean()


def row(name: str, run: Path) -> str:
    s = json.loads((run / "morph_summary.json").read_text())
    pairs = pd.read_csv(run / "morph.csv")
    # a morph re-measured into a folder of the run (``python -m ddsp_morph.morph out_dir=...``)
    # takes the run's histories
    logs = run if (run / "val_history.csv").exists() else run.parent
    val = pd.read_csv(logs / "val_history.csv")
    hist = logs / "train_history.csv"
    steps = len(pd.read_csv(hist)) if hist.exists() else int(val["step"].max())
    ends = end_over_every_clip(run)
    worst = min(s["resynthesis_accuracy_per_instrument"].items(), key=lambda kv: kv[1])
    return (
        f"| {name} | {steps} | {val['val_loss'].min():.2f} "
        f"| {s['conversion_accuracy']:.2f} | {s['resynthesis_accuracy']:.2f} ({worst[0]} {worst[1]:.2f}) "
        f"| {pairs['p_b_start'].max():.2f} "
        f"| {int((pairs['p_b_end'] >= 0.9).sum())} ({pairs['p_b_end'].min():.2f}) "
        f"| {int((ends >= 0.9).sum())} ({ends.min():.2f}) "
        f"| {pairs['spearman'].min():.2f} ({int((pairs['spearman'] >= 0.95).sum())}) "
        f"| {pairs['max_step'].max():.2f} / {pairs['max_step'].median():.2f} "
        f"({int((pairs['max_step'] <= 0.35).sum())}) "
        f"| {pairs['centroid_step_ratio'].median():.1f} "
        f"| {s['targets_met']} of {s['targets_checked']} |"
    )


def short(name: str) -> str:
    return name[:2]


def pair_rows(runs: list[tuple[str, Path]]) -> str:
    """P(B) at alpha = 1 over every test clip of A, per ordered pair: a markdown table."""
    ends = {name: end_over_every_clip(run) for name, run in runs}
    keys = sorted({k for e in ends.values() for k in e.index})
    head = "| arm | " + " | ".join(f"{short(a)}→{short(b)}" for a, b in keys) + " |"
    lines = [head, "|---|" + "---|" * len(keys)]
    for name, e in ends.items():
        cells = (f"{e[k]:.2f}" if k in e.index else "–" for k in keys)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit(__doc__)
    runs = [(name, Path(path)) for name, _, path in (a.partition("=") for a in argv)]
    print(HEADER)
    for name, run in runs:
        print(row(name, run))
    print()
    print(pair_rows(runs))


if __name__ == "__main__":
    main(sys.argv[1:])
