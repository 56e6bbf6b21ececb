"""Train a DDSP model: ``python train.py synth=harmonic_noise`` (see conf/config.yaml)."""

import sys

import hydra
from omegaconf import DictConfig

from ddsp_morph.errors import DDSPMorphError
from ddsp_morph.training.train import train


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    try:
        metrics = train(cfg)
    except DDSPMorphError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    return metrics.get("val/loss")


if __name__ == "__main__":
    main()
