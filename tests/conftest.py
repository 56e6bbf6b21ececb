"""Shared fixtures: a tiny corpus rendered and analysed once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from ddsp_morph.data.corpus import CorpusSettings, build_corpus, extract_corpus_features
from ddsp_morph.data.features import FeatureSettings

REPO = Path(__file__).resolve().parents[1]

TINY = CorpusSettings(
    instruments=("violin", "flute"),
    minutes_per_instrument=0.2,
    phrase_seconds=4.0,
    example_seconds=2.0,
    seed=0,
)


def tiny_train_args(corpus: Path, runs: Path, max_steps: int, checkpoint_every: int) -> list[str]:
    """train.py overrides for a few-second run on the tiny corpus (no latent), as a subprocess."""
    return [
        f"paths.runs_dir={runs}",
        f"data.corpus_dir={corpus}",
        "data.example_seconds=2.0",
        "data.crop_seconds=0.5",
        "data.batch_size=2",
        "model.hidden_size=16",
        "model.gru_size=16",
        "synth.n_harmonics=8",
        "latent=none",
        "logger=csv",
        f"trainer.max_steps={max_steps}",
        f"trainer.checkpoint_every_n_steps={checkpoint_every}",
        "trainer.check_val_every_n_epoch=1",
        "trainer.enable_progress_bar=false",
        "n_audio_examples=1",
    ]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 instruments x 3 phrases x 2 examples of 2 s, with features."""
    root = tmp_path_factory.mktemp("corpus") / "tiny"
    build_corpus(TINY, root, progress=False)
    extract_corpus_features(root, FeatureSettings(), progress=False)
    return root


def cfg_for(corpus: Path, out: Path, *overrides: str):
    """The default config, shrunk for the tiny corpus (a small VAE latent unless overridden)."""
    latent = [o.split("=", 1)[1] for o in overrides if o.startswith("latent=")]
    latent_defaults = [] if latent == ["none"] else ["latent.encoder_gru_size=16", "latent.z_dim=4"]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(
            "config",
            overrides=[
                f"paths.output_dir={out}",
                f"data.corpus_dir={corpus}",
                "data.example_seconds=2.0",
                "data.crop_seconds=1.0",
                "data.batch_size=4",
                "model.hidden_size=32",
                "model.gru_size=32",
                "synth.n_harmonics=24",
                "logger=csv",
                "trainer.enable_progress_bar=false",
                *latent_defaults,
                *overrides,
            ],
        )


@pytest.fixture(scope="session")
def tiny_run(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run trained for 6 steps on the tiny corpus (both instruments), with a validation pass."""
    from ddsp_morph.training.fit import train

    out = tmp_path_factory.mktemp("run")
    train(
        cfg_for(
            tiny_corpus,
            out,
            "trainer.max_steps=6",
            "trainer.check_val_every_n_epoch=1",
            "data.train_instruments=all",
            "n_audio_examples=1",
        )
    )
    return out


def exit_code(entry, *args) -> int:
    """What an entry point ends with: its return value, or the code it exits with (the shared
    ``exits_on_error`` wrapper exits 2 on a user's error)."""
    try:
        result = entry(*args)
    except SystemExit as e:
        return int(e.code or 0)
    return int(result or 0)


def hydra_task(name: str, *overrides: str):
    """A Hydra task's composed config (``conf/<name>.yaml`` with ``overrides``)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(name, overrides=list(overrides))
