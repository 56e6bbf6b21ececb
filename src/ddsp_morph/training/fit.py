"""train(cfg): the whole training job, testable without Hydra's command line."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import lightning as L
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from ddsp_morph.build import build_datamodule, build_model
from ddsp_morph.config import validate_training_config
from ddsp_morph.data.io import save_csv, save_json
from ddsp_morph.data.origin import differing_keys, dotted
from ddsp_morph.errors import DDSPMorphError
from ddsp_morph.runs import add_path_speeds
from ddsp_morph.training.artifacts import write_resynthesis
from ddsp_morph.training.callbacks import RunCheckpoint
from ddsp_morph.training.latent import LatentMonitor
from ddsp_morph.training.module import val_history_frame
from ddsp_morph.training.setup import build_module
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


IGNORED_FOR_RESUME = (
    "paths.output_dir",
    "resume",
    "resume_allow",
    "num_threads",
    "trainer.enable_progress_bar",
    "trainer.budget",
)


def training_minutes(cfg: DictConfig, now: float | None = None) -> float | None:
    """How long this process may train: ``trainer.max_minutes``, cut to what the job's clock
    leaves (``trainer.budget``: ``minutes`` from ``start``, less ``reserve_minutes`` for the
    end-of-run work), so that make train ends within its budget however long the set-up took.
    None: no limit."""
    t = cfg.trainer
    cap = t.get("max_minutes")
    budget = t.get("budget") or {}
    if budget.get("start") is None:
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


def comparable(cfg: DictConfig) -> dict:
    """The config as plain data, without the keys that do not change what a run computes."""
    data = OmegaConf.to_container(cfg, resolve=True)
    data.pop("hydra", None)
    for key in IGNORED_FOR_RESUME:
        node, *path = key.split(".")
        holder = data
        for part in [node, *path][:-1]:
            holder = holder.get(part, {}) if isinstance(holder, dict) else {}
        if isinstance(holder, dict):
            holder.pop(key.split(".")[-1], None)
    return data


def find_resumable(cfg: DictConfig, output_dir: Path) -> Path | None:
    """The run to continue: ``resume=<run dir>``, or with ``resume=auto`` an unfinished run
    (a last.ckpt, no stability.json) whose config equals this one — so the same command that
    was interrupted picks up where it stopped. ``resume=never`` always starts afresh."""
    mode = cfg.get("resume", "auto")
    if mode in (None, False, "never"):
        return None
    if mode != "auto":
        run = Path(str(mode))
        if not (run / "checkpoints" / "last.ckpt").exists():
            raise DDSPMorphError(f"resume={run}: no checkpoints/last.ckpt there")
        if (run / "stability.json").exists():
            raise DDSPMorphError(
                f"resume={run}: that run finished (its stability.json is written); nothing to "
                "resume — train a new run (resume=never), or raise trainer.max_steps in a new one"
            )
        check_resume_config(cfg, run)
        return run
    want = comparable(cfg)
    runs_dir = Path(cfg.paths.runs_dir)
    candidates = [output_dir] + sorted((p for p in runs_dir.glob("*") if p.is_dir()), reverse=True)
    for run in candidates:
        if not (run / "checkpoints" / "last.ckpt").exists() or (run / "stability.json").exists():
            continue
        try:
            saved = OmegaConf.load(run / "config.yaml")
        except OSError:
            continue
        if comparable(saved) == want:
            return run
    return None


def resume_changes(cfg: DictConfig, run: Path) -> dict[str, list]:
    """key -> [the run's value, this config's value] for every key that differs from the
    run's saved config (the keys in IGNORED_FOR_RESUME aside)."""
    try:
        saved = OmegaConf.load(run / "config.yaml")
    except OSError:
        raise DDSPMorphError(f"resume={run}: no config.yaml there; not a training run") from None
    before, now = comparable(saved), comparable(cfg)
    return {k: [dotted(before, k), dotted(now, k)] for k in differing_keys(before, now)}


def check_resume_config(cfg: DictConfig, run: Path) -> dict[str, list]:
    """A resumed run keeps the config it started with: any change is refused in one line that
    lists the keys, unless each is named in ``resume_allow`` (then the run records it in
    ``resumes.json``). Returns the allowed changes."""
    changes = resume_changes(cfg, run)
    allowed = {str(k) for k in (cfg.get("resume_allow") or [])}
    refused = {k: v for k, v in changes.items() if k not in allowed}
    if refused:
        listed = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in list(refused.items())[:6])
        more = f" (+{len(refused) - 6} more)" if len(refused) > 6 else ""
        raise DDSPMorphError(
            f"resume={run}: this config differs from the run's ({listed}{more}); a run keeps "
            f"one config — drop the changes, start a new run (resume=never), or allow them: "
            f"resume_allow=[{','.join(refused)}]"
        )
    return changes


def record_resume(run: Path, changes: dict[str, list], step: int | None) -> None:
    """Append the changes a resume was allowed to make to the run's ``resumes.json``."""
    path = run / "resumes.json"
    history = json.loads(path.read_text()) if path.exists() else []
    history.append(
        {
            "time": time.strftime("%Y-%m-%d %H:%M:%S"),
            "from_step": step,
            "changed": {k: {"before": a, "after": b} for k, (a, b) in changes.items()},
        }
    )
    save_json(path, history)


def check_run_examples(run: Path, examples: pd.DataFrame) -> None:
    """A resumed run trains on the corpus it started with: the examples (ids, instruments,
    splits) of ``examples.csv`` must be what the corpus serves now."""
    path = run / "examples.csv"
    if not path.exists():
        return
    before = pd.read_csv(path)
    if not before.reset_index(drop=True).equals(examples.reset_index(drop=True)):
        raise DDSPMorphError(
            f"{run}: the corpus changed since this run started ({len(before)} examples then, "
            f"{len(examples)} now, or other ids or splits); a run keeps one corpus — train a new "
            "run (resume=never)"
        )


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


LOCK_NAME = "train.lock"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def acquire_run_lock(run_dir: Path) -> Path:
    """A lock file holding this process's pid in the run dir: a second training on the same run
    is refused in one line while the first lives; a lock whose process is gone is taken over."""
    lock = run_dir / LOCK_NAME
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                pid = int(lock.read_text().strip() or "0")
            except (OSError, ValueError):
                pid = 0
            if pid > 0 and pid != os.getpid() and _pid_alive(pid):
                raise DDSPMorphError(
                    f"{run_dir}: a training is running there (pid {pid}, {lock}); wait for it, "
                    "or start a separate run with resume=never"
                ) from None
            log.warning("%s: removing a stale lock (pid %s is gone)", lock, pid or "unknown")
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()}\n")
        return lock
    raise DDSPMorphError(f"{lock}: cannot take the run's lock")


def resume_checkpoint(run_dir: Path, model: torch.nn.Module) -> str | None:
    """last.ckpt if it loads and fits the model (else the best step*.ckpt); None: start afresh."""
    from ddsp_morph.runs import load_checkpoint, load_state_checked, model_state

    for path in [
        run_dir / "checkpoints" / "last.ckpt",
        *sorted((run_dir / "checkpoints").glob("step*.ckpt")),
    ]:
        if not path.exists():
            continue
        try:
            state = load_checkpoint(path)
        except DDSPMorphError as e:
            log.warning("cannot resume from %s: %s", path, e)
            continue
        load_state_checked(model, model_state(state), path)  # a clear error on another config
        log.info("resuming from %s at step %s", path, state.get("global_step"))
        return str(path)
    log.warning("%s: no loadable checkpoint; training from the start", run_dir)
    return None


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
    return summary


def weight_average(cfg: DictConfig):
    """The ``trainer.weight_average`` callback, or None when its decay is null (off)."""
    from ddsp_morph.training.averaging import WeightAverage

    wa = cfg.trainer.get("weight_average") or {}
    if wa.get("decay") is None:
        return None
    return WeightAverage(float(wa["decay"]), also=[float(d) for d in wa.get("also") or []])


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


def launched_rank() -> int:
    """This process's global rank when a launcher started it (torchrun, Lightning's DDP
    subprocesses, SLURM); 0 for the process a user started."""
    for key in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"):
        value = os.environ.get(key, "0")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 0


def _train_locked(cfg: DictConfig, output_dir: Path, resume_from: Path | None) -> dict:
    if cfg.seed is not None:
        L.seed_everything(int(cfg.seed), workers=True)
    torch.set_num_threads(int(cfg.get("num_threads") or torch.get_num_threads()))

    dm = build_datamodule(cfg)
    dm.setup("fit")
    model = build_model(cfg, n_instruments=len(dm.instruments))
    model.set_stats(dm.stats)
    minutes = training_minutes(cfg)
    module = build_module(cfg, model, instruments=dm.instruments, minutes=minutes)
    # the checkpoint and the corpus of a resume are checked before anything is written
    ckpt_path = resume_checkpoint(output_dir, model) if resume_from is not None else None
    examples = dm.examples()
    changes: dict[str, list] = {}
    if resume_from is not None:
        check_run_examples(output_dir, examples)
        changes = resume_changes(cfg, output_dir) if (output_dir / "config.yaml").exists() else {}
    if changes:
        step = torch.load(ckpt_path, weights_only=True)["global_step"] if ckpt_path else None
        record_resume(output_dir, changes, step)
    saved = OmegaConf.to_container(cfg, resolve=True)
    saved["paths"]["output_dir"] = str(output_dir)
    OmegaConf.save(OmegaConf.create(saved), output_dir / "config.yaml")
    save_csv(output_dir / "examples.csv", examples)
    module.val_log_path = output_dir / "val_history.csv"

    ckpt = RunCheckpoint(
        dirpath=output_dir / "checkpoints",
        filename="step{step:06d}",
        auto_insert_metric_name=False,
        monitor="val/loss",
        mode="min",
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
    callbacks += [ckpt, last]
    if model.encoder is not None:
        callbacks.append(
            LatentMonitor(output_dir / "latent", int(cfg.latent.monitor_every_n_epochs))
        )
    t = cfg.trainer
    trainer = L.Trainer(
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
    start = time.time()
    # weights_only=True: Lightning loads the checkpoint again; TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD
    # in the environment overrides only a call that does not say it
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path, weights_only=True)
    wall = time.time() - start + module.wall_before  # the parts before a resume included
    # last.ckpt = the final weights (ModelCheckpoint's last is from the last validation).
    # Every rank calls it: under DDP it holds a barrier.
    trainer.save_checkpoint(output_dir / "checkpoints" / "last.ckpt")
    best = Path(ckpt.best_model_path) if ckpt.best_model_path else None
    if best is not None and not best.exists():
        log.warning("%s: the best checkpoint is gone; tools fall back to last.ckpt", best)
        best = None
    if trainer.is_global_zero and best is not None and model.encoder is not None:
        # the best checkpoint was written inside the loop without the path speeds: add them
        # once, with its own weights, rather than at every validation
        add_path_speeds(best, module.model, dm.datasets["train"], dm.instruments)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if not trainer.is_global_zero:
        return metrics  # under DDP, rank 0 alone writes the run's files
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
