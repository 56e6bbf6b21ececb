"""The valid split's morph measured during training: its scores, the stop, the kept checkpoint."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from ddsp_morph.errors import ConfigError
from ddsp_morph.training.morph_check import ValidationMorph, pair_scores

from .conftest import cfg_for


def renders_frame() -> pd.DataFrame:
    rows = []
    for src, tgt, p, ok in [
        ("a", "resynthesis", 0.9, True),
        ("a", "a", 0.99, True),  # a clip rendered with its own centroid: not a conversion
        ("a", "b", 0.7, True),
        ("a", "b", 0.5, False),
        ("b", "resynthesis", 0.4, False),
        ("b", "b", 0.95, True),
        ("b", "a", 0.9, True),
        ("b", "a", 0.8, True),
    ]:
        rows.append({"source": src, "target": tgt, "p_target": p, "correct": ok})
    return pd.DataFrame(rows)


def test_pair_scores_take_the_worst_pair_over_conversions_only():
    s = pair_scores(renders_frame())
    assert s["min_p_b"] == pytest.approx(0.6)  # a -> b: (0.7 + 0.5) / 2
    assert s["mean_p_b"] == pytest.approx((0.6 + 0.85) / 2)
    assert s["conversion"] == pytest.approx(3 / 4)
    assert s["resynthesis"] == pytest.approx(1 / 2)


class _Module:
    def __init__(self) -> None:
        self.model, self.logged = None, {}

    def log(self, name, value, **kw) -> None:
        self.logged[name] = value


def _trainer(step: int):
    return SimpleNamespace(
        sanity_checking=False, is_global_zero=True, global_step=step, datamodule=None,
        should_stop=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("scores", "stops"),
    [
        ({"min_p_b": 0.95, "mean_p_b": 0.97, "conversion": 1.0, "resynthesis": 1.0}, True),
        ({"min_p_b": 0.91, "mean_p_b": 0.97, "conversion": 1.0, "resynthesis": 1.0}, False),
        ({"min_p_b": 0.95, "mean_p_b": 0.97, "conversion": 0.99, "resynthesis": 1.0}, False),
        ({"min_p_b": 0.95, "mean_p_b": 0.97, "conversion": 1.0, "resynthesis": 0.75}, False),
    ],
)
def test_the_check_stops_training_only_when_every_target_holds(tmp_path: Path, scores, stops):
    cb = ValidationMorph(None, tmp_path / "morph_valid.csv", every=2, stop_at=0.92)
    cb.measure = lambda model, dm, step: dict(scores)
    module = _Module()
    first = _trainer(100)
    cb.on_validation_epoch_end(first, module)  # the first validation of two: skipped
    assert not module.logged and not first.should_stop
    assert not (tmp_path / "morph_valid.csv").exists()
    second = _trainer(200)
    cb.on_validation_epoch_end(second, module)
    assert second.should_stop is stops
    assert module.logged["val/morph_min_p_b"] == scores["min_p_b"]
    table = pd.read_csv(tmp_path / "morph_valid.csv")
    assert table.step.tolist() == [200]
    assert table.min_p_b.tolist() == [scores["min_p_b"]]


def test_keep_best_or_stop_at_need_a_check_at_every_validation(tmp_path: Path):
    from ddsp_morph.config import validate_training_config

    for extra in (
        "trainer.validation_morph.keep_best=true",
        "trainer.validation_morph.stop_at=0.9",
    ):
        cfg = cfg_for(tmp_path, tmp_path, extra, "trainer.validation_morph.every_n_validations=2")
        with pytest.raises(ConfigError, match="every_n_validations=1"):
            validate_training_config(cfg)
    cfg = cfg_for(tmp_path, tmp_path, "latent=none", "trainer.validation_morph.keep_best=true",
                  "trainer.validation_morph.every_n_validations=1")  # fmt: skip
    with pytest.raises(ConfigError, match="no morph"):
        validate_training_config(cfg)


def test_keep_best_ends_the_run_with_the_check_whose_worst_pair_was_best(
    tiny_corpus: Path, tmp_path: Path, caplog
):
    """A tiny run checked at every validation: morph_valid.csv has a row per validation, the
    best checkpoint is the row with the highest worst-pair P(B), and the end-of-run files
    measure it."""
    from ddsp_morph.training.fit import train

    cfg = cfg_for(
        tiny_corpus,
        tmp_path,
        "trainer.max_steps=3",
        "trainer.check_val_every_n_epoch=1",
        "data.train_instruments=all",
        "n_audio_examples=1",
        "trainer.validation_morph.every_n_validations=1",
        "trainer.validation_morph.keep_best=true",
        "trainer.validation_morph.n_examples=2",
        "morph.steps=3",
    )
    with caplog.at_level(logging.INFO, logger="ddsp_morph.training.fit"):
        train(cfg)
    checks = pd.read_csv(tmp_path / "morph_valid.csv")
    assert len(checks) >= 2
    assert checks.min_p_b.between(0, 1).all()
    best = checks.loc[checks.min_p_b.idxmax()]
    kept = sorted((tmp_path / "checkpoints").glob("step*.ckpt"))
    assert [p.name for p in kept] == [f"step{int(best.step):06d}.ckpt"]
    assert any(f"step {int(best.step)}" in r.getMessage() for r in caplog.records)
    assert (tmp_path / "morph.csv").exists()
