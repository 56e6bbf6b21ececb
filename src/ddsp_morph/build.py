"""Config to objects: the model, the data module and the settings of the data pipeline, built
from a composed config."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from ddsp_morph.data.augment import GainChange, PitchShift
from ddsp_morph.data.corpus import CorpusSettings
from ddsp_morph.data.datamodule import CorpusDataModule
from ddsp_morph.data.features import ContextSettings, FeatureSettings
from ddsp_morph.models.autoencoder import DDSPAutoencoder, input_sizes_for
from ddsp_morph.models.decoder import Decoder
from ddsp_morph.models.encoder import TimbreEncoder
from ddsp_morph.synths.stack import SynthStack


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
        f0_octave_check=bool(f.f0_octave_check),
        loudness_n_fft=int(f.loudness_n_fft),
        f0_hop_length=None if f.f0_hop_length is None else int(f.f0_hop_length),
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
        balance=str(d.sampler_balance),
        register_power=float(d.register_power),
        seed=int(cfg.seed if cfg.seed is not None else 0),
        feature_key=feature_settings(cfg).key(),
        context_key=context_settings(cfg).key(),
        pitch_shift=PitchShift(
            semitones=float(d.pitch_shift.semitones),
            probability=float(d.pitch_shift.probability),
            sample_rate=int(d.sample_rate),
            loudness_n_fft=int(d.features.loudness_n_fft),
        ),
        gain=GainChange(
            db=float(d.gain.db),
            probability=float(d.gain.probability),
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
    inputs = list(cfg.conditioning.inputs)
    input_sizes = input_sizes_for(inputs, n_mfcc=int(cfg.data.context.n_mfcc))
    encoder = build_encoder(cfg, n_instruments=n_instruments)
    lfo_rates = [float(r) for r in cfg.model.lfo_rates]
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
        z_mode=str(cfg.model.z_mode),
    )
    return DDSPAutoencoder(
        decoder=decoder,
        synth=synth,
        conditioning=inputs,
        encoder=encoder,
        n_mfcc=int(cfg.data.context.n_mfcc),
        lfo_rates=tuple(lfo_rates),
        loudness_reference=str(cfg.model.loudness_reference),
    )


def build_encoder(cfg: DictConfig, *, n_instruments: int = 1) -> TimbreEncoder | None:
    lat = cfg.latent
    if lat.name == "none":
        return None
    return TimbreEncoder(
        sample_rate=int(cfg.data.sample_rate),
        hop_length=int(cfg.data.hop_length),
        n_mfcc=int(lat.encoder_n_mfcc),
        n_mels=int(lat.encoder_n_mels),
        gru_size=int(lat.encoder_gru_size),
        z_dim=int(lat.z_dim),
        variational=lat.name == "vae",
        pooled=lat.mode == "pooled",
        prior=str(lat.prior),
        n_instruments=n_instruments,
        prior_radius=float(lat.prior_radius),
        prior_std=float(lat.prior_std),
        pitch_input=bool(lat.pitch_input),
        harmonics=int(lat.harmonics),
        frame_stride=int(lat.frame_stride),
    )
