"""``python -m ddsp_morph.morph run=<run dir> [checkpoint=last] [path=linear|slerp] [weights=current]``

Measures a trained run's morph (``evaluation.morph_table``): every ordered instrument pair on the
test split, conversion and resynthesis accuracy. Writes morph.csv, morph_curves.csv,
morph_renders.csv, morph_summary.json and morph.png into ``out_dir`` (default: the run dir,
as at the end of training).
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from ddsp_morph.config import CONF_DIR
from ddsp_morph.errors import DDSPMorphError, exits_on_error


def run_morph(cfg: DictConfig) -> dict:
    from ddsp_morph.build import build_datamodule, feature_settings
    from ddsp_morph.evaluation.classifier import corpus_classifier
    from ddsp_morph.evaluation.morph_table import MorphSettings, measure_morph
    from ddsp_morph.latent.summary import latent_summary
    from ddsp_morph.runs import load_run

    run = load_run(cfg.run, checkpoint=str(cfg.checkpoint), weights=str(cfg.weights))
    dm = build_datamodule(run.cfg)
    dm.setup("test")
    if len(dm.instruments) < 2:
        raise DDSPMorphError(
            f"{run.run_dir}: one instrument ({dm.instruments[0]}); nothing to morph"
        )
    if run.extra.get("latent") is None and run.model.encoder is not None:
        # other weights than the ones the stored summary was made with: summarize these
        dm.setup("fit")
        run.extra["latent"] = latent_summary(
            run.model, dm.datasets["train"], dm.instruments, step=run.global_step
        )
    if run.extra.get("latent") is None:
        raise DDSPMorphError(
            f"{run.checkpoint_path}: no latent in this run (trained with latent=none?)"
        )
    return measure_morph(
        Path(cfg.out_dir) if cfg.out_dir else run.run_dir,
        run.model,
        dm,
        run.extra["latent"],
        settings=MorphSettings.from_config(cfg, cfg.seed),
        classifier=corpus_classifier(Path(run.cfg.data.corpus_dir), cfg.classifier or None),
        features=feature_settings(run.cfg),
    )


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="morph")
@exits_on_error
def main(cfg: DictConfig) -> None:
    from ddsp_morph.evaluation.morph_table import summary_line

    summary = run_morph(cfg)
    print(summary_line(summary))


if __name__ == "__main__":
    main()
