"""DDSP Morph: differentiable harmonic + noise + reverb synthesis with a morphable latent space.

Layers (imports only go downwards):
    dsp/      pure torch functions (oscillators, filtered noise, reverb, spectra, loudness)
    synths/   thin nn.Modules holding synth settings and parameters
    models/   decoder, encoders, the autoencoder
    data/     corpus rendering, feature extraction, the LightningDataModule
    training/ the LightningModule, losses, callbacks, the train(cfg) function
"""

__version__ = "0.1.0"
