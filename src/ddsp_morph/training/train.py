"""train(cfg): the whole training job, testable without Hydra's command line."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import lightning as L
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from ddsp_morph.config import validate_config
from ddsp_morph.data.io import save_csv, save_json
from ddsp_morph.training.artifacts import write_resynthesis
from ddsp_morph.training.build import build_datamodule, build_model, build_module
from ddsp_morph.training.latent import LatentMonitor
from ddsp_morph.training.stability import stability_summary

log = logging.getLogger(__name__)


def sweep_group() -> str | None:
    """The sweep's directory name when Hydra runs a multirun, so one sweep is one wandb group."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return None
    return f"sweep-{Path(hc.sweep.dir).name}"


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


def build_logger(cfg: DictConfig, output_dir: Path):
    kind = cfg.logger.name
    if kind == "wandb":
        os.environ.setdefault("WANDB_MODE", str(cfg.logger.mode))
        os.environ.setdefault("WANDB_SILENT", "true")
        from lightning.pytorch.loggers import WandbLogger

        tags = [
            f"synth={cfg.synth.name}",
            f"conditioning={cfg.conditioning.name}",
            f"latent={cfg.latent.name}",
        ]
        return WandbLogger(
            project=str(cfg.logger.project),
            save_dir=str(output_dir),
            offline=cfg.logger.mode == "offline",
            name=output_dir.name,
            tags=tags,
            group=cfg.logger.get("group") or sweep_group(),
            config=OmegaConf.to_container(cfg, resolve=True),
        )
    if kind == "csv":
        from lightning.pytorch.loggers import CSVLogger

        return CSVLogger(save_dir=str(output_dir), name="csv")
    return False


def train(cfg: DictConfig) -> dict[str, float]:
    """Train one model; write checkpoints, resynthesized audio and a spectrogram PNG under
    ``cfg.paths.output_dir``. Returns the final metrics."""
    validate_config(cfg)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if cfg.seed is not None:
        L.seed_everything(int(cfg.seed), workers=True)
    torch.set_num_threads(int(cfg.get("num_threads") or torch.get_num_threads()))
    OmegaConf.save(cfg, output_dir / "config.yaml", resolve=True)

    dm = build_datamodule(cfg)
    dm.setup("fit")
    model = build_model(cfg, n_instruments=len(dm.instruments))
    model.set_loudness_stats(dm.stats["loudness_db_mean"], dm.stats["loudness_db_std"])
    module = build_module(cfg, model, instruments=dm.instruments)

    ckpt = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=output_dir / "checkpoints",
        filename="step{step:06d}",
        auto_insert_metric_name=False,
        monitor="val/loss",
        mode="min",
        save_last=True,
        save_top_k=1,
    )
    callbacks: list[L.Callback] = [ckpt]
    if model.encoder is not None:
        callbacks.append(
            LatentMonitor(output_dir / "latent", int(cfg.latent.get("monitor_every_n_epochs", 4)))
        )
    t = cfg.trainer
    trainer = L.Trainer(
        default_root_dir=str(output_dir),
        accelerator=str(t.accelerator),
        devices=t.devices,
        strategy=str(t.get("strategy", "auto")),
        num_nodes=int(t.get("num_nodes", 1)),
        max_steps=int(t.max_steps),
        max_epochs=int(t.max_epochs),
        val_check_interval=t.val_check_interval,
        check_val_every_n_epoch=t.check_val_every_n_epoch,
        limit_val_batches=t.limit_val_batches,
        log_every_n_steps=int(t.log_every_n_steps),
        gradient_clip_val=t.gradient_clip_val,
        precision=t.precision,
        fast_dev_run=t.fast_dev_run,
        overfit_batches=t.overfit_batches,
        enable_progress_bar=bool(t.enable_progress_bar),
        deterministic=bool(t.deterministic),
        logger=build_logger(cfg, output_dir),
        callbacks=callbacks,
        enable_model_summary=True,
    )
    start = time.time()
    trainer.fit(module, datamodule=dm)
    wall = time.time() - start
    # last.ckpt = the final weights (ModelCheckpoint's last is from the last validation).
    # Every rank calls it: under DDP it holds a barrier.
    trainer.save_checkpoint(output_dir / "checkpoints" / "last.ckpt")
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if not trainer.is_global_zero:
        return metrics  # under DDP, rank 0 alone writes the run's files
    metrics["train_wall_seconds"] = wall
    metrics["global_step"] = trainer.global_step
    steps, values = zip(*module.val_history, strict=True) if module.val_history else ((), ())
    stability = stability_summary(module.train_history, steps, values, module.nonfinite_steps)
    stability["train_wall_seconds"] = wall
    save_json(output_dir / "stability.json", stability)
    save_csv(
        output_dir / "val_history.csv",
        pd.DataFrame(module.val_history, columns=["step", "val_loss"]),
    )
    save_csv(
        output_dir / "train_history.csv",
        pd.DataFrame(
            {"batch": range(1, len(module.train_history) + 1), "loss": module.train_history}
        ),
    )
    metrics["nonfinite_steps_skipped"] = module.nonfinite_steps
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
    if trainer.logger and cfg.logger.name == "wandb":
        import wandb

        wandb.finish()
    return metrics
