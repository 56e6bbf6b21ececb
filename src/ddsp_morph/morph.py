"""``python -m ddsp_morph.morph run=<run dir> [checkpoint=last] [path=linear|slerp] [weights=current]``

Measures a trained run's morph (``evaluation.morph``): every ordered instrument pair on the
test split, conversion and resynthesis accuracy. Writes morph.csv, morph_curves.csv,
morph_renders.csv, morph_summary.json and morph.png into ``out_dir`` (default: the run dir,
as at the end of training).
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig

from ddsp_morph.errors import DDSPMorphError

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")


def run_morph(cfg: DictConfig) -> dict:
    from ddsp_morph.evaluation.classifier import corpus_classifier
    from ddsp_morph.evaluation.latent_eval import centroids_of
    from ddsp_morph.evaluation.morph import MorphSettings, test_items_by_instrument, write_morph
    from ddsp_morph.training.build import build_datamodule, feature_settings
    from ddsp_morph.training.checkpoint import load_run
    from ddsp_morph.training.latent import latent_summary, with_speeds

    run = load_run(
        cfg.run, checkpoint=str(cfg.checkpoint), weights=str(cfg.get("weights", "average"))
    )
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
    centroids = {k: np.asarray(v, np.float32) for k, v in centroids_of(run).items()}
    settings = MorphSettings(
        steps=int(cfg.steps),
        n_examples=int(cfg.n_examples),
        path=str(cfg.path),
        even=bool(cfg.get("even", True)),
        seed=int(cfg.seed),
    )
    latent = run.extra.get("latent")
    if settings.even and not (latent.get("path_speed") or {}).get(settings.path):
        # a checkpoint from before the speeds were stored (or a path kind it does not store)
        dm.setup("fit")
        latent = with_speeds(latent, run.model, dm.datasets["train"], dm.instruments, settings.path)
    out = Path(cfg.out_dir) if cfg.out_dir else run.run_dir
    return write_morph(
        out,
        run.model,
        test_items_by_instrument(dm),
        centroids,
        classifier=corpus_classifier(Path(run.cfg.data.corpus_dir), cfg.classifier or None),
        features=feature_settings(run.cfg),
        settings=settings,
        latent=latent,
    )


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="morph")
def main(cfg: DictConfig) -> None:
    from ddsp_morph.evaluation.morph import summary_line

    try:
        summary = run_morph(cfg)
    except DDSPMorphError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(summary_line(summary))


if __name__ == "__main__":
    main()
