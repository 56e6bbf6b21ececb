"""Setting a training up from the composed config: the Lightning module, the logger, the
precision and the Trainer."""

from __future__ import annotations

import functools

import torch
from omegaconf import DictConfig

from ddsp_morph.models.autoencoder import DDSPAutoencoder
from ddsp_morph.training.module import DDSPModule


def build_module(
    cfg: DictConfig,
    model: DDSPAutoencoder,
    *,
    instruments: list[str] | None = None,
    minutes: float | None = None,
) -> DDSPModule:
    """``minutes``: the training budget (``training.fit.training_minutes``; default
    ``trainer.max_minutes``), which the learning-rate cooldown counts against."""
    m, loss = cfg.model, cfg.model.loss
    if minutes is None:
        minutes = cfg.trainer.max_minutes
    optimizer = functools.partial(torch.optim.Adam, lr=float(m.lr))
    return DDSPModule(
        model,
        optimizer=optimizer,
        lr_decay=float(m.lr_decay),
        fft_sizes=list(loss.fft_sizes),
        overlap=float(loss.overlap),
        linear_weight=float(loss.linear_weight),
        log_weight=float(loss.log_weight),
        instruments=instruments or [],
        beta=float(cfg.latent.beta),
        beta_warmup_steps=int(cfg.latent.beta_warmup_steps),
        free_bits=float(cfg.latent.free_bits),
        path_weight=float(cfg.latent.path_weight),
        cycle_weight=float(cfg.latent.cycle_weight),
        window_frames=int(cfg.latent.window_frames),
        fluctuation_weight=float(loss.fluctuation_weight),
        conversion_fluctuation_weight=float(loss.conversion_fluctuation_weight),
        lr_cooldown=float(m.lr_cooldown),
        budget_minutes=None if minutes is None else float(minutes),
    )
