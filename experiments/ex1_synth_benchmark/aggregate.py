"""Turn an Exercise-1 sweep directory into one table and two figures.

    python experiments/ex1_synth_benchmark/aggregate.py multirun/ex1 [--out experiments/ex1_synth_benchmark]

Reads, for every job directory of the sweep: config.yaml (synth, seed), stability.json,
val_history.csv and eval_test/summary.json (run `make eval RUN=<job dir>` first). Writes
results.csv (one row per run), table.md (mean ± std over seeds per synth variant),
val_loss.png (mean validation loss per variant with a min–max band over seeds) and
spectrograms.png (one test example: the original and each variant's seed-0 resynthesis).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import soundfile as sf  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from ddsp_morph.plots import show_spectrogram  # noqa: E402

METRICS = [
    ("spectral_distance", "spectral dist.", 3),
    ("f0_cents_median", "f0 median (cents)", 1),
    ("f0_outlier_rate", "f0 outliers >50c", 3),
    ("octave_outlier_rate", "octave outliers", 2),
    ("loudness_l1_db", "loudness L1 (dB)", 2),
    ("best_val_loss", "best val loss", 3),
    ("final_val_loss", "final val loss", 3),
    ("steps_to_within_10pct", "steps to 10%", 0),
    ("loss_spikes", "loss spikes", 1),
    ("nonfinite_steps_skipped", "skipped steps", 1),
    ("train_wall_seconds", "train wall (s)", 0),
]
ORDER = ["harmonic", "harmonic_noise", "harmonic_noise_reverb"]


def collect(sweep: Path) -> pd.DataFrame:
    rows = []
    for job in sorted(p for p in sweep.iterdir() if (p / "config.yaml").exists()):
        cfg = OmegaConf.load(job / "config.yaml")
        row = {"run": job.name, "synth": cfg.synth.name, "seed": int(cfg.seed)}
        stability = job / "stability.json"
        if stability.exists():
            row.update(json.loads(stability.read_text()))
        summary = job / "eval_test" / "summary.json"
        if summary.exists():
            row.update(json.loads(summary.read_text())["all"])
        else:
            print(f"warning: {job}: no eval_test/summary.json (run make eval RUN={job})")
        row["diverged"] = bool(row.get("diverged", False))
        rows.append(row)
    if not rows:
        sys.exit(f"error: {sweep}: no run directories with config.yaml")
    return pd.DataFrame(rows)


def table(df: pd.DataFrame) -> str:
    cols = [(k, label, d) for k, label, d in METRICS if k in df]
    header = "| synth | runs | " + " | ".join(label for _, label, _ in cols) + " | diverged |"
    lines = [header, "|" + "---|" * (len(cols) + 3)]
    for synth in [s for s in ORDER if s in set(df["synth"])] + sorted(
        set(df["synth"]) - set(ORDER)
    ):
        g = df[df["synth"] == synth]
        cells = []
        for key, _, digits in cols:
            v = g[key].astype(float)
            cells.append(f"{v.mean():.{digits}f} ± {v.std(ddof=1) if len(v) > 1 else 0:.{digits}f}")
        lines.append(
            f"| {synth} | {len(g)} | "
            + " | ".join(cells)
            + f" | {int(g['diverged'].sum())}/{len(g)} |"
        )
    return "\n".join(lines)


def plot_val_loss(sweep: Path, df: pd.DataFrame, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    for synth in [s for s in ORDER if s in set(df["synth"])]:
        curves = []
        for run in df[df["synth"] == synth]["run"]:
            h = sweep / run / "val_history.csv"
            if h.exists():
                curves.append(pd.read_csv(h).set_index("step")["val_loss"])
        if not curves:
            continue
        joined = pd.concat(curves, axis=1).sort_index()
        mean = joined.mean(axis=1)
        ax.plot(mean.index, mean.values, label=f"{synth} (n={len(curves)})")
        ax.fill_between(mean.index, joined.min(axis=1), joined.max(axis=1), alpha=0.2)
    ax.set_xlabel("step")
    ax.set_ylabel("validation loss (multi-scale spectral)")
    ax.set_title("Validation loss: mean over seeds, band = min..max")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_spectrograms(sweep: Path, df: pd.DataFrame, path: Path) -> None:
    seed0 = df.sort_values("seed").drop_duplicates("synth").set_index("synth")
    panels = []
    for synth in [s for s in ORDER if s in seed0.index]:
        audio_dir = sweep / seed0.loc[synth, "run"] / "eval_test" / "audio"
        originals = sorted(audio_dir.glob("*_original.wav"))
        if not originals:
            continue
        if not panels:
            panels.append(("original " + originals[0].stem.removesuffix("_original"), originals[0]))
        resynth = audio_dir / originals[0].name.replace("_original", "_resynth")
        panels.append((synth, resynth))
    if not panels:
        return
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 2.4 * len(panels)), squeeze=False)
    for ax, (title, wav) in zip(axes[:, 0], panels, strict=True):
        audio, sr = sf.read(wav, dtype="float32")
        show_spectrogram(ax, audio, sr)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("kHz")
    axes[-1, 0].set_xlabel("s")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep", type=Path)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = ap.parse_args()
    df = collect(args.sweep)
    args.out.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out / "results.csv", index=False)
    md = table(df)
    (args.out / "table.md").write_text(md + "\n")
    plot_val_loss(args.sweep, df, args.out / "val_loss.png")
    plot_spectrograms(args.sweep, df, args.out / "spectrograms.png")
    print(md)
    print(f"wrote {args.out}/results.csv, table.md, val_loss.png, spectrograms.png")


if __name__ == "__main__":
    main()
