"""train(cfg): the whole training job, testable without Hydra's command line. Its parts live
beside it: ``setup`` (module, logger, precision, clock, callbacks, Trainer), ``resume`` (which
run continues, what it may change, the lock) and ``finish`` (the run's result files)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig

from ddsp_morph.build import build_datamodule, build_model
from ddsp_morph.config import validate_training_config
from ddsp_morph.runs import add_path_speeds, load_checkpoint, load_state_checked, model_state
from ddsp_morph.training.finish import write_run_files
from ddsp_morph.training.resume import acquire_run_lock, find_resumable, prepare_run_dir
from ddsp_morph.training.setup import (
    build_callbacks,
    build_module,
    build_trainer,
    check_model_fits,
    launched_rank,
    training_minutes,
)

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, float]:
    """Train one model; write checkpoints, resynthesized audio and a spectrogram PNG under
    ``cfg.paths.output_dir``. Returns the final metrics."""
    validate_training_config(cfg)
    check_model_fits(cfg)
    output_dir = Path(cfg.paths.output_dir)
    resume_from = find_resumable(cfg, output_dir)
    if resume_from is not None and resume_from.resolve() != output_dir.resolve():
        log.info("resuming the interrupted run %s (same config)", resume_from)
        output_dir = resume_from
    output_dir.mkdir(parents=True, exist_ok=True)
    # a DDP worker (rank > 0) leaves the run's lock to the first process
    lock = acquire_run_lock(output_dir) if launched_rank() == 0 else None
    try:
        return _train_locked(cfg, output_dir, resume_from)
    finally:
        if lock is not None:
            lock.unlink(missing_ok=True)


def _train_locked(cfg: DictConfig, output_dir: Path, resume_from: Path | None) -> dict:
    if cfg.seed is not None:
        L.seed_everything(int(cfg.seed), workers=True)
    torch.set_num_threads(int(cfg.num_threads or torch.get_num_threads()))

    dm = build_datamodule(cfg)
    dm.setup("fit")
    model = build_model(cfg, n_instruments=len(dm.instruments))
    model.set_stats(dm.stats)
    minutes = training_minutes(cfg)
    module = build_module(cfg, model, instruments=dm.instruments, minutes=minutes)
    ckpt_path = prepare_run_dir(cfg, output_dir, model, dm, resume_from)
    module.val_log_path = output_dir / "val_history.csv"
    callbacks, best_keeper, averaging = build_callbacks(cfg, output_dir, model)
    trainer = build_trainer(cfg, output_dir, callbacks, minutes)

    start = time.time()
    # weights_only=True: Lightning loads the checkpoint again; TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD
    # in the environment overrides only a call that does not say it
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path, weights_only=True)
    wall = time.time() - start + module.wall_before  # the parts before a resume included
    # last.ckpt = the final weights (ModelCheckpoint's last is from the last validation).
    # Every rank calls it: under DDP it holds a barrier.
    trainer.save_checkpoint(output_dir / "checkpoints" / "last.ckpt")
    best = Path(best_keeper.best_model_path) if best_keeper.best_model_path else None
    if best is not None and not best.exists():
        log.warning("%s: the best checkpoint is gone; tools fall back to last.ckpt", best)
        best = None
    if trainer.is_global_zero and best is not None and model.encoder is not None:
        # the best checkpoint was written inside the loop without the path speeds: add them
        # once, with its own weights, rather than at every validation
        add_path_speeds(best, module.model, dm.datasets["train"], dm.instruments)
    if not trainer.is_global_zero:  # under DDP, rank 0 alone writes the run's files
        return {k: float(v) for k, v in trainer.callback_metrics.items()}
    if best is not None and best_keeper.monitor == "val/morph_min_p_b":
        end_with_best(module, best, float(best_keeper.best_model_score))
    return write_run_files(cfg, trainer, module, dm, output_dir, wall=wall, averaging=averaging)


def end_with_best(module, best: Path, score: float) -> None:
    """``trainer.validation_morph.keep_best``: the run's end-of-run files (resynthesis, morph
    table) measure the checkpoint whose valid morph was best, as every tool's ``best`` does."""
    ckpt = load_checkpoint(best)
    load_state_checked(module.model, model_state(ckpt), best)
    module.latent_summary = None  # the end-of-run morph recomputes it for these weights
    log.info(
        "the run ends with %s (step %d: the valid split's worst pair P(B) %.3f, the best check), "
        "not the last step's weights",
        best.name,
        int(ckpt.get("global_step", 0)),
        score,
    )
