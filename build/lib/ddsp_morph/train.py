"""Train a model: ``ddsp-morph train [group=option ...] [key=value ...]`` (conf/config.yaml).

Also ``python train.py`` at the repo root and ``python -m ddsp_morph.train``."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from ddsp_morph.config import CONF_DIR
from ddsp_morph.errors import exits_on_error


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
@exits_on_error
def main(cfg: DictConfig) -> float | None:
    from ddsp_morph.training.fit import train

    return train(cfg).get("val/loss")


if __name__ == "__main__":
    main()
