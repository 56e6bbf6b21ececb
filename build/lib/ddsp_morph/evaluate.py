"""``python -m ddsp_morph.evaluate run=<run dir> [split=test] [checkpoint=best|last|path]``."""

from __future__ import annotations

import json

import hydra
from omegaconf import DictConfig

from ddsp_morph.config import CONF_DIR
from ddsp_morph.errors import exits_on_error
from ddsp_morph.evaluation.resynthesis import evaluate_run


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="evaluate")
@exits_on_error
def main(cfg: DictConfig) -> None:
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
    print(json.dumps(summary["all"], indent=2))
    print(f"wrote {cfg.out_dir}/metrics.csv, summary.json, spectrograms.png, audio/")


if __name__ == "__main__":
    main()
