"""Training end to end on the tiny corpus: fast_dev_run, and a few real steps that write audio."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from ddsp_morph.data.datamodule import CorpusDataModule
from ddsp_morph.errors import ConfigError, DDSPMorphError
from ddsp_morph.training.fit import train

from .conftest import cfg_for


def test_fast_dev_run(tiny_corpus: Path, tmp_path: Path):
    metrics = train(cfg_for(tiny_corpus, tmp_path, "debug=fdr", "data.train_instruments=all"))
    assert metrics["global_step"] == 1
    assert np.isfinite(metrics["train/loss"])
    assert (tmp_path / "audio" / "resynthesis.png").stat().st_size > 10_000


def test_short_run_writes_checkpoint_audio_and_png(tiny_corpus: Path, tmp_path: Path):
    cfg = cfg_for(
        tiny_corpus,
        tmp_path,
        "trainer.max_steps=6",
        "trainer.check_val_every_n_epoch=1",
        "synth=harmonic_noise_reverb",
        "synth.reverb_seconds=0.1",
        "n_audio_examples=2",
    )
    metrics = train(cfg)
    assert metrics["global_step"] == 6 and np.isfinite(metrics["val/loss"])
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()
    assert (tmp_path / "config.yaml").exists()
    stability = json.loads((tmp_path / "stability.json").read_text())
    assert stability["train_steps"] == 6 and stability["nonfinite_steps_skipped"] == 0
    assert (
        stability["best_val_loss"] <= stability["final_val_loss"] and stability["diverged"] is False
    )
    orig, rate = sf.read(tmp_path / "audio" / "example00_original.wav")
    resyn, _ = sf.read(tmp_path / "audio" / "example00_resynth.wav")
    assert rate == 16000 and orig.shape == resyn.shape and np.abs(resyn).max() > 0
    state = torch.load(
        tmp_path / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu"
    )
    assert state["global_step"] == 6
    assert "model.loudness_mean" in state["state_dict"]


def test_datamodule_samples_instruments_in_balance(tiny_corpus: Path):
    # Drop most flute examples: the sampler must still serve both instruments about equally.
    dm = CorpusDataModule(corpus_dir=tiny_corpus, instruments="all", batch_size=1, crop_seconds=0.5)
    dm.setup()
    ds = dm.datasets["train"]
    violin = [it for it in ds.items if int(it["instrument_id"]) == dm.instruments.index("violin")]
    flute = [it for it in ds.items if int(it["instrument_id"]) == dm.instruments.index("flute")]
    ds.items = violin * 5 + flute[:1]
    counts = np.zeros(2)
    for _ in range(40):
        for b in dm.train_dataloader():
            counts[int(b["instrument_id"][0])] += 1
    share = counts / counts.sum()
    assert abs(share[0] - 0.5) < 0.08
    item = ds[0]
    assert item["audio"].shape[0] == item["f0_hz"].shape[0] * 128 == int(0.5 * 16000) // 128 * 128


def test_register_weights_even_out_registers_within_each_instrument():
    from ddsp_morph.data.datamodule import sampling_weights

    # instrument 0: 8 clips around MIDI 60, 2 around MIDI 80; instrument 1: 5 clips at MIDI 70
    ids = np.array([0] * 10 + [1] * 5)
    reg = np.array([60.5] * 8 + [80.5] * 2 + [70.0] * 5)
    plain = sampling_weights(ids)
    assert np.allclose(plain, np.r_[[1 / 20] * 10, [1 / 10] * 5])
    for power, high_share in (
        (0.0, 2 / 10),
        (0.5, np.sqrt(2) / (np.sqrt(8) + np.sqrt(2))),
        (1, 0.5),
    ):
        w = sampling_weights(ids, reg, power=power)
        assert w[:10].sum() == pytest.approx(w[10:].sum()) == pytest.approx(0.5)
        assert w[8:10].sum() / w[:10].sum() == pytest.approx(high_share)
        assert np.allclose(w[10:], w[10])  # one register: as plain balance
    # an example without pitch joins its instrument's most common bin
    w = sampling_weights(ids, np.r_[reg[:9], np.nan, reg[10:]], power=1.0)
    assert w[9] == pytest.approx(w[0]) and w[8] == pytest.approx(0.25)
    with pytest.raises(ConfigError, match="register_power"):
        sampling_weights(ids, reg, power=1.5)


def test_register_balance_draws_the_rare_register_more_often(tiny_corpus: Path):
    from ddsp_morph.data.datamodule import median_midi

    dm = CorpusDataModule(
        corpus_dir=tiny_corpus,
        batch_size=1,
        crop_seconds=0.5,
        balance="register",
        register_power=1.0,
    )
    dm.setup()
    ds = dm.datasets["train"]
    violin = [it for it in ds.items if int(it["instrument_id"]) == dm.instruments.index("violin")]
    high = dict(violin[0], f0_hz=violin[0]["f0_hz"] * 4.0)  # two octaves up: its own bin
    ds.items = violin * 6 + [high]
    assert median_midi(high) == pytest.approx(median_midi(violin[0]) + 24.0, abs=0.01)
    drawn_high = 0
    n = 0
    for _ in range(30):
        for b in dm.train_dataloader():
            drawn_high += int(b["f0_hz"].mean() > 2.0 * violin[0]["f0_hz"].mean())
            n += 1
    assert abs(drawn_high / n - 0.5) < 0.1  # 1 clip of 7, drawn half the time (plain: 1/7)
    dm.balance = "most"
    with pytest.raises(ConfigError, match="data.sampler_balance"):
        dm.train_dataloader()


@pytest.mark.slow
def test_ddp_on_two_cpu_processes(tiny_corpus: Path, tmp_path: Path):
    """trainer=ddp really runs: two processes, gradients all-reduced, rank 0 writes the run."""
    import subprocess
    import sys

    from .conftest import REPO

    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "train.py",
        f"hydra.run.dir={out}",
        f"data.corpus_dir={tiny_corpus}",
        "data.example_seconds=2.0",
        "data.crop_seconds=1.0",
        "data.batch_size=2",
        "data.train_instruments=all",
        "model.hidden_size=16",
        "model.gru_size=16",
        "synth.n_harmonics=8",
        "logger=csv",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.max_steps=2",
        "trainer.enable_progress_bar=false",
        "n_audio_examples=1",
    ]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "MEMBER: 2/2" in done.stderr + done.stdout
    assert json.loads((out / "stability.json").read_text())["train_steps"] == 2
    assert (out / "checkpoints" / "last.ckpt").exists()


@pytest.mark.slow
def test_killed_training_resumes_with_the_same_command(tiny_corpus: Path, tmp_path: Path):
    """SIGKILL mid-run, then the very same command: it finds the unfinished run (same config,
    last.ckpt, no stability.json) and continues it with the optimizer and step count intact."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from .conftest import REPO, tiny_train_args

    runs = tmp_path / "runs"
    cmd = [sys.executable, "train.py", *tiny_train_args(tiny_corpus, runs, 40, 5)]
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )

    def val_in_checkpoint() -> bool:  # a validation result is stored with the run's last.ckpt
        for p in runs.glob("*/checkpoints/last.ckpt"):
            try:
                return bool(torch.load(p, weights_only=True)["ddsp_morph"]["history"]["val"])
            except Exception:  # being written
                return False
        return False

    deadline = time.time() + 300
    while time.time() < deadline and not val_in_checkpoint():
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    (first,) = [p.parents[1] for p in runs.glob("*/checkpoints/last.ckpt")]
    killed_at = torch.load(first / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert 0 < killed_at < 40 and not (first / "stability.json").exists()
    val_before = torch.load(first / "checkpoints" / "last.ckpt", weights_only=True)["ddsp_morph"][
        "history"
    ]["val"]
    time.sleep(1.1)  # the next run directory gets another timestamp
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (
        f"resuming from {first / 'checkpoints' / 'last.ckpt'} at step {killed_at}"
        in done.stderr + done.stdout
    )
    final = torch.load(first / "checkpoints" / "last.ckpt", weights_only=True)
    assert final["global_step"] == 40
    adam_steps = {float(s["step"]) for s in final["optimizer_states"][0]["state"].values()}
    assert adam_steps == {40.0}  # Adam's moments carried over, not restarted
    # the summary and the histories cover the whole run, across the kill
    assert json.loads((first / "stability.json").read_text())["train_steps"] == 40
    train_hist = pd.read_csv(first / "train_history.csv")
    assert train_hist["batch"].tolist() == list(range(1, 41))
    val_hist = pd.read_csv(first / "val_history.csv")
    assert [s for s, _ in val_before] == val_hist["step"].tolist()[: len(val_before)]
    assert val_hist["step"].is_monotonic_increasing and val_hist["step"].iloc[-1] > killed_at


def _finished_run(tiny_corpus: Path, out: Path, *extra: str) -> Path:
    train(cfg_for(tiny_corpus, out, "latent=none", "trainer.max_steps=3", *extra))
    return out


def test_a_finished_run_is_not_resumed_and_stays_untouched(tiny_corpus: Path, tmp_path: Path):
    run = _finished_run(tiny_corpus, tmp_path / "run")
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with pytest.raises(DDSPMorphError, match="finished") as e:
        train(cfg_for(tiny_corpus, tmp_path / "other", "latent=none", f"resume={run}"))
    assert "\n" not in str(e.value) and str(run) in str(e.value)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_a_resume_that_does_not_fit_writes_nothing(tiny_corpus: Path, tmp_path: Path):
    run = _finished_run(tiny_corpus, tmp_path / "run")
    (run / "stability.json").unlink()  # as if killed after its last checkpoint
    config = (run / "config.yaml").read_bytes()
    with pytest.raises(DDSPMorphError, match="differs from the run's") as e:
        train(
            cfg_for(
                tiny_corpus, tmp_path / "o", "latent=none", "model.hidden_size=48", f"resume={run}"
            )
        )
    assert "model.hidden_size 32 -> 48" in str(e.value) and "\n" not in str(e.value)
    # allowed, the change still has to fit the checkpoint's weights
    with pytest.raises(DDSPMorphError, match="does not fit"):
        train(
            cfg_for(
                tiny_corpus,
                tmp_path / "o",
                "latent=none",
                "model.hidden_size=48",
                "trainer.max_steps=3",
                f"resume={run}",
                "resume_allow=[model.hidden_size]",
            )
        )
    assert (run / "config.yaml").read_bytes() == config
    assert not (run / "train.lock").exists()


def test_a_running_training_is_locked_and_a_stale_lock_is_taken_over(
    tiny_corpus: Path, tmp_path: Path
):
    import subprocess
    import sys

    run = _finished_run(tiny_corpus, tmp_path / "run")
    (run / "stability.json").unlink()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / "train.lock").write_text(f"{live.pid}\n")
        with pytest.raises(DDSPMorphError, match=f"pid {live.pid}") as e:
            train(
                cfg_for(
                    tiny_corpus,
                    tmp_path / "o",
                    "latent=none",
                    f"resume={run}",
                    "trainer.max_steps=3",
                )
            )
        assert "\n" not in str(e.value)
        assert not (run / "stability.json").exists()
    finally:
        live.kill()
        live.wait()
    # the process is gone: its lock is stale, the run resumes and the lock is released after
    # a longer run than it started as: allowed by name, and recorded in the run
    train(
        cfg_for(
            tiny_corpus,
            tmp_path / "o",
            "latent=none",
            f"resume={run}",
            "trainer.max_steps=5",
            "resume_allow=[trainer.max_steps]",
        )
    )
    assert json.loads((run / "stability.json").read_text())["train_steps"] == 5
    assert not (run / "train.lock").exists()
    (resumed,) = json.loads((run / "resumes.json").read_text())
    assert resumed["from_step"] == 3
    assert resumed["changed"] == {"trainer.max_steps": {"before": 3, "after": 5}}


def test_bf16_mixed_training_runs(tiny_corpus: Path, tmp_path: Path):
    # trainer.precision=bf16-mixed: the decoder runs in bfloat16 (AMX/AVX512-BF16 CPUs and GPUs),
    # the synth, the loss and the MFCC front end in float32 (test_latent checks the dtypes).
    metrics = train(
        cfg_for(
            tiny_corpus,
            tmp_path,
            "trainer.max_steps=3",
            "trainer.precision=bf16-mixed",
            "latent=vae",
            "synth=harmonic_noise_reverb",
            "synth.reverb_seconds=0.1",
        )
    )
    assert metrics["global_step"] == 3 and np.isfinite(metrics["train/loss"])


def test_lightning_reloads_a_resumed_checkpoint_weights_only(
    tiny_corpus: Path, tmp_path: Path, monkeypatch
):
    """TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD overrides only a torch.load that does not say
    weights_only: Lightning's reload of the checkpoint must say it."""
    import lightning as L

    run = _finished_run(tiny_corpus, tmp_path / "run")
    (run / "stability.json").unlink()
    seen = {}

    def fit(self, *args, **kwargs):
        seen.update(kwargs)
        raise KeyboardInterrupt  # stop here: only the call is under test

    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    monkeypatch.setattr(L.Trainer, "fit", fit)
    with pytest.raises(KeyboardInterrupt):
        train(
            cfg_for(
                tiny_corpus, tmp_path / "o", "latent=none", f"resume={run}", "trainer.max_steps=3"
            )
        )
    assert seen["weights_only"] is True and str(seen["ckpt_path"]).endswith("last.ckpt")
    assert not (run / "train.lock").exists()  # released on the way out


def test_the_lr_cooldown_falls_linearly_to_zero_over_the_last_part_of_steps_or_minutes(
    monkeypatch,
):
    """lr_factor: lr_decay ** step, times a linear fall to 0 over the last ``lr_cooldown`` of
    the budget, which ends at max_steps or budget_minutes (the minutes of a run resumed
    included), whichever comes first; without a cooldown the schedule is the exponential one."""
    import types

    from ddsp_morph.training import module as module_file
    from ddsp_morph.training.module import DDSPModule

    net = torch.nn.Linear(1, 1)
    m = DDSPModule(net, optimizer=torch.optim.SGD, lr_decay=0.999, lr_cooldown=0.25)
    m._trainer = types.SimpleNamespace(max_steps=1000)
    for step, cool in ((0, 1.0), (750, 1.0), (800, 0.8), (900, 0.4), (1000, 0.0)):
        assert m.lr_factor(step) == pytest.approx(0.999**step * cool)
    # the minutes end it first: 30 of 40 minutes gone (10 before a resume) at step 100
    m.budget_minutes, m.wall_before, m._fit_start = 40.0, 600.0, 1000.0
    monkeypatch.setattr(module_file.time, "time", lambda: 1000.0 + 1200.0)
    assert m.progress(100) == pytest.approx(0.75)
    assert m.lr_factor(100) == pytest.approx(0.999**100)
    monkeypatch.setattr(module_file.time, "time", lambda: 1000.0 + 1500.0)
    assert m.lr_factor(100) == pytest.approx(0.999**100 * 0.5)
    sched = m.configure_optimizers()["lr_scheduler"]["scheduler"]
    assert isinstance(sched, torch.optim.lr_scheduler.LambdaLR)
    plain = DDSPModule(net, optimizer=torch.optim.SGD, lr_decay=0.999)
    assert isinstance(
        plain.configure_optimizers()["lr_scheduler"]["scheduler"],
        torch.optim.lr_scheduler.ExponentialLR,
    )
    with pytest.raises(ValueError, match="lr_cooldown"):
        DDSPModule(net, optimizer=torch.optim.SGD, lr_cooldown=1.5)


def test_the_job_clock_cuts_training_to_what_the_budget_leaves(tmp_path: Path, caplog):
    """training_minutes: max_minutes without a job clock; with one (make train sets
    trainer.budget.start), what is left of the budget less the reserve, at most max_minutes;
    nothing left is one clear error. The clock is not part of what a resume compares."""
    import logging

    from omegaconf import OmegaConf

    from ddsp_morph.config import validate_config
    from ddsp_morph.training.resume import comparable
    from ddsp_morph.training.setup import training_minutes

    cfg = cfg_for(tmp_path, tmp_path, "trainer.max_minutes=17")
    assert cfg.trainer.budget.start is None and training_minutes(cfg) == 17.0
    cfg.trainer.budget.start = 1_000_000.0
    with caplog.at_level(logging.INFO, logger="ddsp_morph.training.setup"):
        # 5 min of set-up: 25 - 3 - 5 = 17 left, the cap too; 7 min: 15
        assert training_minutes(cfg, now=1_000_000.0 + 300) == pytest.approx(17.0)
        assert training_minutes(cfg, now=1_000_000.0 + 420) == pytest.approx(15.0)
    assert "7.0 min gone in set-up" in caplog.text
    cfg.trainer.max_minutes = None
    assert training_minutes(cfg, now=1_000_000.0 + 60) == pytest.approx(21.0)
    with pytest.raises(DDSPMorphError, match=r"trainer.budget: 23.0 of the job's 25 minutes"):
        training_minutes(cfg, now=1_000_000.0 + 23 * 60)
    other = OmegaConf.merge(cfg, {"trainer": {"budget": {"start": 2_000_000.0}}})
    assert comparable(other) == comparable(cfg)  # the same command resumes its run
    assert comparable(OmegaConf.merge(cfg, {"trainer": {"max_steps": 7}})) != comparable(cfg)
    cfg.trainer.budget.minutes = 0
    with pytest.raises(ConfigError, match="trainer.budget.minutes"):
        validate_config(cfg)


def test_make_train_starts_the_job_clock_before_its_set_up():
    """The Makefile takes the time when make reads it (before the venv and the corpus) and
    hands it to train.py as trainer.budget.start."""
    text = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    assert "JOB_START := $(shell date +%s)" in text
    recipe = text.split("\ntrain: data")[1].split("\n\n")[0]
    assert "train.py trainer.budget.start=$(JOB_START)" in recipe
