"""A run is one config and one corpus, and a bad value is one line: a validation row survives a
kill, a copied run finishes in its new place, and the keys a user types are checked."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf
import torch

from ddsp_morph.errors import DDSPMorphError
from ddsp_morph.training.fit import train
from ddsp_morph.training.setup import check_model_fits

from .conftest import REPO, cfg_for, tiny_train_args
from .test_import import tone

KILL_AFTER_VALIDATION = """
import os, signal, sys
from ddsp_morph.training import module

original = module.DDSPModule.on_validation_epoch_end

def on_validation_epoch_end(self):
    original(self)
    if int(self.global_step) == {step}:
        os.kill(os.getpid(), signal.SIGKILL)  # after the validation, before the next checkpoint

module.DDSPModule.on_validation_epoch_end = on_validation_epoch_end
sys.argv = ["train.py", *sys.argv[1:]]
exec(open("train.py").read())
"""


@pytest.mark.slow
def test_a_validation_after_the_last_checkpoint_survives_a_kill(tiny_corpus: Path, tmp_path: Path):
    runs = tmp_path / "runs"
    args = tiny_train_args(tiny_corpus, runs, 12, 4)
    killed = subprocess.run(
        [sys.executable, "-c", KILL_AFTER_VALIDATION.format(step=8), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    (run,) = [p.parents[1] for p in runs.glob("*/checkpoints/last.ckpt")]
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 8
    assert 8 not in [s for s, _ in last["ddsp_morph"]["history"]["val"]]  # validated after it
    done = subprocess.run(
        [sys.executable, "train.py", *args], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    steps = pd.read_csv(run / "val_history.csv")["step"].tolist()
    assert steps == [2, 4, 6, 8, 10, 12]


@pytest.mark.slow
def test_a_copied_run_finishes_in_its_new_place(tiny_corpus: Path, tmp_path: Path):
    """Checkpoint paths inside a run are its own: a copy resumes and writes its end-of-run
    files even when the original is gone, and a missing best checkpoint is a warning."""
    original = tmp_path / "original"
    extra = ("trainer.max_steps=4", "trainer.check_val_every_n_epoch=1")
    train(cfg_for(tiny_corpus, original, *extra))
    (original / "stability.json").unlink()  # as if killed after its last checkpoint
    for name, drop_best in (("copy", False), ("copy_without_best", True)):
        copy = tmp_path / name
        shutil.copytree(original, copy)
        if drop_best:
            for p in (copy / "checkpoints").glob("step*.ckpt"):
                p.unlink()
        shutil.rmtree(original) if not drop_best else None
        train(cfg_for(tiny_corpus, tmp_path / "elsewhere", *extra, f"resume={copy}"))
        assert json.loads((copy / "stability.json").read_text())["train_steps"] == 4
        assert (copy / "morph.csv").exists()
        if not drop_best:
            shutil.copytree(copy, original)  # the next copy is made from a whole run again
            (original / "stability.json").unlink()


@pytest.mark.parametrize(
    "override, key",
    [
        ("trainer.log_every_n_steps=abc", "trainer.log_every_n_steps"),
        ("trainer.check_val_every_n_epoch=0", "trainer.check_val_every_n_epoch"),
        ("data.num_workers=-1", "data.num_workers"),
        ("seed=abc", "seed"),
        ("+trainer.max_step=5", "trainer.max_step"),
        ("+model.hiden_size=5", "model.hiden_size"),
    ],
)
def test_the_keys_a_user_types_are_checked_in_one_line(
    tiny_corpus: Path, tmp_path: Path, override: str, key: str
):
    out = tmp_path / "run"
    with pytest.raises(DDSPMorphError) as e:
        train(cfg_for(tiny_corpus, out, override))
    msg = str(e.value)
    assert msg.startswith(f"config {key}:") and "\n" not in msg
    assert not out.exists()  # nothing written


def test_a_typo_names_the_key_it_meant(tiny_corpus: Path, tmp_path: Path):
    with pytest.raises(DDSPMorphError, match=r"did you mean trainer\.max_steps\?"):
        train(cfg_for(tiny_corpus, tmp_path / "run", "+trainer.max_step=5"))


def test_a_model_too_big_for_the_machine_is_refused_before_it_allocates(tiny_corpus: Path):
    cfg = cfg_for(tiny_corpus, Path("unused"), "model.hidden_size=100000")
    with pytest.raises(DDSPMorphError) as e:
        check_model_fits(cfg, memory_bytes=24 * 2**30)
    msg = str(e.value)
    assert msg.startswith("config model.hidden_size=100000") and "GiB" in msg and "\n" not in msg
    assert check_model_fits(cfg_for(tiny_corpus, Path("unused")), memory_bytes=24 * 2**30) > 0


def test_a_run_that_trained_no_step_fails(tiny_corpus: Path, tmp_path: Path):
    with pytest.raises(DDSPMorphError) as e:
        train(
            cfg_for(
                tiny_corpus,
                tmp_path / "run",
                "latent.beta=1e30",
                "latent.beta_warmup_steps=0",
                "latent.free_bits=0",
                "trainer.max_steps=3",
            )
        )
    assert "trained no step" in str(e.value) and "\n" not in str(e.value)


def test_a_garbage_midi_file_is_not_called_empty(tmp_path: Path):
    import mido

    from ddsp_morph.control.midi import midi_events

    rng = __import__("numpy").random.default_rng(0)
    for i in range(4):
        bad = tmp_path / f"bad{i}.mid"
        bad.write_bytes(b"MThd" + rng.bytes(300))
        with pytest.raises(DDSPMorphError) as e:
            midi_events(bad)
        assert str(e.value).startswith(f"{bad}: not a readable MIDI file"), str(e.value)
    empty = mido.MidiFile()
    empty.tracks.append(mido.MidiTrack([mido.Message("control_change", control=1, value=3)]))
    empty.save(tmp_path / "empty.mid")
    with pytest.raises(DDSPMorphError, match="no notes"):
        midi_events(tmp_path / "empty.mid")


def test_evaluate_refuses_a_negative_max_examples(tiny_run: Path, tmp_path: Path):
    from ddsp_morph.evaluation.resynthesis import evaluate_run

    out = tmp_path / "eval"
    with pytest.raises(DDSPMorphError) as e:
        evaluate_run(tiny_run, out_dir=out, max_examples=-1, progress=False)
    assert str(e.value) == "max_examples: expected an integer >= 1, got -1"
    assert not out.exists()


def test_folder_names_with_quotes_and_dollars_import_through_make(tmp_path: Path):
    name = 'say "cheese" $HOME ${oops} it\'s'
    src = tmp_path / name
    (src / "violin").mkdir(parents=True)
    for i in range(3):
        sf.write(src / "violin" / f"{i}.wav", tone(1.2, 16000, 440.0 + 30 * i), 16000)
    done = subprocess.run(
        [
            "make",
            "data",
            f"SOURCE={src}",
            f"ARGS=paths.data_dir='{tmp_path / 'data'}' data.example_seconds=1.0",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    corpus = tmp_path / "data" / "corpus" / name
    assert json.loads((corpus / "corpus.json").read_text())["source"] == str(src)


def test_a_long_render_is_summarised_in_bounded_memory(tmp_path: Path):
    """The headless render streams its wav to disk and draws its picture from a summary of
    bounded size: the peak does not grow with the length, and the summary is the spectrogram."""
    import tracemalloc

    import numpy as np

    from ddsp_morph.plots import log_spectrogram_db
    from ddsp_morph.realtime.recording import StreamingWav

    rate, block = 48000, 384
    t = np.arange(block) / rate

    def render(seconds: float, path: Path) -> tuple[float, StreamingWav]:
        tracemalloc.start()
        wav = StreamingWav(path, rate)
        for i in range(int(seconds * rate / block)):
            wav.write((0.3 * np.sin(2 * np.pi * 440 * (t + i * block / rate))).astype(np.float32))
        wav.close()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak, wav

    short_peak, _ = render(20, tmp_path / "short.wav")
    long_peak, wav = render(160, tmp_path / "long.wav")
    assert long_peak < 1.5 * short_peak + 2e6  # flat in the length, not 8x
    assert sf.info(tmp_path / "long.wav").frames == 160 * rate
    assert not list(tmp_path.glob(".*.tmp"))  # moved into place
    image = wav.summary.image()
    assert image.shape[1] <= 2048
    assert abs(image[:, image.shape[1] // 2].argmax() * rate / 2048 - 440) < 24
    x, _ = sf.read(tmp_path / "short.wav", dtype="float32")
    _, small = render(20, tmp_path / "again.wav")
    ref = log_spectrogram_db(x, n_fft=2048, hop=512)
    img = small.summary.image()
    assert img.shape == ref.shape  # short enough: one frame per column, the plain spectrogram
    assert np.median(np.abs(img[:, 2:-2] - ref[:, 2:-2])) < 0.01


def test_a_resume_that_changes_the_config_is_refused(tiny_corpus: Path, tmp_path: Path):
    run = tmp_path / "run"
    train(cfg_for(tiny_corpus, run, "latent=none", "trainer.max_steps=3"))
    (run / "stability.json").unlink()  # as if interrupted
    config = (run / "config.yaml").read_bytes()
    with pytest.raises(DDSPMorphError) as e:
        train(
            cfg_for(
                tiny_corpus,
                tmp_path / "o",
                "latent=none",
                "trainer.max_steps=3",
                f"resume={run}",
                "model.lr=0.01",
            )
        )
    msg = str(e.value)
    assert "model.lr 0.001 -> 0.01" in msg and "resume_allow=[model.lr]" in msg
    assert "\n" not in msg and (run / "config.yaml").read_bytes() == config
    assert not (run / "resumes.json").exists()
