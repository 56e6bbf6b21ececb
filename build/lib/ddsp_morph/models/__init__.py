from ddsp_morph.models.autoencoder import DDSPAutoencoder
from ddsp_morph.models.decoder import Decoder

__all__ = ["DDSPAutoencoder", "Decoder"]
