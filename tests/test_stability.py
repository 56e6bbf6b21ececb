"""Non-finite losses and gradients are skipped and counted; the stability summary is right."""

import math
from pathlib import Path

import lightning as L
import torch

from ddsp_morph.training.stability import stability_summary

from .conftest import cfg_for


def _module_and_data(tiny_corpus: Path, tmp_path: Path):
    from ddsp_morph.build import build_datamodule, build_model
    from ddsp_morph.training.setup import build_module

    cfg = cfg_for(tiny_corpus, tmp_path)
    dm = build_datamodule(cfg)
    dm.setup()
    model = build_model(cfg, n_instruments=len(dm.instruments))
    return build_module(cfg, model), dm


def _fit(module, dm, steps: int):
    trainer = L.Trainer(
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        accelerator="cpu",
    )
    trainer.fit(module, datamodule=dm)
    return trainer


def test_nonfinite_loss_is_skipped_and_counted(tiny_corpus: Path, tmp_path: Path):
    module, dm = _module_and_data(tiny_corpus, tmp_path)
    real_loss, calls, snapshots = module.loss, [0], {}

    def loss(pred, target):
        calls[0] += 1
        value = real_loss(pred, target)
        if calls[0] == 2:
            snapshots["before"] = {k: v.clone() for k, v in module.state_dict().items()}
            return value * float("nan")
        if calls[0] == 3:
            snapshots["after"] = {k: v.clone() for k, v in module.state_dict().items()}
        return value

    module.loss = loss
    trainer = _fit(module, dm, steps=3)
    assert module.nonfinite_steps == 1
    assert trainer.global_step == 3  # the bad batch did not count as a step
    for k, v in snapshots["before"].items():
        assert torch.equal(v, snapshots["after"][k]), f"{k} changed during the skipped step"
    assert all(math.isfinite(p.abs().sum().item()) for p in module.parameters())


def test_nonfinite_gradient_is_dropped_and_counted(tiny_corpus: Path, tmp_path: Path):
    module, dm = _module_and_data(tiny_corpus, tmp_path)
    head = module.model.decoder.head.weight
    calls = [0]

    def poison(grad):
        calls[0] += 1
        return grad * float("inf") if calls[0] == 1 else grad

    head.register_hook(poison)
    before = head.detach().clone()
    module.configure_optimizers = lambda: torch.optim.Adam(module.parameters(), lr=1e-3)
    _fit(module, dm, steps=1)
    assert module.nonfinite_steps == 1
    assert torch.equal(head.detach(), before)


def test_stability_summary_on_a_known_history():
    train = [10.0] * 60 + [25.0] + [9.0] * 10 + [float("nan")]
    s = stability_summary(train, [100, 200, 300, 400], [8.0, 6.0, 5.2, 5.0], nonfinite_steps=1)
    assert s["best_val_loss"] == 5.0 and s["final_val_loss"] == 5.0
    assert s["steps_to_within_10pct"] == 300  # 5.2 is within 10% of 5.0; 6.0 is not
    assert s["loss_spikes"] == 1 and s["nonfinite_steps_skipped"] == 1 and s["diverged"] is False
    assert stability_summary([1.0], [1, 2], [1.0, 3.0], 0)["diverged"] is True
    assert stability_summary([1.0], [1], [float("nan")], 0)["diverged"] is True


def test_a_run_that_skipped_many_batches_says_so():
    from ddsp_morph.training.stability import skipped_steps_line

    assert skipped_steps_line(0, 2000) is None and skipped_steps_line(0, 0) is None
    assert skipped_steps_line(20, 2000) is None  # 1.0%: an accident of the data
    line = skipped_steps_line(255, 1981)  # what a default run skipped before the fix
    assert line is not None and "255 of 1981 training batches (12.9%)" in line
    assert "\n" not in line
