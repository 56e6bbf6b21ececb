"""Pure DSP: torch/numpy/math only. No Hydra, Lightning or wandb may be imported here."""

from ddsp_morph.dsp.core import (
    amplitude_to_db,
    db_to_amplitude,
    exp_sigmoid,
    hz_to_midi,
    midi_to_hz,
    upsample_frames,
)
from ddsp_morph.dsp.loudness import a_weighted_loudness_db, a_weighting_db
from ddsp_morph.dsp.noise import filtered_noise, noise_filter_irs
from ddsp_morph.dsp.oscillators import (
    harmonic_synth,
    harmonic_synth_reference,
    remove_above_nyquist,
)
from ddsp_morph.dsp.reverb import decaying_noise_ir, fft_convolve, reverb
from ddsp_morph.dsp.spectral import multiscale_spectral_loss, stft_magnitude

__all__ = [
    "a_weighted_loudness_db",
    "a_weighting_db",
    "amplitude_to_db",
    "db_to_amplitude",
    "decaying_noise_ir",
    "exp_sigmoid",
    "fft_convolve",
    "filtered_noise",
    "harmonic_synth",
    "harmonic_synth_reference",
    "hz_to_midi",
    "midi_to_hz",
    "multiscale_spectral_loss",
    "noise_filter_irs",
    "remove_above_nyquist",
    "reverb",
    "stft_magnitude",
    "upsample_frames",
]
