"""The corpus x seed x target table of the cross-corpus study from the runs' morph summaries.

python experiments/ex2_latent/cross_corpus/table.py runs/<run> [runs/<run> ...] > table.md
Each run's corpus and seed come from its config.yaml."""

import json
import sys
from pathlib import Path

from omegaconf import OmegaConf

COLUMNS = [
    ("P(B) α=0 max", "p_b_start_all_max", "{:.3f}"),
    ("P(B) α=1 min (all clips)", "p_b_end_all_min", "{:.3f}"),
    ("worst pair", "p_b_end_all_worst_pair", "{}"),
    ("Spearman min", "spearman_min", "{:.2f}"),
    ("largest step", "max_step_max", "{:.3f}"),
    ("conversion", "conversion_accuracy", "{:.2f}"),
    ("resynthesis min", "resynthesis_accuracy_min", "{:.2f}"),
    ("f0 cents worst", "f0_cents_median_worst", "{:.1f}"),
]


def row(run: Path) -> str:
    cfg = OmegaConf.load(run / "config.yaml")
    s = json.loads((run / "morph_summary.json").read_text())
    stab = json.loads((run / "stability.json").read_text())
    steps = stab.get("train_steps")  # the committed folders keep stability.json, not the history
    if steps is None:
        steps = sum(1 for _ in open(run / "train_history.csv")) - 1
    cells = []
    for _, key, fmt in COLUMNS:
        v = s.get(key)
        cells.append("—" if v is None else fmt.format(v))
    margin = s.get("p_b_end_all_min", 0) >= 0.92
    return (
        f"| {cfg.data.corpus.name} | {cfg.seed} | {steps} | {stab.get('train_wall_seconds', 0) / 60:.1f} | "
        + " | ".join(cells)
        + f" | {s['targets_met']}/{s['targets_checked']} | {'yes' if margin else 'no'} | {run.name} |"
    )


def main(runs: list[str]) -> None:
    head = ["corpus", "seed", "steps", "train min"] + [c[0] for c in COLUMNS]
    head += ["targets met", "P(B) ≥ 0.92", "run"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in runs:
        print(row(Path(r)))


if __name__ == "__main__":
    main(sys.argv[1:])
