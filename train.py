"""Train a DDSP model: ``python train.py synth=harmonic_noise`` (see conf/config.yaml); the same
as ``ddsp-morph train``."""

from ddsp_morph.train import main

if __name__ == "__main__":
    main()
