"""Setting a training up from the composed config: the Lightning module, the logger, the
precision, the job clock, the memory check, the callbacks and the Trainer."""

from __future__ import annotations

import functools
import logging
import os
import time
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from ddsp_morph.build import build_model
from ddsp_morph.errors import DDSPMorphError
from ddsp_morph.models.autoencoder import DDSPAutoencoder
from ddsp_morph.training.callbacks import RunCheckpoint
from ddsp_morph.training.latent import LatentMonitor
from ddsp_morph.training.module import DDSPModule

log = logging.getLogger(__name__)


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
        cycle_class_weight=float(cfg.latent.cycle_class_weight),
        window_frames=int(cfg.latent.window_frames),
        fluctuation_weight=float(loss.fluctuation_weight),
        conversion_fluctuation_weight=float(loss.conversion_fluctuation_weight),
        conversion_critic_weight=float(loss.conversion_critic_weight),
        lr_cooldown=float(m.lr_cooldown),
        budget_minutes=None if minutes is None else float(minutes),
    )


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


def cpu_has_amx_bf16(cpuinfo: str | None = None) -> bool:
    """True on CPUs with AMX bf16 tiles (Linux /proc/cpuinfo flags), where torch's bf16 matmuls
    run faster than float32."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = next((ln for ln in cpuinfo.splitlines() if ln.startswith("flags")), "")
    return "amx_bf16" in flags.split()


def resolve_precision(precision, accelerator: str) -> str | int:
    """``auto``: bf16-mixed on a CPU run where the CPU has AMX bf16 (the decoder in bf16 measured
    1.5x faster per step there), else 32. Anything else is passed to Lightning as it is."""
    if str(precision) != "auto":
        return precision
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    chosen = "bf16-mixed" if on_cpu and cpu_has_amx_bf16() else 32
    log.info("trainer.precision=auto: %s", chosen)
    return chosen


def training_minutes(cfg: DictConfig, now: float | None = None) -> float | None:
    """How long this process may train: ``trainer.max_minutes``, cut to what the job's clock
    leaves (``trainer.budget``: ``minutes`` from ``start``, less ``reserve_minutes`` for the
    end-of-run work), so that make train ends within its budget however long the set-up took.
    None: no limit."""
    t = cfg.trainer
    cap = t.max_minutes
    budget = t.budget
    if budget.start is None:
        return None if cap is None else float(cap)
    now = time.time() if now is None else now
    gone = (now - float(budget.start)) / 60.0
    left = float(budget.minutes) - float(budget.reserve_minutes) - gone
    if left <= 0:
        raise DDSPMorphError(
            f"trainer.budget: {gone:.1f} of the job's {float(budget.minutes):g} minutes are gone "
            f"before training (with {float(budget.reserve_minutes):g} reserved for the end of "
            "the run); nothing is left to train — raise trainer.budget.minutes, or set "
            "trainer.budget.start=null"
        )
    minutes = left if cap is None else min(float(cap), left)
    log.info(
        "training for at most %.1f min: the job's %g-minute budget, %.1f min gone in set-up, "
        "%g reserved for the end of the run (trainer.max_minutes %s)",
        minutes,
        float(budget.minutes),
        gone,
        float(budget.reserve_minutes),
        cap,
    )
    return minutes


# bytes per parameter while training: weights, gradients, Adam's two moments and the weight
# average, in float32
TRAINING_BYTES_PER_PARAMETER = 5 * 4


def machine_memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_model_fits(cfg: DictConfig, memory_bytes: int | None = None) -> int:
    """The model built from ``cfg`` (on the meta device: nothing allocated) must fit this
    machine's memory while it trains: refused in one line naming the size keys, before
    anything is written. Returns its parameter count."""
    with torch.device("meta"):
        model = build_model(cfg, n_instruments=len(cfg.data.corpus.instruments))
    n = sum(p.numel() for p in model.parameters())
    need = n * TRAINING_BYTES_PER_PARAMETER
    have = machine_memory_bytes() if memory_bytes is None else memory_bytes
    if have is not None and need > 0.8 * have:
        sizes = ", ".join(
            f"{k}={OmegaConf.select(cfg, k)}"
            for k in ("model.hidden_size", "model.gru_size", "model.n_mlp_layers", "latent.z_dim")
            if OmegaConf.select(cfg, k, default=None) is not None
        )
        raise DDSPMorphError(
            f"config {sizes}: a model of {n / 1e6:,.0f} M parameters needs about "
            f"{need / 2**30:,.1f} GiB to train (weights, gradients, Adam, the weight average), "
            f"more than this machine's {have / 2**30:,.1f} GiB allows; choose smaller sizes"
        )
    return n


def weight_average(cfg: DictConfig):
    """The ``trainer.weight_average`` callback, or None when its decay is null (off)."""
    from ddsp_morph.training.averaging import WeightAverage

    wa = cfg.trainer.weight_average
    if wa is None or wa.decay is None:
        return None
    return WeightAverage(float(wa.decay), also=[float(d) for d in wa.also or []])


def launched_rank() -> int:
    """This process's global rank when a launcher started it (torchrun, Lightning's DDP
    subprocesses, SLURM); 0 for the process a user started."""
    for key in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"):
        value = os.environ.get(key, "0")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 0


def build_callbacks(
    cfg: DictConfig, output_dir: Path, model: DDSPAutoencoder
) -> tuple[list[L.Callback], RunCheckpoint, L.Callback | None]:
    """The run's callbacks, and among them the best-checkpoint keeper and the weight average."""
    vm = cfg.trainer.get("validation_morph") or {}
    on_morph = bool(vm.get("keep_best", False)) and model.encoder is not None
    best = RunCheckpoint(
        dirpath=output_dir / "checkpoints",
        filename="step{step:06d}",
        auto_insert_metric_name=False,
        monitor="val/morph_min_p_b" if on_morph else "val/loss",
        mode="max" if on_morph else "min",
        save_last=False,
        save_top_k=1,
    )
    # last.ckpt every N steps (written atomically by Lightning): what an interrupted run resumes.
    last = RunCheckpoint(
        dirpath=output_dir / "checkpoints",
        every_n_train_steps=int(cfg.trainer.checkpoint_every_n_steps),
        save_top_k=0,
        save_last=True,
    )
    averaging = weight_average(cfg)
    # the average first: the latent maps at validation ends and at the end are then its own
    callbacks: list[L.Callback] = [averaging] if averaging is not None else []
    every = int(vm.get("every_n_validations", 0) or 0)
    if every > 0 and model.encoder is not None:
        # before the best keeper: the metric it may monitor is logged at the validation's end
        callbacks.append(validation_morph(cfg, output_dir, every))
    callbacks += [best, last]
    if model.encoder is not None:
        callbacks.append(
            LatentMonitor(output_dir / "latent", int(cfg.latent.monitor_every_n_epochs))
        )
    return callbacks, best, averaging


def validation_morph(cfg: DictConfig, output_dir: Path, every: int) -> L.Callback:
    from ddsp_morph.evaluation.classifier import corpus_classifier
    from ddsp_morph.training.morph_check import ValidationMorph

    vm = cfg.trainer.validation_morph
    stop = vm.get("stop_at")
    return ValidationMorph(
        corpus_classifier(Path(cfg.data.corpus_dir)),
        output_dir / "morph_valid.csv",
        every=every,
        n_examples=int(vm.n_examples),
        stop_at=None if stop is None else float(stop),
        sample_rate=int(cfg.data.sample_rate),
    )


def build_trainer(
    cfg: DictConfig, output_dir: Path, callbacks: list[L.Callback], minutes: float | None
) -> L.Trainer:
    t = cfg.trainer
    return L.Trainer(
        default_root_dir=str(output_dir),
        accelerator=str(t.accelerator),
        devices=t.devices,
        strategy=str(t.strategy),
        num_nodes=int(t.num_nodes),
        max_steps=int(t.max_steps),
        max_epochs=int(t.max_epochs),
        max_time=None if minutes is None else {"minutes": minutes},
        val_check_interval=t.val_check_interval,
        check_val_every_n_epoch=t.check_val_every_n_epoch,
        limit_val_batches=t.limit_val_batches,
        log_every_n_steps=int(t.log_every_n_steps),
        gradient_clip_val=t.gradient_clip_val,
        precision=resolve_precision(t.precision, str(t.accelerator)),
        fast_dev_run=t.fast_dev_run,
        overfit_batches=t.overfit_batches,
        enable_progress_bar=bool(t.enable_progress_bar),
        deterministic=bool(t.deterministic),
        logger=build_logger(cfg, output_dir),
        callbacks=callbacks,
        enable_model_summary=True,
    )
