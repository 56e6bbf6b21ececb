"""Build the model, the data module and the Lightning module from a composed config."""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from ddsp_morph.data.augment import GainChange, PitchShift
from ddsp_morph.data.corpus import CorpusSettings
from ddsp_morph.data.datamodule import CorpusDataModule
from ddsp_morph.data.features import ContextSettings, FeatureSettings
from ddsp_morph.errors import ConfigError
from ddsp_morph.models.autoencoder import DDSPAutoencoder, input_sizes_for
from ddsp_morph.models.decoder import Z_MODES, Decoder
from ddsp_morph.models.encoder import PRIORS, TimbreEncoder
from ddsp_morph.synths.stack import SynthStack
from ddsp_morph.training.module import DDSPModule


def corpus_dir(cfg: DictConfig) -> Path:
    return Path(cfg.data.corpus_dir)


def corpus_settings(cfg: DictConfig) -> CorpusSettings:
    c = cfg.data.corpus
    return CorpusSettings(
        instruments=list(c.instruments),
        minutes_per_instrument=float(c.minutes_per_instrument),
        phrase_seconds=float(c.phrase_seconds),
        example_seconds=float(cfg.data.example_seconds),
        sample_rate=int(cfg.data.sample_rate),
        hop_length=int(cfg.data.hop_length),
        render_rate=int(c.render_rate),
        soundfont=str(c.soundfont),
        gain_db=float(c.gain_db),
        seed=int(c.seed),
        split_fractions=dict(c.split_fractions),
    )


def feature_settings(cfg: DictConfig) -> FeatureSettings:
    f = cfg.data.features
    return FeatureSettings(
        sample_rate=int(cfg.data.sample_rate),
        hop_length=int(cfg.data.hop_length),
        f0_model=str(f.f0_model),
        f0_fmin=float(f.f0_fmin),
        f0_fmax=float(f.f0_fmax),
        f0_decoder=str(f.f0_decoder),
        f0_batch_size=int(f.f0_batch_size),
        f0_octave_check=bool(f.get("f0_octave_check", True)),
        loudness_n_fft=int(f.loudness_n_fft),
        f0_hop_length=None if f.get("f0_hop_length") is None else int(f.f0_hop_length),
    )


def context_settings(cfg: DictConfig) -> ContextSettings:
    c = cfg.data.context
    return ContextSettings(
        sample_rate=int(cfg.data.sample_rate),
        hop_length=int(cfg.data.hop_length),
        n_fft=int(c.n_fft),
        n_mfcc=int(c.n_mfcc),
        n_mels=int(c.n_mels),
        roughness_n_fft=int(c.roughness_n_fft),
        roughness_peaks=int(c.roughness_peaks),
    )


def build_datamodule(cfg: DictConfig) -> CorpusDataModule:
    d = cfg.data
    instruments = (
        d.train_instruments if isinstance(d.train_instruments, str) else list(d.train_instruments)
    )
    return CorpusDataModule(
        corpus_dir=corpus_dir(cfg),
        instruments=instruments,
        sample_rate=int(d.sample_rate),
        hop_length=int(d.hop_length),
        batch_size=int(d.batch_size),
        crop_seconds=d.crop_seconds,
        num_workers=int(d.num_workers),
        balance=str(d.balance),
        register_power=float(d.get("register_power", 0.5)),
        seed=int(cfg.seed if cfg.seed is not None else 0),
        feature_key=feature_settings(cfg).key(),
        context_key=context_settings(cfg).key(),
        pitch_shift=PitchShift(
            semitones=float(OmegaConf.select(d, "pitch_shift.semitones", default=0.0)),
            probability=float(OmegaConf.select(d, "pitch_shift.probability", default=0.5)),
            sample_rate=int(d.sample_rate),
            loudness_n_fft=int(d.features.loudness_n_fft),
        ),
        gain=GainChange(
            db=float(OmegaConf.select(d, "gain.db", default=0.0)),
            probability=float(OmegaConf.select(d, "gain.probability", default=0.5)),
            n_mels=int(d.context.n_mels),
        ),
    )


def build_model(cfg: DictConfig, *, n_instruments: int = 1) -> DDSPAutoencoder:
    s = cfg.synth
    synth = SynthStack(
        sample_rate=int(cfg.data.sample_rate),
        hop_length=int(cfg.data.hop_length),
        n_harmonics=int(s.n_harmonics),
        noise=bool(s.noise),
        n_noise_bands=int(s.n_noise_bands),
        reverb=bool(s.reverb),
        upsample=str(s.upsample),
        reverb_mode=str(s.reverb_mode),
        reverb_seconds=float(s.reverb_seconds),
        reverb_per_instrument=bool(s.reverb_per_instrument),
        n_instruments=n_instruments,
    )
    if cfg.model.get("z_mode", "concat") not in Z_MODES:
        raise ConfigError(
            f"model.z_mode: expected one of {list(Z_MODES)}, got {cfg.model.get('z_mode')!r}"
        )
    inputs = list(cfg.conditioning.inputs)
    input_sizes = input_sizes_for(inputs, n_mfcc=int(cfg.data.context.n_mfcc))
    encoder = build_encoder(cfg, n_instruments=n_instruments)
    lfo_rates = [float(r) for r in cfg.model.get("lfo_rates") or []]
    if any(r <= 0 for r in lfo_rates):
        raise ConfigError(f"model.lfo_rates: expected rates in Hz above 0, got {lfo_rates}")
    if lfo_rates:
        input_sizes["lfo"] = 2 * len(lfo_rates)
    if encoder is not None:
        input_sizes["z"] = encoder.z_dim
    decoder = Decoder(
        input_sizes=input_sizes,
        output_sizes=synth.control_sizes,
        hidden_size=int(cfg.model.hidden_size),
        gru_size=int(cfg.model.gru_size),
        n_mlp_layers=int(cfg.model.n_mlp_layers),
        z_mode=str(cfg.model.get("z_mode", "concat")),
    )
    return DDSPAutoencoder(
        decoder=decoder,
        synth=synth,
        conditioning=inputs,
        encoder=encoder,
        n_mfcc=int(cfg.data.context.n_mfcc),
        lfo_rates=tuple(lfo_rates),
    )


LATENTS = ("none", "ae", "vae")


def build_encoder(cfg: DictConfig, *, n_instruments: int = 1) -> TimbreEncoder | None:
    lat = cfg.latent
    if lat.name not in LATENTS:
        raise ConfigError(f"latent.name: expected one of {list(LATENTS)}, got {lat.name!r}")
    if lat.name == "none":
        return None
    if lat.get("prior", "standard") not in PRIORS:
        raise ConfigError(f"latent.prior: expected one of {list(PRIORS)}, got {lat.get('prior')!r}")
    if lat.mode not in ("pooled", "frame"):
        raise ConfigError(f"latent.mode: expected 'pooled' or 'frame', got {lat.mode!r}")
    return TimbreEncoder(
        sample_rate=int(cfg.data.sample_rate),
        hop_length=int(cfg.data.hop_length),
        n_mfcc=int(lat.n_mfcc),
        n_mels=int(lat.n_mels),
        gru_size=int(lat.gru_size),
        z_dim=int(lat.z_dim),
        variational=lat.name == "vae",
        pooled=lat.mode == "pooled",
        prior=str(lat.get("prior", "standard")),
        n_instruments=n_instruments,
        prior_radius=float(lat.get("prior_radius", 3.0)),
        prior_std=float(lat.get("prior_std", 1.0)),
        pitch_input=bool(lat.get("pitch_input", False)),
        harmonics=int(lat.get("harmonics", 0)),
        frame_stride=int(lat.get("frame_stride", 1)),
    )


def build_module(
    cfg: DictConfig,
    model: DDSPAutoencoder,
    *,
    instruments: list[str] | None = None,
    minutes: float | None = None,
) -> DDSPModule:
    """``minutes``: the training budget (``training.train.training_minutes``; default
    ``trainer.max_minutes``), which the learning-rate cooldown counts against."""
    m, loss = cfg.model, cfg.model.loss
    if minutes is None:
        minutes = cfg.get("trainer", {}).get("max_minutes")
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
        beta=float(cfg.latent.get("beta", 0.0)),
        beta_warmup_steps=int(cfg.latent.get("beta_warmup_steps", 0)),
        free_bits=float(cfg.latent.get("free_bits", 0.0)),
        path_weight=float(cfg.latent.get("path_weight", 0.0)),
        cycle_weight=float(cfg.latent.get("cycle_weight", 0.0)),
        window_frames=int(cfg.latent.get("window_frames", 0)),
        fluctuation_weight=float(loss.get("fluctuation_weight", 0.0)),
        conversion_fluctuation_weight=float(loss.get("conversion_fluctuation_weight", 0.0)),
        lr_cooldown=float(m.get("lr_cooldown", 0.0)),
        budget_minutes=None if minutes is None else float(minutes),
    )
