"""The morph measured on the valid split during training: what a run may stop on, and what it
may keep, instead of the clock and the last step."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch

from ddsp_morph.data.io import save_csv

log = logging.getLogger(__name__)


def pair_scores(renders: pd.DataFrame) -> dict[str, float]:
    """From ``classify_renders``' rows: the worst pair's mean P(B) over its clips (every
    conversion of a source into another instrument), the mean over pairs, the conversions'
    accuracy and the resyntheses' accuracy."""
    conv = renders[(renders.target != "resynthesis") & (renders.target != renders.source)]
    per_pair = conv.groupby(["source", "target"]).p_target.mean()
    resyn = renders[renders.target == "resynthesis"]
    return {
        "min_p_b": float(per_pair.min()),
        "mean_p_b": float(per_pair.mean()),
        "conversion": float(conv.correct.mean()),
        "resynthesis": float(resyn.correct.mean()),
    }


class ValidationMorph(L.Callback):
    """Every ``every`` validations: the first ``n_examples`` valid clips of every instrument
    converted into every other one (their f0 and loudness with the target's centroid over the
    train split) and resynthesized, judged by the corpus classifier, with the weights being
    validated (the average, where the run keeps one). Logs ``val/morph_min_p_b`` (the worst
    pair's mean P(B): what the best checkpoint is chosen on under ``keep_best``) and the rest of
    ``pair_scores`` and appends them to ``<run>/morph_valid.csv``. ``stop_at``: training ends
    at the first check whose worst pair reaches it (and whose resyntheses and conversions are
    all right)."""

    def __init__(
        self,
        classifier,
        out_path: Path,
        *,
        every: int = 1,
        n_examples: int = 6,
        stop_at: float | None = None,
        sample_rate: int = 16000,
    ) -> None:
        self.classifier, self.out_path = classifier, Path(out_path)
        self.every, self.n_examples = max(1, int(every)), int(n_examples)
        self.stop_at, self.sample_rate = stop_at, int(sample_rate)
        self.validations = 0
        self.rows: list[dict] = []

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        self.validations += 1
        if self.validations % self.every:
            return
        scores = self.measure(pl_module.model, trainer.datamodule, int(trainer.global_step))
        for k, v in scores.items():
            pl_module.log(f"val/morph_{k}", v, rank_zero_only=True)
        self.rows.append({"step": int(trainer.global_step), **scores})
        save_csv(self.out_path, pd.DataFrame(self.rows))
        reached = (
            self.stop_at is not None
            and scores["min_p_b"] >= self.stop_at
            and scores["conversion"] == 1.0
            and scores["resynthesis"] == 1.0
        )
        if reached:
            log.info(
                "valid morph at step %d: every pair's P(B) >= %.3f (worst %.3f), every "
                "conversion and resynthesis right: training stops here",
                trainer.global_step,
                self.stop_at,
                scores["min_p_b"],
            )
            trainer.should_stop = True

    def measure(self, model, dm, step: int) -> dict[str, float]:
        from ddsp_morph.evaluation.morph_table import classify_renders, test_items_by_instrument
        from ddsp_morph.latent.summary import latent_summary

        was_training = model.training
        model.eval()
        try:
            summary = latent_summary(
                model, dm.datasets["train"], dm.instruments, step=step, speeds=False
            )
            centroids = {k: np.asarray(v, np.float32) for k, v in summary["centroids"].items()}
            items, labels = [], []
            for name, its in sorted(test_items_by_instrument(dm, "valid").items()):
                items += its[: self.n_examples]
                labels += [name] * len(its[: self.n_examples])
            with torch.no_grad():
                renders = classify_renders(
                    model,
                    items,
                    labels,
                    centroids,
                    classifier=self.classifier,
                    sample_rate=self.sample_rate,
                )
        finally:
            model.train(was_training)
        return pair_scores(renders)
