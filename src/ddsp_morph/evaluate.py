"""``python -m ddsp_morph.evaluate run=<run dir> [split=test] [checkpoint=best|last|path]``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from ddsp_morph.errors import DDSPMorphError
from ddsp_morph.evaluation.evaluate import evaluate_run

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="evaluate")
def main(cfg: DictConfig) -> None:
    try:
        _, summary = evaluate_run(
            cfg.run,
            split=cfg.split,
            checkpoint=str(cfg.checkpoint),
            out_dir=cfg.out_dir,
            corpus_dir=cfg.corpus_dir,
            threshold=float(cfg.f0_threshold),
            n_plot=int(cfg.n_plot),
            max_examples=cfg.max_examples,
            progress=bool(cfg.progress),
        )
    except DDSPMorphError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(summary["all"], indent=2))
    print(f"wrote {cfg.out_dir}/metrics.csv, summary.json, spectrograms.png, audio/")


if __name__ == "__main__":
    main()
