"""The weight average (trainer.weight_average): the EMA itself, which weights validation and
checkpoints see, resuming, and a tiny run whose tools read the average."""

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from torch import nn

from ddsp_morph.config import validate_config
from ddsp_morph.errors import ConfigError
from ddsp_morph.runs import weights_of
from ddsp_morph.training.averaging import WeightAverage, decay_key, warmed_decay

from .conftest import cfg_for


class Toy(L.LightningModule):
    """Two layers and a buffer; no encoder, so no latent summary is asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
        self.model.encoder = None
        self.register_buffer("stat", torch.tensor([7.0]))


def set_weights(module: nn.Module, value: float) -> None:
    with torch.no_grad():
        for i, p in enumerate(module.parameters()):
            p.fill_(value + i)


def flat(tensors) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1) for t in tensors])


def test_warmed_decay_follows_the_weights_first_then_caps():
    assert warmed_decay(0.99, 0) == pytest.approx(0.1)
    assert warmed_decay(0.99, 10) == pytest.approx(11 / 20)
    assert warmed_decay(0.99, 10_000) == 0.99
    assert warmed_decay(0.5, 10) == 0.5 and warmed_decay(0.5, 5) == pytest.approx(0.4)


def test_every_average_is_the_hand_computed_ema():
    toy = Toy()
    cb = WeightAverage(0.9, also=[0.5])
    set_weights(toy, 0.0)
    cb.setup(None, toy, "fit")  # the averages start at the weights now
    want = {0.9: 0.0, 0.5: 0.0}
    for n, value in enumerate([1.0, -2.0, 4.0, 3.0, 10.0, 0.5] * 3):
        set_weights(toy, value)
        cb.update(toy)
        for d in want:
            b = warmed_decay(d, n)
            want[d] = b * want[d] + (1 - b) * value
    assert cb.updates == 18
    for d, w in want.items():
        first = cb.shadows[decay_key(d)][0]  # parameter 0 was filled with value + 0
        torch.testing.assert_close(first, torch.full_like(first, w))
    assert not torch.allclose(cb.shadows["0.9"][0], cb.shadows["0.5"][0])


def test_validation_sees_the_average_and_training_ends_on_it():
    toy = Toy()
    cb = WeightAverage(0.9)
    set_weights(toy, 0.0)
    cb.setup(None, toy, "fit")
    for value in (1.0, 2.0, 3.0):
        set_weights(toy, value)
        cb.update(toy)
    trained = flat(toy.parameters()).clone()
    average = flat(cb.shadows["0.9"]).clone()
    assert not torch.allclose(trained, average)
    cb.on_validation_epoch_start(None, toy)
    torch.testing.assert_close(flat(toy.parameters()), average)
    cb.on_validation_end(None, toy)
    torch.testing.assert_close(flat(toy.parameters()), trained)
    cb.on_train_end(None, toy)
    torch.testing.assert_close(flat(toy.parameters()), average)
    torch.testing.assert_close(flat(cb.current_at_end), trained)


@pytest.mark.parametrize("during_validation", [False, True])
def test_checkpoint_stores_the_average_and_a_resume_continues_the_trained_weights(
    during_validation: bool,
):
    toy = Toy()
    cb = WeightAverage(0.9, also=[0.5])
    set_weights(toy, 0.0)
    cb.setup(None, toy, "fit")
    for value in (1.0, 5.0, 2.0, 8.0):
        set_weights(toy, value)
        cb.update(toy)
    trained = flat(toy.parameters()).clone()
    average = flat(cb.shadows["0.9"]).clone()
    other = flat(cb.shadows["0.5"]).clone()
    if during_validation:
        cb.on_validation_epoch_start(None, toy)
    ckpt = {"state_dict": toy.state_dict()}
    cb.on_save_checkpoint(None, toy, ckpt)
    names = [n for n, _ in toy.named_parameters()]
    torch.testing.assert_close(flat(ckpt["state_dict"][n] for n in names), average)
    torch.testing.assert_close(flat(weights_of(ckpt, "current")[n] for n in names), trained)
    torch.testing.assert_close(flat(weights_of(ckpt, "0.5")[n] for n in names), other)
    assert ckpt["state_dict"]["stat"].item() == 7.0  # buffers travel unchanged
    if during_validation:
        cb.on_validation_end(None, toy)
    torch.testing.assert_close(flat(toy.parameters()), trained)  # saving changed nothing

    # a new process: Lightning loads state_dict (the average), then the callback's hooks
    fresh, again = Toy(), WeightAverage(0.9, also=[0.5])
    fresh.load_state_dict(ckpt["state_dict"])
    again.setup(None, fresh, "fit")
    again.load_state_dict(cb.state_dict())
    again.on_load_checkpoint(None, fresh, ckpt)
    torch.testing.assert_close(flat(fresh.parameters()), trained)
    torch.testing.assert_close(flat(again.shadows["0.9"]), average)
    torch.testing.assert_close(flat(again.shadows["0.5"]), other)
    assert again.updates == 4


def test_a_checkpoint_without_averaging_starts_the_averages_at_its_weights():
    toy, cb = Toy(), WeightAverage(0.99)
    set_weights(toy, 3.0)
    cb.setup(None, Toy(), "fit")
    cb.on_load_checkpoint(None, toy, {"state_dict": toy.state_dict()})
    torch.testing.assert_close(flat(cb.shadows["0.99"]), flat(toy.parameters()))
    with pytest.raises(ConfigError, match="without weight averaging"):
        weights_of({"state_dict": toy.state_dict()}, "current")


def test_bad_decays_are_refused_in_one_line(tiny_corpus: Path, tmp_path: Path):
    with pytest.raises(ConfigError, match=r"trainer.weight_average.decay: must be in \(0, 1\)"):
        validate_config(cfg_for(tiny_corpus, tmp_path, "trainer.weight_average.decay=1.0"))
    with pytest.raises(ConfigError, match="a decay must be in"):
        WeightAverage(0.99, also=[1.5])
    with pytest.raises(ConfigError, match="repeat"):
        WeightAverage(0.99, also=[0.99])


def test_a_run_with_averaging_reports_and_stores_the_average(tiny_corpus: Path, tmp_path: Path):
    from ddsp_morph.build import build_datamodule
    from ddsp_morph.latent.summary import latent_summary
    from ddsp_morph.morph import run_morph
    from ddsp_morph.runs import load_run
    from ddsp_morph.training.fit import train

    train(
        cfg_for(
            tiny_corpus,
            tmp_path,
            "trainer.max_steps=8",
            "trainer.check_val_every_n_epoch=1",
            "data.train_instruments=all",
            "n_audio_examples=1",
            "trainer.weight_average.decay=0.8",
            "trainer.weight_average.also=[0.5]",
            "morph.steps=3",
            "morph.n_examples=1",
        )
    )
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["weight_average"]["updates"] == 8
    key = next(k for k in ckpt["state_dict"] if k.endswith("weight"))
    assert not torch.allclose(ckpt["state_dict"][key], ckpt["weight_average"]["current"][key])

    avg = load_run(tmp_path, checkpoint="last")
    torch.testing.assert_close(
        avg.model.state_dict()[key[len("model.") :]], ckpt["state_dict"][key]
    )
    # the centroids stored with the checkpoint are those of the weights it stores
    dm = build_datamodule(avg.cfg)
    dm.setup("fit")
    again = latent_summary(avg.model, dm.datasets["train"], dm.instruments, step=0)
    for name, c in avg.extra["latent"]["centroids"].items():
        np.testing.assert_allclose(c, again["centroids"][name], atol=1e-5)
    # the final and the best checkpoint carry the timbre speeds of every ordered pair
    names = sorted(avg.extra["latent"]["centroids"])
    pairs = sorted(f"{a}>{b}" for a in names for b in names if a != b)
    assert sorted(avg.extra["latent"]["path_speed"]["slerp"]) == pairs
    # and the best checkpoint, chosen on the average's validation loss, holds an average too
    best = load_run(tmp_path, checkpoint="best")
    assert sorted(best.extra["latent"]["path_speed"]["slerp"]) == pairs

    current = load_run(tmp_path, checkpoint="last", weights="current")
    torch.testing.assert_close(
        current.model.state_dict()[key[len("model.") :]], ckpt["weight_average"]["current"][key]
    )
    assert "latent" not in current.extra
    with pytest.raises(ConfigError, match="keeps average, current and"):
        load_run(tmp_path, checkpoint="last", weights="0.7")

    from omegaconf import OmegaConf

    out = tmp_path / "morph_current"
    cfg = OmegaConf.create(
        {
            "run": str(tmp_path),
            "checkpoint": "last",
            "weights": "current",
            "steps": 3,
            "n_examples": 1,
            "path": "slerp",
            "even": True,
            "seed": 0,
            "classifier": None,
            "out_dir": str(out),
        }
    )
    summary = run_morph(cfg)
    assert (out / "morph.csv").exists() and 0.0 <= summary["conversion_accuracy"] <= 1.0
