"""Shared fixtures: a tiny corpus rendered and analysed once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

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
