"""The label prior, and the morph table measured on models whose morph is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ddsp_morph.data.features import FeatureSettings, compute_features
from ddsp_morph.evaluation.classifier import InstrumentClassifier, clip_features
from ddsp_morph.evaluation.morph_table import (
    MorphSettings,
    step_evenness,
    summary_line,
    write_morph,
)
from ddsp_morph.models.encoder import TimbreEncoder, initial_prior_means, kl_per_dim

from .conftest import HOP, SR, _played


def test_label_prior_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(1)
    mu, logvar = torch.randn(5, 1, 6, generator=g), torch.randn(5, 1, 6, generator=g)
    prior_mean = 3 * torch.randn(5, 1, 6, generator=g)
    prior_logvar = 2 * np.log(0.7)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, (0.5 * logvar).exp()),
        torch.distributions.Normal(prior_mean, torch.full_like(mu, 0.7)),
    )
    got = kl_per_dim(mu, logvar, prior_mean, prior_logvar)
    torch.testing.assert_close(got, ref.reshape(-1, 6).mean(0))
    # The posterior equal to its prior component: no KL at all.
    zero = kl_per_dim(prior_mean, torch.full_like(mu, prior_logvar), prior_mean, prior_logvar)
    torch.testing.assert_close(zero, torch.zeros(6), atol=1e-6, rtol=0)


def test_prior_means_start_orthogonal_at_the_radius():
    m = initial_prior_means(4, 16, radius=3.0)
    torch.testing.assert_close(m @ m.T, 9.0 * torch.eye(4), atol=1e-4, rtol=0)
    many = initial_prior_means(20, 4, radius=2.0)  # more instruments than dimensions
    torch.testing.assert_close(many.norm(dim=1), torch.full((20,), 2.0))
    assert torch.equal(initial_prior_means(4, 16, radius=3.0), m)  # a fixed seed


def test_label_prior_pulls_each_clip_to_its_instrument_and_learns_the_means():
    enc = TimbreEncoder(z_dim=4, gru_size=8, prior="label", n_instruments=3).train()
    ids = torch.tensor([0, 2, 2])
    mean, logvar = enc.prior_params(ids)
    assert mean.shape == (3, 1, 4)
    torch.testing.assert_close(mean[1, 0], enc.prior_mean[2])
    out = enc(torch.randn(3, 16 * HOP), 16)
    kl = kl_per_dim(out["mu"], out["logvar"], mean, logvar).sum()
    kl.backward()
    # The KL reaches the means of the instruments in the batch, and only those.
    grad = enc.prior_mean.grad
    assert grad[0].abs().sum() > 0 and grad[2].abs().sum() > 0 and grad[1].abs().sum() == 0
    # A descent step on the KL alone moves mu toward the clip's own component.
    mu = out["mu"].detach().requires_grad_(True)
    kl_per_dim(mu, out["logvar"].detach(), mean.detach(), logvar).sum().backward()
    before = (mu - mean).norm(dim=-1)
    after = (mu - 0.1 * mu.grad - mean).norm(dim=-1)
    assert torch.all(after < before)
    with pytest.raises(ValueError, match="instrument_id: expected 0..2"):
        enc.prior_params(torch.tensor([3]))
    # The standard prior, and the label prior given no labels (an unseen instrument): N(0, I).
    std_mean, std_logvar = TimbreEncoder(z_dim=4, gru_size=8).prior_params(ids)
    assert float(std_mean.abs().sum()) == 0.0 and std_logvar == 0.0
    assert float(enc.prior_params(None)[0].abs().sum()) == 0.0


def test_step_evenness():
    assert step_evenness(np.linspace(0, 1, 11)) == pytest.approx(1.0)
    assert step_evenness(np.r_[np.zeros(5), np.ones(6)]) == pytest.approx(10.0)  # a switch
    assert np.isnan(step_evenness(np.ones(11)))


# --- the morph table on fixture models whose behaviour is known ---------------------------


def _tone(f0_hz: float, n_samples: int, brightness: float) -> np.ndarray:
    """Harmonics with amplitude k^-(3 - 2.5 * brightness): dark (a near-sine) to bright."""
    t = np.arange(n_samples) / SR
    k = np.arange(1, 30)
    k = k[k * f0_hz < SR / 2]
    amps = k ** -(3.0 - 2.5 * brightness)
    x = (amps[:, None] * np.sin(2 * np.pi * f0_hz * k[:, None] * t)).sum(0)
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


class ToyModel(torch.nn.Module):
    """A stand-in for the autoencoder: z[0] sets the brightness of a harmonic tone (z given) or
    the clip's own label does (resynthesis). ``use_z=False``: a decoder that ignores z."""

    def __init__(self, use_z: bool = True) -> None:
        super().__init__()
        self.use_z = use_z

    def forward(self, batch, generator=None):
        n_frames = batch["f0_hz"].shape[1]
        f0 = float(batch["f0_hz"][0, 0])
        if "z" in batch and self.use_z:
            w = torch.sigmoid(4.0 * batch["z"].reshape(len(batch["z"]), -1)[:, 0]).tolist()
        else:
            w = [float(i) for i in batch["instrument_id"]]
        audio = np.stack([_tone(f0, n_frames * HOP, b) for b in w])
        a = torch.from_numpy(audio)
        return {"audio": a, "harmonic": a, "noise": 0.01 * a}


def _item(label: int, f0_hz: float, n_frames: int = 250) -> dict[str, torch.Tensor]:
    return {
        "f0_hz": torch.full((n_frames,), f0_hz),
        "loudness_db": torch.full((n_frames,), -20.0),
        "periodicity": torch.ones(n_frames),
        "instrument_id": torch.tensor(label),
        "audio": torch.from_numpy(_tone(f0_hz, n_frames * HOP, float(label))),
    }


@pytest.fixture(scope="module")
def toy_classifier() -> InstrumentClassifier:
    x, labels = [], []
    for f0 in (220.0, 261.6, 330.0, 392.0, 440.0, 523.3):
        for name, b in (("dark", 0.0), ("bright", 1.0)):
            x.append(clip_features(_tone(f0, 2 * SR, b), SR))
            labels.append(name)
    return InstrumentClassifier.fit(np.stack(x), labels, c=0.05)


def _morph(model, classifier, out: Path) -> dict:
    items = {"dark": [_item(0, 293.7), _item(0, 349.2)], "bright": [_item(1, 293.7)]}
    centroids = {
        "dark": np.array([-1.5, 0.0], np.float32),
        "bright": np.array([1.5, 0.0], np.float32),
    }
    return write_morph(
        out,
        model,
        items,
        centroids,
        classifier=classifier,
        features=FeatureSettings(),
        settings=MorphSettings(steps=7, n_examples=2, f0_alphas=(0.0, 1.0)),
    )


def test_morph_table_of_a_model_that_morphs(toy_classifier, tmp_path: Path):
    import pandas as pd

    s = _morph(ToyModel(use_z=True), toy_classifier, tmp_path)
    pairs = pd.read_csv(tmp_path / "morph.csv")
    assert sorted(zip(pairs["from"], pairs["to"], strict=True)) == [
        ("bright", "dark"),
        ("dark", "bright"),
    ]
    assert pairs["n_examples"].tolist() == [1, 2]  # bright has one test example, dark two
    assert pairs["n_clips_all"].tolist() == [1, 2]
    assert s["p_b_start_max"] < 0.1 and s["p_b_end_min"] > 0.9
    assert s["p_b_start_all_max"] < 0.1 and s["p_b_end_all_min"] > 0.9
    # the path's ends are the conversions of classify_renders: the same P(B)
    np.testing.assert_allclose(pairs["p_b_end_all"], pairs["p_b_end"], atol=0.02)
    assert s["spearman_min"] > 0.95 and s["max_step_max"] < 1.0
    assert s["conversion_accuracy"] == 1.0 and s["resynthesis_accuracy_min"] == 1.0
    # f0 is re-extracted from the output (the tone is at the performance's pitch)
    assert s["f0_cents_median_worst"] < 10.0
    # the brightness descriptor moves the way z does
    dark_to_bright = pairs[pairs["from"] == "dark"].iloc[0]
    assert dark_to_bright["centroid_end_hz"] > dark_to_bright["centroid_start_hz"] + 200
    curves = pd.read_csv(tmp_path / "morph_curves.csv")
    assert len(curves) == 2 * 7
    assert (tmp_path / "morph.png").stat().st_size > 10_000
    line = summary_line(s)
    assert "2 pairs" in line and "targets met" in line
    # a figure just under its target reads under it, not rounded onto it
    near = dict(s, p_b_end_all_min=0.8983)
    assert "at alpha=1 >= 0.898 " in summary_line(near)


def test_morph_table_of_a_decoder_that_ignores_z(toy_classifier, tmp_path: Path):
    s = _morph(ToyModel(use_z=False), toy_classifier, tmp_path)
    # every path renders the source instrument: P(B) stays where it started, nothing morphs
    assert s["p_b_end_min"] < 0.1 and s["conversion_accuracy"] == 0.0
    assert s["resynthesis_accuracy_min"] == 1.0  # resynthesis alone cannot tell
    assert s["targets"]["P(B) at alpha=1 >= 0.9, every pair"] is False
    assert s["targets"]["conversion accuracy >= 0.9"] is False


@pytest.mark.slow
def test_a_trained_run_morphs_and_its_cc1_sweep_goes_from_a_to_b(two_timbre_run, tmp_path: Path):
    """The end-of-run morph table of a small trained model, and the realtime synth's headless
    render of a melody with CC1 swept 0 -> 127: the classifier (trained on the corpus's real
    audio) hears A in the first window and B in the last, both ways, and f0 follows the notes."""
    import json
    import subprocess
    import sys

    import soundfile as sf

    from ddsp_morph.evaluation.classifier import corpus_classifier
    from ddsp_morph.evaluation.sweep import judge_sweep, sweep_midi

    from .conftest import REPO

    corpus, run = two_timbre_run
    s = json.loads((run / "morph_summary.json").read_text())
    # the end-of-run morph table is there (its figures are tested on toy models above)
    assert (
        s["n_pairs"] == 2 and s["n_test_clips"] > 0 and (run / "morph.png").stat().st_size > 10_000
    )
    classifier = corpus_classifier(corpus)
    # 6.5 s: CC1 at 0 for the first 2 s, rising, at 127 for the last 2 s
    midi = sweep_midi(tmp_path / "sweep.mid", seconds=6.5, hold_s=2.0)
    for a, b in (("mellow", "reedy"), ("reedy", "mellow")):
        wav = tmp_path / f"{a}_to_{b}.wav"
        done = subprocess.run(
            [sys.executable, "-m", "ddsp_morph.realtime", "--run", str(run)]
            + ["--midi-file", str(midi), "--out", str(wav), "--from", a, "--to", b],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        audio, rate = sf.read(wav, dtype="float32")
        judged = judge_sweep(audio, rate, midi, classifier, a, b, window_s=1.5)
        windows = judged["windows"]
        assert len(windows) == 4  # 1.5 s each: the first at morph 0, the last at morph 1
        first, last = (f"{w['predicted']} {w['p_target']:.2f}" for w in (windows[0], windows[-1]))
        assert windows[0]["predicted"] == a, (a, b, first, last)
        assert windows[-1]["predicted"] == b, (a, b, first, last)
        assert windows[-1]["p_target"] > windows[0]["p_target"] + 0.3
        assert judged["f0_cents_median"] <= 20.0 and judged["f0_frames_compared"] > 200


@pytest.mark.slow
def test_audio_in_plays_a_take_of_a_as_b_along_a_cc1_sweep(two_timbre_run, tmp_path: Path):
    """Audio in, headless (the live mode's code path): a new take of one timbre, tracked block
    by block, comes out as that timbre at CC1 = 0 and as the other at CC1 = 127, with its f0
    following the input."""
    import subprocess
    import sys

    import soundfile as sf
    import soxr

    from ddsp_morph.evaluation.classifier import corpus_classifier

    from .conftest import REPO

    corpus, run = two_timbre_run
    classifier = corpus_classifier(corpus)
    for a, b, seed in (("mellow", "reedy", 91), ("reedy", "mellow", 92)):
        take = _played(tmp_path / f"{a}.mid", a, seed=seed, seconds=6.0)
        src = tmp_path / f"{a}_take.wav"
        sf.write(src, take, SR)
        wav = tmp_path / f"{a}_as_{b}.wav"
        done = subprocess.run(
            [sys.executable, "-m", "ddsp_morph.realtime", "--run", str(run)]
            + ["--audio-file", str(src), "--out", str(wav), "--sweep", "--from", a, "--to", b],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        out, rate = sf.read(wav, dtype="float32")
        y = soxr.resample(out, rate, SR)
        w = int(1.5 * SR)  # CC1 below 32 in the first window, above 95 in the last
        first, last = classifier.proba_of(y[:w]), classifier.proba_of(y[-w:])
        assert max(first, key=first.get) == a, (a, b, first, last)
        assert max(last, key=last.get) == b, (a, b, first, last)
        # f0 follows the take: the output's f0 against the input's, where both are voiced
        f_in = compute_features(take, FeatureSettings())
        f_out = compute_features(y[: len(take)], FeatureSettings())
        lag = 2  # the tracker's lag (~10 ms) and the output resampler, in frames
        n = len(f_in["f0_hz"]) - lag
        v = (f_in["periodicity"][:n] >= 0.5) & (f_out["periodicity"][lag : lag + n] >= 0.5)
        err = np.abs(1200 * np.log2(f_out["f0_hz"][lag : lag + n][v] / f_in["f0_hz"][:n][v]))
        assert v.sum() > 300 and np.median(err) < 20.0


@pytest.mark.slow
def test_the_morph_cli_walks_evenly_in_timbre_and_measures_speeds_the_run_lacks(
    two_timbre_run, tmp_path: Path
):
    """``python -m ddsp_morph.morph``: with even=true on a path kind the checkpoint does not
    store (linear; training stores slerp) it measures the speeds itself and spaces the alphas
    by them; even=false spaces them in z. The ends are the same either way."""
    import json
    import subprocess
    import sys

    import pandas as pd

    from .conftest import REPO

    _, run = two_timbre_run
    rows = {}
    for even in ("true", "false"):
        out = tmp_path / f"even_{even}"
        done = subprocess.run(
            [sys.executable, "-m", "ddsp_morph.morph", f"run={run}", "checkpoint=last"]
            + ["path=linear", f"even={even}", f"out_dir={out}"],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert json.loads((out / "morph_summary.json").read_text())["even"] is (even == "true")
        rows[even] = pd.read_csv(out / "morph.csv")
    np.testing.assert_allclose(rows["true"]["p_b_start"], rows["false"]["p_b_start"], atol=1e-6)
    np.testing.assert_allclose(rows["true"]["p_b_end"], rows["false"]["p_b_end"], atol=1e-6)


def test_the_ends_are_read_over_every_test_clip_of_a():
    import pandas as pd

    from ddsp_morph.evaluation.morph_table import endpoints_over_all_clips

    # three clips of A; one of them (the last) does not reach B
    renders = pd.DataFrame(
        [
            {"source": "a", "target": "a", "p_target": 0.9, "p_a": 0.9, "p_b": 0.1},
            {"source": "a", "target": "a", "p_target": 0.8, "p_a": 0.8, "p_b": 0.2},
            {"source": "a", "target": "a", "p_target": 1.0, "p_a": 1.0, "p_b": 0.0},
            {"source": "a", "target": "b", "p_target": 1.0, "p_a": 0.0, "p_b": 1.0},
            {"source": "a", "target": "b", "p_target": 0.9, "p_a": 0.1, "p_b": 0.9},
            {"source": "a", "target": "b", "p_target": 0.2, "p_a": 0.8, "p_b": 0.2},
            {"source": "b", "target": "a", "p_target": 0.5, "p_a": 0.5, "p_b": 0.5},
            {"source": "b", "target": "resynthesis", "p_target": 1.0, "p_a": 0.0, "p_b": 1.0},
        ]
    )
    e = endpoints_over_all_clips(renders, "a", "b")
    assert e["n_clips_all"] == 3
    assert e["p_b_start_all"] == pytest.approx(0.1)
    assert e["p_b_end_all"] == pytest.approx(0.7)
    # B -> A: one conversion; B was never decoded with its own centroid here
    back = endpoints_over_all_clips(renders, "b", "a")
    assert back["n_clips_all"] == 1 and back["p_b_end_all"] == pytest.approx(0.5)
    assert np.isnan(back["p_b_start_all"])
