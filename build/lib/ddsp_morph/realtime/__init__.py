"""The realtime synth: a block-by-block engine over a trained model."""
