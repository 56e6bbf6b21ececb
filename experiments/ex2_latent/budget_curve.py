"""The batch shape and frame rate at equal wall time (issue 13, study 8): what each arm's 20
minutes bought (steps, audio seen) against what its end-of-run morph table met, one dot per
seed, arms grouped by setting.

    python experiments/ex2_latent/budget_curve.py SETTING=RUN_DIR [SETTING=RUN_DIR ...]

Runs that share a SETTING are seeds of it. Reads each run's ``morph_summary.json``,
``morph.csv``, ``stability.json`` and ``config.yaml`` (batch size, crop, hop). Writes
``experiments/ex2_latent/studies/morph_study8/budget_curve.{csv,png}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

OUT = Path(__file__).parent / "morph_study8"


def measures(setting: str, run: Path) -> dict:
    s = json.loads((run / "morph_summary.json").read_text())
    st = json.loads((run / "stability.json").read_text())
    data = yaml.safe_load((run / "config.yaml").read_text())["data"]
    pairs = pd.read_csv(run / "morph.csv")
    steps = int(st["train_steps"])
    return {
        "setting": setting,
        "run": run.name,
        "batch_size": int(data["batch_size"]),
        "crop_seconds": float(data["crop_seconds"]),
        "hop_length": int(data["hop_length"]),
        "steps": steps,
        "audio_hours_seen": steps * int(data["batch_size"]) * float(data["crop_seconds"]) / 3600,
        "best_val_loss": float(st["best_val_loss"]),
        "p_b_end_min": float(s["p_b_end_min"]),
        "pairs_p_b_end_ge_0.9": int((pairs["p_b_end"] >= 0.9).sum()),
        "max_step_max": float(s["max_step_max"]),
        "conversion_accuracy": float(s["conversion_accuracy"]),
        "resynthesis_accuracy_min": float(s["resynthesis_accuracy_min"]),
        "f0_cents_median_worst": float(s["f0_cents_median_worst"]),
        "targets_met": int(s["targets_met"]),
    }


def plot(df: pd.DataFrame, path: Path) -> None:
    settings = list(dict.fromkeys(df["setting"]))
    panels = [
        ("steps", "steps in 20 min (1 thread)", None),
        ("audio_hours_seen", "audio seen (hours)", None),
        ("best_val_loss", "best val loss", None),
        ("p_b_end_min", "P(B) at α=1, worst pair", 0.9),
        ("max_step_max", "largest step, worst pair", 0.35),
        ("f0_cents_median_worst", "f0 median, worst pair (cents)", 5.0),
        ("targets_met", "targets met (of 7)", 7),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.3 * len(panels), 3.2))
    for ax, (col, label, target) in zip(axes, panels, strict=True):
        for i, name in enumerate(settings):
            ys = df.loc[df["setting"] == name, col]
            ax.plot([i] * len(ys), ys, "o", alpha=0.8)
            ax.plot([i - 0.2, i + 0.2], [ys.mean()] * 2, "k-", lw=1)
        if target is not None:
            ax.axhline(target, color="0.6", lw=0.8, ls="--")
        ax.set_xticks(range(len(settings)), settings, rotation=45, ha="right", fontsize=7)
        ax.set_title(label, fontsize=8)
    fig.suptitle(
        "20 minutes on one thread of a 2-core CPU per run (dots: seeds; bar: mean)", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit(__doc__)
    rows = [measures(name, Path(path)) for name, _, path in (a.partition("=") for a in argv)]
    df = pd.DataFrame(rows)
    OUT.mkdir(parents=True, exist_ok=True)
    df.to_csv(OUT / "budget_curve.csv", index=False)
    plot(df, OUT / "budget_curve.png")
    print(df.round(3).to_string(index=False))


if __name__ == "__main__":
    main(sys.argv[1:])
