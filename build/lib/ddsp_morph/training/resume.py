"""Resuming a run and holding it: which unfinished run a command continues, what a resume may
change, the examples it must find again, and the pid lock that keeps two commands off one run."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from ddsp_morph.data.io import save_csv, save_json
from ddsp_morph.data.origin import differing_keys, dotted
from ddsp_morph.errors import DDSPMorphError

log = logging.getLogger(__name__)


IGNORED_FOR_RESUME = (
    "paths.output_dir",
    "resume",
    "resume_allow",
    "num_threads",
    "trainer.enable_progress_bar",
    "trainer.budget",
)


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
    mode = cfg.resume
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
    allowed = {str(k) for k in cfg.resume_allow}
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


def prepare_run_dir(
    cfg: DictConfig, output_dir: Path, model: torch.nn.Module, dm, resume_from: Path | None
) -> str | None:
    """Check a resume's checkpoint and corpus before anything is written, record what it
    changes, then write the run's config.yaml and examples.csv. Returns the checkpoint to
    resume from (None: a fresh run)."""
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
    return ckpt_path
