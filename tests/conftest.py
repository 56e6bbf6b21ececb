"""Shared fixtures: a tiny corpus rendered and analysed once per test session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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


SR, HOP = 16000, 128


def _played(path: Path, kind: str, seed: int, seconds: float = 4.0) -> np.ndarray:
    """A take played the way the realtime synth plays: a melody of half-second notes (D4..F5,
    velocities 50..127) through the synth's own MIDI controller (its ADSR and loudness map),
    sounded by a harmonic tone whose partials follow that f0 and loudness. "mellow": harmonics
    falling as k^-3; "reedy": odd harmonics falling as 1/k (even ones 22 dB down)."""
    import mido

    from ddsp_morph.control.midi import midi_to_controls

    rng = np.random.default_rng(seed)
    mid = mido.MidiFile(ticks_per_beat=480)  # 960 ticks per second
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    for _ in range(int(seconds / 0.5)):
        note, vel = int(rng.integers(62, 78)), int(rng.integers(50, 128))
        tr.append(mido.Message("note_on", note=note, velocity=vel, time=0))
        tr.append(mido.Message("note_off", note=note, time=432))
        tr.append(mido.Message("note_on", note=note, velocity=0, time=48))
    mid.save(path)
    ctl = midi_to_controls(path, frame_rate=SR / HOP, tail_s=0.0)
    t = np.arange(len(ctl["f0_hz"]) * HOP) / SR
    frames = np.arange(len(ctl["f0_hz"])) * HOP / SR
    f0 = np.interp(t, frames, ctl["f0_hz"])
    amp = np.interp(t, frames, 10 ** ((ctl["loudness_db"] + 15.0) / 20))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    ks = np.arange(1, 30)
    amps = ks**-3.0 if kind == "mellow" else np.where(ks % 2 == 1, 1.0 / ks, 0.08 / ks)
    amps = amps / np.sqrt(np.square(amps).sum())
    x = sum(a * np.sin(k * phase) * (k * f0 < SR / 2) for k, a in zip(ks, amps, strict=True))
    return (0.3 * amp * x).astype(np.float32)


@pytest.fixture(scope="session")
def two_timbre_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small film-decoder VAE trained for 600 steps on two synthetic timbres (a corpus
    imported from a folder of takes, as a user's): (corpus dir, run dir)."""
    import soundfile as sf

    from ddsp_morph.data.importer import ImportSettings, import_folder
    from ddsp_morph.training.fit import train

    root = tmp_path_factory.mktemp("two_timbres")
    for j, kind in enumerate(("mellow", "reedy")):
        (root / "takes" / kind).mkdir(parents=True)
        for i in range(6):
            take = _played(root / f"{kind}{i}.mid", kind, seed=10 * j + i)
            sf.write(root / "takes" / kind / f"{i}.wav", take, SR)
    corpus = root / "corpus"
    import_folder(
        root / "takes",
        corpus,
        ImportSettings(example_seconds=2.0, min_minutes_warning=0.0),
        FeatureSettings(),
        progress=False,
    )
    run = root / "run"
    train(
        cfg_for(
            corpus,
            run,
            "trainer.max_steps=600",
            "model.hidden_size=64",
            "model.gru_size=64",
            "trainer.check_val_every_n_epoch=1000",
            "trainer.precision=32",
            "n_audio_examples=1",
            "morph.n_examples=1",
            "num_threads=1",
            "data.crop_seconds=2.0",
        )
    )
    return corpus, run
