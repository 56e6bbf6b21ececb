"""Checks on the composed config: a value of the wrong kind gives one line naming the key."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from ddsp_morph.errors import ConfigError

# keys whose null means "off"
NULLABLE = {
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
    "latent.z_dim": ((int,), _POSITIVE),
    "latent.gru_size": ((int,), _POSITIVE),
    "latent.beta": ((float, int), (">= 0", lambda v: v >= 0)),
    "latent.beta_warmup_steps": ((int,), (">= 0", lambda v: v >= 0)),
    "latent.free_bits": ((float, int), (">= 0", lambda v: v >= 0)),
    "latent.path_weight": ((float, int), (">= 0", lambda v: v >= 0)),
    "model.loss.fluctuation_weight": ((float, int), (">= 0", lambda v: v >= 0)),
    "latent.cycle_weight": ((float, int), (">= 0", lambda v: v >= 0)),
    "latent.window_frames": ((int,), (">= 0", lambda v: v >= 0)),
    "latent.prior": ((str,), ("'standard' or 'label'", lambda v: v in ("standard", "label"))),
    "latent.prior_radius": ((float, int), (">= 0", lambda v: v >= 0)),
    "latent.prior_std": ((float, int), _POSITIVE),
    "latent.mode": ((str,), ("'pooled' or 'frame'", lambda v: v in ("pooled", "frame"))),
    "data.pitch_shift.semitones": ((float, int), ("in [0, 12]", lambda v: 0 <= v <= 12)),
    "data.pitch_shift.probability": ((float, int), ("in [0, 1]", lambda v: 0 <= v <= 1)),
    "data.gain.db": ((float, int), ("in [0, 24]", lambda v: 0 <= v <= 24)),
    "data.gain.probability": ((float, int), ("in [0, 1]", lambda v: 0 <= v <= 1)),
    "data.source.balance": ((str,), ("'equal' or 'cap'", lambda v: v in ("equal", "cap"))),
    "data.source.min_voiced_fraction": ((float, int), ("in [0, 1]", lambda v: 0 <= v <= 1)),
}


def validate_config(cfg: DictConfig) -> None:
    """Raise ConfigError naming the first key whose value has the wrong kind or range."""
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
