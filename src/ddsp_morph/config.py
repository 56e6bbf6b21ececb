"""Checks on the composed config: a value of the wrong kind gives one line naming the key."""

from __future__ import annotations

import difflib
import functools
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from ddsp_morph.errors import ConfigError

log = logging.getLogger(__name__)

# keys whose null means "off"
NULLABLE = {
    "seed",
    "num_threads",
    "trainer.check_val_every_n_epoch",
    "trainer.val_check_interval",
    "trainer.gradient_clip_val",
    "trainer.max_minutes",
    "trainer.budget.start",
    "data.crop_seconds",
    "data.features.f0_hop_length",
    "trainer.weight_average.decay",
}
PRECISIONS = ("auto", "32", "32-true", "64", "64-true", "bf16-mixed", "bf16-true", "16-mixed")
MIN_CROP_SECONDS = 0.1  # a training crop shorter than this has too few frames for the losses
# key -> (types, predicate description, predicate)
_POSITIVE = ("> 0", lambda v: v > 0)
_ANY = ("", lambda v: True)
SCHEMA: dict[str, tuple[tuple[type, ...], tuple[str, Any]]] = {
    "data.sample_rate": ((int,), _POSITIVE),
    "data.hop_length": ((int,), _POSITIVE),
    "data.batch_size": ((int,), _POSITIVE),
    "data.example_seconds": ((int, float), _POSITIVE),
    "data.corpus.minutes_per_instrument": ((int, float), _POSITIVE),
    "data.corpus.phrase_seconds": ((int, float), _POSITIVE),
    "data.corpus.seed": ((int,), _ANY),
    "data.corpus.soundfont": ((str,), _ANY),
    "data.features.f0_model": ((str,), ("'tiny' or 'full'", lambda v: v in ("tiny", "full"))),
    "data.features.f0_fmin": ((int, float), (">= 32 Hz (CREPE's lowest bin)", lambda v: v >= 32)),
    "data.features.f0_hop_length": ((int,), _POSITIVE),
    "data.context.n_fft": ((int,), _POSITIVE),
    "data.context.n_mfcc": ((int,), _POSITIVE),
    "data.context.n_mels": ((int,), _POSITIVE),
    "data.context.roughness_n_fft": ((int,), _POSITIVE),
    "data.context.roughness_peaks": ((int,), ("> 1", lambda v: v > 1)),
    "synth.n_harmonics": ((int,), _POSITIVE),
    "synth.n_noise_bands": ((int,), ("> 1", lambda v: v > 1)),
    "synth.noise": ((bool,), _ANY),
    "synth.reverb": ((bool,), _ANY),
    "seed": ((int,), (">= 0", lambda v: v >= 0)),
    "num_threads": ((int,), _POSITIVE),
    "n_audio_examples": ((int,), (">= 0", lambda v: v >= 0)),
    "data.num_workers": ((int,), (">= 0", lambda v: v >= 0)),
    "trainer.log_every_n_steps": ((int,), _POSITIVE),
    "trainer.check_val_every_n_epoch": ((int,), _POSITIVE),
    "trainer.val_check_interval": ((int, float), _POSITIVE),
    "trainer.max_epochs": ((int,), ("> 0 or -1", lambda v: v > 0 or v == -1)),
    "trainer.limit_val_batches": ((int, float), ("> 0", lambda v: v > 0)),
    "trainer.gradient_clip_val": ((int, float), (">= 0", lambda v: v >= 0)),
    "model.n_mlp_layers": ((int,), _POSITIVE),
    "latent.frame_stride": ((int,), _POSITIVE),
    "latent.monitor_every_n_epochs": ((int,), _POSITIVE),
    "morph.steps": ((int,), (">= 2", lambda v: v >= 2)),
    "morph.n_examples": ((int,), _POSITIVE),
    "model.hidden_size": ((int,), _POSITIVE),
    "model.gru_size": ((int,), _POSITIVE),
    "model.lr": ((float, int), _POSITIVE),
    "trainer.max_steps": ((int,), ("> 0 or -1", lambda v: v > 0 or v == -1)),
    "trainer.checkpoint_every_n_steps": ((int,), _POSITIVE),
    "trainer.max_minutes": ((float, int), _POSITIVE),
    "trainer.budget.start": ((float, int), (">= 0", lambda v: v >= 0)),
    "trainer.budget.minutes": ((float, int), _POSITIVE),
    "trainer.budget.reserve_minutes": ((float, int), (">= 0", lambda v: v >= 0)),
    "trainer.weight_average.decay": ((float,), ("in (0, 1)", lambda v: 0 < v < 1)),
    "trainer.precision": (
        (str, int),
        (f"one of {list(PRECISIONS)}", lambda v: str(v) in PRECISIONS),
    ),
    "data.crop_seconds": (
        (float, int),
        (f">= {MIN_CROP_SECONDS} s", lambda v: v >= MIN_CROP_SECONDS),
    ),
    "model.z_mode": ((str,), ("'concat' or 'film'", lambda v: v in ("concat", "film"))),
    "model.loudness_reference": (
        (str,),
        ("'corpus' or 'clip'", lambda v: v in ("corpus", "clip")),
    ),
    "latent.z_dim": ((int,), _POSITIVE),
    "latent.encoder_gru_size": ((int,), _POSITIVE),
    "latent.beta": ((float, int), (">= 0", lambda v: v >= 0)),
    "latent.beta_warmup_steps": ((int,), (">= 0", lambda v: v >= 0)),
    "latent.free_bits": ((float, int), (">= 0", lambda v: v >= 0)),
    "latent.path_weight": ((float, int), (">= 0", lambda v: v >= 0)),
    "model.loss.fluctuation_weight": ((float, int), (">= 0", lambda v: v >= 0)),
    "latent.cycle_weight": ((float, int), (">= 0", lambda v: v >= 0)),
    "latent.cycle_class_weight": ((float, int), (">= 0", lambda v: v >= 0)),
    "trainer.validation_morph.every_n_validations": ((int,), (">= 0", lambda v: v >= 0)),
    "trainer.validation_morph.n_examples": ((int,), _POSITIVE),
    "latent.window_frames": ((int,), (">= 0", lambda v: v >= 0)),
    "latent.prior": ((str,), ("'standard' or 'label'", lambda v: v in ("standard", "label"))),
    "latent.prior_radius": ((float, int), (">= 0", lambda v: v >= 0)),
    "latent.prior_std": ((float, int), _POSITIVE),
    "latent.mode": ((str,), ("'pooled' or 'frame'", lambda v: v in ("pooled", "frame"))),
    "latent.name": ((str,), ("'none', 'ae' or 'vae'", lambda v: v in ("none", "ae", "vae"))),
    "data.pitch_shift.semitones": ((float, int), ("in [0, 12]", lambda v: 0 <= v <= 12)),
    "data.pitch_shift.probability": ((float, int), ("in [0, 1]", lambda v: 0 <= v <= 1)),
    "data.gain.db": ((float, int), ("in [0, 24]", lambda v: 0 <= v <= 24)),
    "data.gain.probability": ((float, int), ("in [0, 1]", lambda v: 0 <= v <= 1)),
    "data.source.balance": ((str,), ("'equal' or 'cap'", lambda v: v in ("equal", "cap"))),
    "data.source.min_voiced_fraction": ((float, int), ("in [0, 1]", lambda v: 0 <= v <= 1)),
}


# groups whose keys are checked against every option's yaml: a typo there is refused, not ignored
CHECKED_GROUPS = ("trainer", "model", "data")
CONF_DIR = (
    Path(__file__).resolve().parent / "conf"
)  # the one config tree (``conf/`` in a checkout links here)


@functools.cache
def conf_file(name: str) -> DictConfig:
    """One yaml of ``conf/`` as written (read-only), e.g. ``morph/default`` or ``realtime``:
    where code needs a default outside a composed config (a dataclass's fields, a command-line
    flag), it reads it here rather than writing it a second time."""
    node = OmegaConf.load(CONF_DIR / f"{name}.yaml")
    OmegaConf.set_readonly(node, True)
    return node


def group_defaults(group: str, option: str = "default") -> DictConfig:
    """One config group option as written in ``conf/`` (read-only)."""
    return conf_file(f"{group}/{option}")


def _leaf_keys(node: Any, prefix: str) -> set[str]:
    if not isinstance(node, dict):
        return {prefix}
    out = {prefix} if prefix else set()
    for k, v in node.items():
        out |= _leaf_keys(v, f"{prefix}.{k}" if prefix else str(k))
    return out


@functools.cache
def known_keys(group: str) -> frozenset[str]:
    """Every key (dotted, under ``group``) that one of the group's yaml options or an
    experiment/debug file sets."""
    keys: set[str] = set()
    for path in sorted((CONF_DIR / group).glob("*.yaml")):
        data = OmegaConf.to_container(OmegaConf.load(path), resolve=False) or {}
        keys |= _leaf_keys(data, group)
    for extra in ("experiment", "debug"):
        for path in sorted((CONF_DIR / extra).glob("*.yaml")):
            data = OmegaConf.to_container(OmegaConf.load(path), resolve=False) or {}
            keys |= _leaf_keys(data.get(group, {}), group) if group in data else set()
    return frozenset(keys)


def check_unknown_keys(cfg: DictConfig) -> None:
    """A key under trainer/model/data that no option of the group knows (a typo such as
    ``+trainer.max_step=5``) is refused in one line, with the closest known key."""
    for group in CHECKED_GROUPS:
        node = OmegaConf.select(cfg, group, default=None)
        if node is None or not (CONF_DIR / group).is_dir():
            continue
        known = known_keys(group)
        data = OmegaConf.to_container(node, resolve=False)
        for key in sorted(_leaf_keys(data, group)):
            if key in known or any(key.startswith(k + ".") for k in known if _is_open(k)):
                continue
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"config {key}: unknown key{hint}; it would be ignored")


def _is_open(key: str) -> bool:
    """Keys whose values are free-form mappings."""
    return key.endswith("split_fractions")


# old key -> new key: the old names keep working for one release, with a one-line note
RENAMED = {
    "latent.gru_size": "latent.encoder_gru_size",
    "latent.n_mfcc": "latent.encoder_n_mfcc",
    "latent.n_mels": "latent.encoder_n_mels",
    "data.balance": "data.sampler_balance",
}


def apply_renames(cfg: DictConfig, *, note: bool = True) -> list[str]:
    """Move a value given under a renamed key to its new name (in place), with one log line
    each; the old key is left null. Returns the old keys that were set."""
    moved = []
    for old, new in RENAMED.items():
        value = OmegaConf.select(cfg, old, default=None)
        if value is None:
            continue
        with open_dict(cfg):
            OmegaConf.update(cfg, new, value, merge=False)
            OmegaConf.update(cfg, old, None, merge=False)
        moved.append(old)
        if note:
            log.warning("config %s is now %s; the old name goes in the next release", old, new)
    return moved


def validate_config(cfg: DictConfig) -> None:
    """Raise ConfigError naming the first key whose value has the wrong kind or range (a value
    under a renamed key is moved to its new name first)."""
    apply_renames(cfg)
    check_unknown_keys(cfg)
    for key, (types, (desc, ok)) in SCHEMA.items():
        value = OmegaConf.select(cfg, key, default="__absent__")
        if (isinstance(value, str) and value == "__absent__") or (
            value is None and key in NULLABLE
        ):
            continue
        is_bool = isinstance(value, bool)
        if (is_bool and bool not in types) or not isinstance(value, types):
            names = " or ".join(t.__name__ for t in types)
            raise ConfigError(
                f"config {key}: expected {names}, got {type(value).__name__} {value!r}"
            )
        if not ok(value):
            raise ConfigError(f"config {key}: must be {desc}, got {value!r}")
    rates = OmegaConf.select(cfg, "model.lfo_rates", default=None) or []
    if any(not isinstance(r, int | float) or isinstance(r, bool) or r <= 0 for r in rates):
        raise ConfigError(
            f"config model.lfo_rates: expected rates in Hz above 0, got {list(rates)}"
        )
    inputs = OmegaConf.select(cfg, "conditioning.inputs", default=None)
    if inputs is not None:
        from ddsp_morph.models.autoencoder import input_sizes_for

        try:
            input_sizes_for(list(inputs))
        except ValueError as e:
            raise ConfigError(f"config {e}") from None


def validate_training_config(cfg: DictConfig) -> None:
    """``validate_config`` plus what only training reads: a crop no longer than an example."""
    validate_config(cfg)
    crop = OmegaConf.select(cfg, "data.crop_seconds", default=None)
    example = OmegaConf.select(cfg, "data.example_seconds", default=None)
    if crop is not None and example is not None and crop > example:
        raise ConfigError(
            f"config data.crop_seconds: {crop} s is longer than an example "
            f"(data.example_seconds={example}); use at most {example}, or null for whole examples"
        )
    vm = OmegaConf.select(cfg, "trainer.validation_morph", default=None)
    if vm is not None and (vm.get("keep_best") or vm.get("stop_at") is not None):
        if int(vm.get("every_n_validations", 0)) != 1:
            raise ConfigError(
                "config trainer.validation_morph: stop_at and keep_best judge every validation; "
                f"set every_n_validations=1 (got {vm.get('every_n_validations')})"
            )
        if cfg.latent.name == "none":
            raise ConfigError(
                "config trainer.validation_morph: a model without a latent (latent=none) has no "
                "morph to measure; leave stop_at null and keep_best false"
            )
    shift = OmegaConf.select(cfg, "data.pitch_shift.semitones", default=0.0) or 0.0
    inputs = OmegaConf.select(cfg, "conditioning.inputs", default=None) or []
    context = [name for name in inputs if name not in ("f0", "loudness")]
    if shift > 0 and context:
        raise ConfigError(
            f"config data.pitch_shift.semitones: a pitch shift changes the audio, f0 and loudness "
            f"of a crop but not its cached context features {context} (conditioning="
            f"{OmegaConf.select(cfg, 'conditioning.name', default='?')}); use conditioning=f0_loud "
            "or set it to 0"
        )
