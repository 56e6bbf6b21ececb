"""The end of a run: its result files (stability, histories, resynthesis, the morph table) and
what goes to the logger."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import pandas as pd
from omegaconf import DictConfig

from ddsp_morph.data.io import save_csv, save_json
from ddsp_morph.errors import DDSPMorphError
from ddsp_morph.training.artifacts import write_resynthesis
from ddsp_morph.training.module import val_history_frame
from ddsp_morph.training.stability import skipped_steps_line, stability_summary

log = logging.getLogger(__name__)


def log_media(logger, audio_dir: Path, sample_rate: int) -> None:
    """Resynthesis PNG and the example wavs into the experiment logger, when it takes media."""
    png = audio_dir / "resynthesis.png"
    if png.exists() and hasattr(logger, "log_image"):
        logger.log_image("val/resynthesis", [str(png)])
    wavs = sorted(audio_dir.glob("*.wav"))
    if wavs and hasattr(logger, "log_audio"):
        logger.log_audio(
            "val/audio",
            [str(w) for w in wavs],
            caption=[w.stem for w in wavs],
            sample_rate=[sample_rate] * len(wavs),
        )


def morph_at_the_end(
    cfg: DictConfig, model, dm, output_dir: Path, latent: dict | None = None
) -> dict | None:
    """The morph table of the final weights (``evaluation.morph_table``) into the run dir, with one
    summary line in the log; None when there is nothing to classify (one instrument).
    ``latent``: the final weights' latent summary when already computed (the last checkpoint
    stores one); else it is computed here."""
    from ddsp_morph.build import feature_settings
    from ddsp_morph.evaluation.classifier import corpus_classifier
    from ddsp_morph.evaluation.morph_table import (
        MorphSettings,
        audio_line,
        corpus_minutes,
        listener_line,
        measure_morph,
        summary_line,
    )
    from ddsp_morph.latent.summary import latent_summary

    if len(dm.instruments) < 2:
        log.info("morph: the corpus has one instrument (%s); nothing to morph", dm.instruments[0])
        return None
    model = model.cpu().eval()
    summary = measure_morph(
        output_dir,
        model,
        dm,
        latent or latent_summary(model, dm.datasets["train"], dm.instruments, step=-1),
        settings=MorphSettings.from_config(cfg.morph, cfg.seed),
        classifier=corpus_classifier(Path(cfg.data.corpus_dir)),
        features=feature_settings(cfg),
    )
    log.info("%s (%.0f s; %s)", summary_line(summary), summary["seconds"], output_dir / "morph.csv")
    log.info("%s", listener_line(summary))
    log.info("%s", audio_line(corpus_minutes(Path(cfg.data.corpus_dir))))
    return summary


def write_run_files(
    cfg: DictConfig,
    trainer: L.Trainer,
    module,
    dm,
    output_dir: Path,
    *,
    wall: float,
    averaging,
) -> dict[str, float]:
    """Everything a finished run writes beside its checkpoints (rank 0 only): stability.json,
    the histories, the resynthesized examples and the morph table. Returns the metrics."""
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    metrics["train_wall_seconds"] = wall
    metrics["global_step"] = trainer.global_step
    steps, values = zip(*module.val_history, strict=True) if module.val_history else ((), ())
    stability = stability_summary(module.train_history, steps, values, module.nonfinite_steps)
    stability["train_wall_seconds"] = wall
    save_json(output_dir / "stability.json", stability)
    if trainer.global_step > 0 and module.nonfinite_steps >= trainer.global_step:
        raise DDSPMorphError(
            f"{output_dir}: trained no step — all {trainer.global_step} had a non-finite loss or "
            "gradient and were skipped; lower latent.beta, model.lr or the loss weights"
        )
    skipped = skipped_steps_line(module.nonfinite_steps, len(module.train_history))
    if skipped is not None:
        log.warning("%s: %s", output_dir, skipped)
    save_csv(output_dir / "val_history.csv", val_history_frame(module.val_history))
    save_csv(
        output_dir / "train_history.csv",
        pd.DataFrame(
            {"batch": range(1, len(module.train_history) + 1), "loss": module.train_history}
        ),
    )
    metrics["nonfinite_steps_skipped"] = module.nonfinite_steps
    if averaging is not None:
        log.info(
            "weights: the EMA of the trained weights (decay %g, %d updates); the weights trained "
            "are kept in last.ckpt (morph CLI: weights=current)",
            averaging.decays[0],
            averaging.updates,
        )
    log.info(
        "trained %d steps in %.1f s; metrics %s; stability %s",
        trainer.global_step,
        wall,
        metrics,
        stability,
    )

    examples = dm.datasets["valid"] if len(dm.datasets["valid"]) else dm.datasets["train"]
    written = write_resynthesis(
        module.model.cpu(),
        examples,
        output_dir / "audio",
        sample_rate=int(cfg.data.sample_rate),
        n_examples=int(cfg.n_audio_examples),
    )
    if trainer.logger:
        log_media(trainer.logger, output_dir / "audio", int(cfg.data.sample_rate))
    log.info("wrote %d files under %s", len(written), output_dir / "audio")
    if module.model.encoder is not None and cfg.morph.enabled:
        lat = module.latent_summary
        final = lat if lat is not None and lat["step"] == trainer.global_step else None
        summary = morph_at_the_end(cfg, module.model, dm, output_dir, final)
        if summary is not None:
            metrics.update(
                {f"morph/{k}": float(v) for k, v in summary.items() if isinstance(v, int | float)}
            )
            if trainer.logger and hasattr(trainer.logger, "log_image"):
                trainer.logger.log_image("morph/table", [str(output_dir / "morph.png")])
    if trainer.logger and cfg.logger.name == "wandb":
        import wandb

        wandb.finish()
    return metrics
