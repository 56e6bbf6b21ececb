"""The decoder-width trade-off at equal wall time (issue 13): film decoders of width 128, 256
and 512, each trained 30 minutes on one thread beside another run (multirun/morph_study2),
their end-of-run morph tables side by side.

    python experiments/ex2_latent/width_curve.py [--runs multirun/morph_study2]

Writes experiments/ex2_latent/studies/morph_study2/width_curve.{csv,png}.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

HERE = Path(__file__).parent
RUNS = {128: "film_h128", 256: "film", 512: "film_h512"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=Path, default=Path("multirun/morph_study2"))
    args = ap.parse_args()
    rows = []
    for width, name in RUNS.items():
        run = args.runs / name
        s = json.loads((run / "morph_summary.json").read_text())
        st = json.loads((run / "stability.json").read_text())
        pairs = pd.read_csv(run / "morph.csv")
        rows.append(
            {
                "width": width,
                "steps": st["train_steps"],
                "best_val_loss": st["best_val_loss"],
                "conversion_accuracy": s["conversion_accuracy"],
                "resynthesis_accuracy": s["resynthesis_accuracy"],
                "resynthesis_accuracy_min": s["resynthesis_accuracy_min"],
                "spearman_min": s["spearman_min"],
                "pairs_spearman_ge_0.95": int((pairs["spearman"] >= 0.95).sum()),
                "largest_step_median": float(pairs["max_step"].median()),
                "pairs_step_le_0.35": int((pairs["max_step"] <= 0.35).sum()),
                "p_b_end_min": s["p_b_end_min"],
                "pairs_p_b_end_ge_0.9": int((pairs["p_b_end"] >= 0.9).sum()),
                "centroid_step_ratio_median": s["centroid_step_ratio_median"],
            }
        )
    df = pd.DataFrame(rows)
    out = HERE / "morph_study2"
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "width_curve.csv", index=False)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    ax = axes[0]
    ax.plot(df["width"], df["conversion_accuracy"], "o-", label="conversion")
    ax.plot(df["width"], df["resynthesis_accuracy"], "s-", label="resynthesis")
    ax.plot(df["width"], df["resynthesis_accuracy_min"], "^--", label="resynthesis, worst instr.")
    ax.axhline(0.9, color="0.7", lw=0.8, ls="--")
    ax.set_ylabel("classifier accuracy")
    ax.legend(fontsize=7)
    ax = axes[1]
    ax.plot(df["width"], df["pairs_spearman_ge_0.95"], "o-", label="Spearman ≥ 0.95")
    ax.plot(df["width"], df["pairs_step_le_0.35"], "s-", label="largest step ≤ 0.35")
    ax.plot(df["width"], df["pairs_p_b_end_ge_0.9"], "^-", label="P(B) at α=1 ≥ 0.9")
    ax.set_ylabel("pairs meeting (of 12)")
    ax.set_ylim(0, 12.5)
    ax.legend(fontsize=7)
    ax = axes[2]
    ax.plot(df["width"], df["steps"], "o-", color="tab:gray")
    ax.set_ylabel("steps in 30 min (1 thread)")
    ax2 = ax.twinx()
    ax2.plot(df["width"], df["best_val_loss"], "s--", color="tab:red")
    ax2.set_ylabel("best val loss", color="tab:red")
    for a in axes:
        a.set_xscale("log", base=2)
        a.set_xticks(list(RUNS), [str(w) for w in RUNS])
        a.set_xlabel("decoder width (hidden = GRU)")
    fig.suptitle(
        "film decoder, label prior: width at equal wall time (30 min, 1 thread)", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(out / "width_curve.png", dpi=90)
    print(df.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
