"""The latent space: path geometry, summaries and path speeds (no training, no plots)."""
