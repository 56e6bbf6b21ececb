"""Load a trained run back: its saved config, its checkpoint (weights only, no unpickling of
arbitrary objects) and the model rebuilt from config alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from ddsp_morph.build import build_model
from ddsp_morph.config import apply_renames
from ddsp_morph.data.io import atomic_write_with
from ddsp_morph.errors import ConfigError, DDSPMorphError
from ddsp_morph.latent.speeds import with_speeds
from ddsp_morph.models.autoencoder import DDSPAutoencoder

MODEL_PREFIX = "model."
AVERAGE_KEY = "weight_average"  # where training.averaging keeps its shadows in a checkpoint

# What a run's config.yaml written before a key existed meant by its absence: the behaviour of
# the code at the time, not today's default (conf/ holds those). Filled in where a saved config
# lacks the key, so that old runs load and play as they were trained.
BEFORE_THE_KEY: dict = {
    "data": {
        "register_power": 0.5,
        "pitch_shift": {"semitones": 0.0, "probability": 0.5},
        "gain": {"db": 0.0, "probability": 0.5},
        "features": {"f0_octave_check": True, "f0_hop_length": None},
    },
    "model": {
        "z_mode": "concat",
        "lfo_rates": [],
        "loudness_reference": "corpus",
        "lr_cooldown": 0.0,
        "loss": {
            "fluctuation_weight": 0.0,
            "conversion_fluctuation_weight": 0.0,
            "conversion_critic_weight": 0.0,
        },
    },
    "latent": {
        "prior": "standard",
        "prior_radius": 3.0,
        "prior_std": 1.0,
        "pitch_input": False,
        "harmonics": 0,
        "frame_stride": 1,
        "beta": 0.0,
        "beta_warmup_steps": 0,
        "free_bits": 0.0,
        "path_weight": 0.0,
        "cycle_weight": 0.0,
        "cycle_class_weight": 0.0,
        "window_frames": 0,
        "monitor_every_n_epochs": 4,
    },
}


def saved_config(cfg: DictConfig) -> DictConfig:
    """A run's saved config with the keys it predates filled in (``BEFORE_THE_KEY``)."""
    cfg = OmegaConf.merge(OmegaConf.create(BEFORE_THE_KEY), cfg)
    apply_renames(cfg, note=False)  # a run saved before a rename: its values under the new names
    return cfg


@dataclass
class LoadedRun:
    run_dir: Path
    cfg: DictConfig
    model: DDSPAutoencoder
    checkpoint_path: Path
    instruments: list[str]
    global_step: int
    extra: dict = field(default_factory=dict)


def finished_runs(runs_dir: Path) -> list[Path]:
    """Run folders under ``runs_dir`` that hold a ``last.ckpt``, oldest first (by name: date)."""
    return sorted(p.parents[1] for p in Path(runs_dir).glob("*/checkpoints/last.ckpt"))


def find_checkpoint(run_dir: Path, which: str = "best") -> Path:
    """``best``: the top-k checkpoint ModelCheckpoint kept (lowest val/loss), else last.ckpt;
    ``last``: last.ckpt; anything else: a path."""
    ckpt_dir = run_dir / "checkpoints"
    if which not in ("best", "last"):
        path = Path(which)
        if not path.exists():
            raise DDSPMorphError(f"{path}: no such checkpoint")
        return path
    if which == "best":
        best = sorted(p for p in ckpt_dir.glob("step*.ckpt"))
        if best:
            return best[-1]
    last = ckpt_dir / "last.ckpt"
    if not last.exists():
        raise DDSPMorphError(f"{run_dir}: no checkpoint under checkpoints/ (is it a training run?)")
    return last


def load_checkpoint(path: Path) -> dict:
    """torch.load with weights_only=True: tensors and plain containers, never arbitrary code."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds on a bad file; name it once
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DDSPMorphError(f"{path}: cannot load checkpoint ({first})") from e


def model_state(checkpoint: dict) -> dict[str, torch.Tensor]:
    state = checkpoint.get("state_dict")
    if state is None:
        raise DDSPMorphError("checkpoint has no state_dict")
    return {k[len(MODEL_PREFIX) :]: v for k, v in state.items() if k.startswith(MODEL_PREFIX)}


def load_state_checked(
    model: torch.nn.Module, state: dict[str, torch.Tensor], source: Path
) -> None:
    """Load ``state`` into ``model``, or fail with one line naming the keys that differ."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if own[k].shape != state[k].shape
    )
    if missing or unexpected or shapes:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
            if keys:
                more = f" (+{len(keys) - 6} more)" if len(keys) > 6 else ""
                parts.append(f"{label}: {', '.join(keys[:6])}{more}")
        raise DDSPMorphError(
            f"{source}: checkpoint does not fit the model built from this config; "
            + "; ".join(parts)
        )
    model.load_state_dict(state)


def load_run(
    run_dir: str | Path,
    *,
    checkpoint: str = "best",
    overrides: list[str] | None = None,
    weights: str = "average",
) -> LoadedRun:
    """Rebuild the model of a training run from its ``config.yaml`` and load its weights.

    ``weights``: what a run trained with ``trainer.weight_average`` kept: ``average`` (the
    checkpoint's state_dict, the weights every tool uses), ``current`` (the weights being
    trained) or a further decay (``0.995``). The latent summary stored with the checkpoint is
    the average's, so for other weights ``extra`` has no ``latent``: recompute it."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.exists():
        raise DDSPMorphError(f"{run_dir}: no config.yaml here; not a training run directory")
    cfg = saved_config(OmegaConf.load(cfg_path))
    if overrides:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(overrides))
    path = find_checkpoint(run_dir, checkpoint)
    ckpt = load_checkpoint(path)
    meta = ckpt.get("ddsp_morph", {})
    instruments = list(meta.get("instruments", []))
    model = build_model(cfg, n_instruments=max(1, len(instruments)))
    load_state_checked(model, model_state({"state_dict": weights_of(ckpt, weights)}), path)
    model.eval()
    if weights != "average":
        meta = {k: v for k, v in meta.items() if k != "latent"}
    return LoadedRun(
        run_dir=run_dir,
        cfg=cfg,
        model=model,
        checkpoint_path=path,
        instruments=instruments,
        global_step=int(ckpt.get("global_step", 0)),
        extra={k: v for k, v in meta.items() if k != "instruments"},
    )


def add_path_speeds(path: Path, model: DDSPAutoencoder, dataset, instruments: list[str]) -> bool:
    """Measure and store the slerp path-speed tables in the checkpoint at ``path``, with its own
    weights (``model``'s architecture; ``model`` itself is left as it is), where its latent
    summary has none: a training run writes its best checkpoint at a validation without them
    and completes it once after the fit (``training.fit``). The file is rewritten atomically.
    Returns whether it changed."""
    import copy

    checkpoint = load_checkpoint(path)
    meta = checkpoint.get("ddsp_morph", {})
    latent = meta.get("latent")
    if latent is None or (latent.get("path_speed") or {}).get("slerp") is not None:
        return False
    own = copy.deepcopy(model)
    load_state_checked(own, model_state(checkpoint), path)
    own.eval()
    meta["latent"] = with_speeds(latent, own, dataset, instruments, "slerp")
    atomic_write_with(path, lambda buffer: torch.save(checkpoint, buffer))
    return True


def weights_of(checkpoint: dict, which: str) -> dict[str, torch.Tensor]:
    """A checkpoint's module state for ``which``: ``average`` (its ``state_dict``), ``current``
    (the weights being trained) or a further decay it kept (``0.995``)."""
    if which == "average":
        return checkpoint["state_dict"]
    saved = checkpoint.get(AVERAGE_KEY)
    if saved is None:
        raise ConfigError(f"weights={which}: the checkpoint was written without weight averaging")
    if which == "current":
        return saved["current"]
    if which in saved["also"]:
        return saved["also"][which]
    raise ConfigError(
        f"weights={which}: the checkpoint keeps average, current and {sorted(saved['also'])}"
    )
