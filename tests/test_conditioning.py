"""Exercise 3: context extractors where the answer is known, their cache, the conditioning
options built from config alone, the corpus statistics, and the control measurement."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.fft
import torch

from ddsp_morph.data.features import (
    CONTEXT_FEATURES,
    ContextSettings,
    FeatureSettings,
    cached_context,
    compute_context,
    extract_f0,
)
from ddsp_morph.dsp import descriptors as d
from ddsp_morph.dsp.filters import dct_matrix, mel_filterbank
from ddsp_morph.evaluation.control import CONTROLS, control_example, summarize_control

from .conftest import cfg_for

SR, HOP = 16000, 128
T = np.arange(2 * SR) / SR


def tone(*freqs_hz: float, amplitude: float = 0.4) -> torch.Tensor:
    x = sum(amplitude * np.sin(2 * np.pi * f * T) for f in freqs_hz)
    return torch.tensor(x, dtype=torch.float32)[None]


def middle(x: torch.Tensor, edge: int = 40) -> torch.Tensor:
    return x[0, edge:-edge]


@pytest.mark.parametrize("freq", [220.0, 440.0, 1000.0, 3150.0])
def test_centroid_of_a_pure_tone_is_its_frequency(freq: float):
    c = middle(d.spectral_centroid_hz(tone(freq), sample_rate=SR, hop_length=HOP))
    assert torch.allclose(c, torch.full_like(c, freq), rtol=0.01)


def test_centroid_of_two_equal_tones_is_their_mean_and_silence_gives_zero():
    c = middle(d.spectral_centroid_hz(tone(500.0, 1500.0), sample_rate=SR, hop_length=HOP))
    assert abs(float(c.mean()) - 1000.0) < 10.0
    assert (
        float(
            d.spectral_centroid_hz(torch.zeros(1, SR), sample_rate=SR, hop_length=HOP).abs().max()
        )
        == 0.0
    )


def test_flatness_separates_noise_from_a_tone():
    noise = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 2 * SR))).float()
    flat_noise = float(middle(d.spectral_flatness_db(noise, hop_length=HOP)).mean())
    flat_tone = float(middle(d.spectral_flatness_db(tone(440.0), hop_length=HOP)).mean())
    assert -4.0 < flat_noise <= 0.0  # white noise: close to 0 dB (-2.5 dB expected for |X|^2 ~ Exp)
    assert flat_tone < -60.0


def test_two_tones_a_few_hz_apart_are_rougher_than_one():
    def rough(*f: float) -> float:
        return float(middle(d.roughness(tone(*f), sample_rate=SR, hop_length=HOP)).mean())

    single = rough(440.0)
    assert single == pytest.approx(0.0, abs=1e-6)
    near = {df: rough(440.0, 440.0 + df) for df in (10.0, 20.0, 30.0)}
    assert all(r > 0.02 for r in near.values()), near
    # Plomp-Levelt: roughness peaks near a quarter of a critical band and fades beyond it.
    assert rough(440.0, 640.0) < 0.1 * near[20.0]
    # Louder pairs are rougher (the amplitude term X^0.1).
    loud = float(
        middle(
            d.roughness(tone(440.0, 460.0, amplitude=0.8), sample_rate=SR, hop_length=HOP)
        ).mean()
    )
    assert loud > near[20.0]


def test_spectral_peaks_find_frequency_and_amplitude():
    mag = d.frame_magnitudes(
        tone(523.0, amplitude=0.3), n_fft=4096, hop_length=HOP, window="blackman_harris"
    )
    f, a = d.spectral_peaks(
        mag, sample_rate=SR, n_fft=4096, window_sum=4096 * d.BLACKMAN_HARRIS[0], max_peaks=4
    )
    assert abs(float(f[0, 100, 0]) - 523.0) < 0.5
    assert abs(float(a[0, 100, 0]) - 0.3) < 0.01
    assert float(a[0, 100, 1:].abs().max()) == 0.0  # nothing else within 60 dB


def test_mel_filterbank_and_dct_match_librosa_and_scipy():
    import librosa

    ours = mel_filterbank(sample_rate=SR, n_fft=1024, n_mels=64, fmin=20.0)
    ref = librosa.filters.mel(sr=SR, n_fft=1024, n_mels=64, fmin=20.0)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-7)
    ref_dct = scipy.fft.dct(np.eye(40), type=2, norm="ortho", axis=0)[:13]
    np.testing.assert_allclose(dct_matrix(40, 13), ref_dct, atol=1e-6)


def test_context_mfcc_matches_librosa():
    import librosa

    rng = np.random.default_rng(1)
    y = (0.3 * np.sin(2 * np.pi * 330 * T) + 0.02 * rng.standard_normal(len(T))).astype(np.float32)
    s = ContextSettings(n_mfcc=13, n_mels=40)
    ours = compute_context(y, s)["mfcc"]
    mel = librosa.feature.melspectrogram(
        y=y, sr=SR, n_fft=1024, hop_length=HOP, n_mels=40, fmin=20.0, pad_mode="constant"
    )
    ref = librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=None), n_mfcc=13).T
    assert ours.shape == (len(y) // HOP, 13)
    np.testing.assert_allclose(ours * 10 / math.log(10), ref[: len(ours)], rtol=1e-3, atol=0.05)


def test_periodicity_of_a_sine_is_high_and_of_white_noise_low():
    s = FeatureSettings()
    _, p_sine = extract_f0(tone(440.0)[0].numpy(), s)
    noise = 0.3 * np.random.default_rng(2).standard_normal(2 * SR).astype(np.float32)
    _, p_noise = extract_f0(noise, s)
    assert np.median(p_sine[10:-10]) > 0.8
    assert np.median(p_noise[10:-10]) < 0.4


def test_context_cache_is_reused_and_a_stale_entry_redone(tmp_path: Path):
    y = tone(440.0)[0].numpy()
    path = tmp_path / "x.ctx.npz"
    s = ContextSettings()
    first, cached = cached_context(y, path, s)
    assert not cached and set(first) == set(CONTEXT_FEATURES)
    again, cached = cached_context(y, path, s)
    assert cached and np.array_equal(again["roughness"], first["roughness"])
    _, cached = cached_context(y, path, ContextSettings(n_mfcc=12))  # other settings: redone
    assert not cached
    path.write_bytes(path.read_bytes()[:100])  # truncated: redone, not an error
    _, cached = cached_context(y, path, s)
    assert not cached


@pytest.mark.parametrize("name", ["centroid", "periodicity", "mfcc", "roughness", "flatness"])
def test_every_conditioning_option_builds_and_reads_its_signal(
    name: str, tiny_corpus: Path, tmp_path: Path
):
    from ddsp_morph.build import build_datamodule, build_model

    cfg = cfg_for(tiny_corpus, tmp_path, f"conditioning={name}", "data.train_instruments=all")
    dm = build_datamodule(cfg)
    dm.setup("fit")
    model = build_model(cfg, n_instruments=len(dm.instruments))
    model.set_stats(dm.stats)
    width = {"mfcc": int(cfg.data.context.n_mfcc)}.get(name, 1)
    assert model.decoder.input_mlps[name][0].in_features == width
    batch = next(iter(dm.train_dataloader()))
    inputs = model.decoder_inputs(batch)
    assert set(inputs) == {"f0", "loudness", name}
    assert inputs[name].shape == (*batch["f0_hz"].shape, width)
    # Standardized with the training split's statistics: on a training batch, about N(0, 1).
    assert float(inputs[name].mean().abs()) < 1.5 and 0.2 < float(inputs[name].std()) < 3.0
    out = model(batch)
    assert out["audio"].shape == batch["audio"].shape and torch.isfinite(out["audio"]).all()
    # The decoder reads the signal: moving it changes the output.
    moved = dict(batch)
    key = d.CONDITIONING_KEYS[name]
    moved[key] = batch[key] * 1.5 + 0.3
    model.eval()
    with torch.no_grad():
        a = model(batch, generator=torch.Generator().manual_seed(0))["audio"]
        b = model(moved, generator=torch.Generator().manual_seed(0))["audio"]
    assert not torch.allclose(a, b)


def test_stats_hold_every_conditioning_signal(tiny_corpus: Path):
    stats = json.loads((tiny_corpus / "stats.json").read_text())
    cond = stats["conditioning"]
    assert set(cond) == set(d.CONDITIONING_KEYS)
    assert len(cond["mfcc"]["mean"]) == ContextSettings().n_mfcc
    # the centroid is standardized on log2 Hz: a mean between 100 Hz and 4 kHz
    assert math.log2(100) < cond["centroid"]["mean"][0] < math.log2(4000)
    assert all(s > 0 for c in cond.values() for s in c["std"])


def test_mfcc_conditioning_trains_from_config_alone(tiny_corpus: Path, tmp_path: Path):
    from ddsp_morph.runs import load_run
    from ddsp_morph.training.fit import train

    metrics = train(
        cfg_for(
            tiny_corpus,
            tmp_path,
            "conditioning=mfcc",
            "trainer.max_steps=2",
            "data.train_instruments=all",
        )
    )
    assert metrics["global_step"] == 2 and np.isfinite(metrics["train/loss"])
    run = load_run(tmp_path, checkpoint="last")
    stats = json.loads((tiny_corpus / "stats.json").read_text())["conditioning"]["mfcc"]
    np.testing.assert_allclose(
        run.model.context_norms["mfcc"].mean.numpy(), stats["mean"], rtol=1e-5
    )


def test_unknown_conditioning_input_is_a_clear_error(tiny_corpus: Path, tmp_path: Path):
    from ddsp_morph.config import validate_config
    from ddsp_morph.errors import ConfigError

    cfg = cfg_for(tiny_corpus, tmp_path, "conditioning.inputs=[f0,loudness,brightness]")
    with pytest.raises(ConfigError, match="brightness"):
        validate_config(cfg)


def test_realtime_engine_refuses_a_context_model(tiny_corpus: Path, tmp_path: Path):
    from ddsp_morph.build import build_model
    from ddsp_morph.realtime.engine import StreamingEngine
    from ddsp_morph.realtime.tracing import StreamingSynth

    model = build_model(cfg_for(tiny_corpus, tmp_path, "conditioning=centroid"))
    with pytest.raises(ValueError, match="centroid"):
        StreamingEngine(model)
    with pytest.raises(ValueError, match="centroid"):
        StreamingSynth(model)


class _GainModel(torch.nn.Module):
    """A stand-in model whose output follows the loudness it is given exactly: a 440 Hz tone at
    that level (A-weighting at 440 Hz is about -3.2 dB, the same for every amount)."""

    encoder = None

    def forward(self, batch, generator=None):
        ld = batch["loudness_db"][0]
        gain = torch.repeat_interleave(10 ** (ld / 20.0), HOP)
        audio = gain * torch.sin(2 * math.pi * 440.0 * torch.arange(len(gain)) / SR)
        return {"audio": audio[None], "harmonic": audio[None]}


def test_control_measures_a_signal_the_model_follows():
    n_frames = 2 * SR // HOP
    item = {
        "f0_hz": torch.full((n_frames,), 440.0),
        "loudness_db": torch.full((n_frames,), -20.0),
        "periodicity": torch.ones(n_frames),
        "audio": torch.zeros(n_frames * HOP),
    }
    rows = control_example(
        _GainModel(),
        item,
        "loudness",
        z=None,
        settings=FeatureSettings(),
        context=ContextSettings(),
    )
    assert [r["asked"] for r in rows] == sorted(CONTROLS["loudness"].amounts)
    summary = summarize_control(rows)
    assert summary["slope"] == pytest.approx(1.0, abs=0.05) and summary["r2"] > 0.99
    assert summary["f0_cents_median_worst"] < 10.0


def test_centroid_change_is_reported_in_percent():
    from ddsp_morph.evaluation.control import CONTROLS

    ctl = CONTROLS["centroid"]
    voiced = np.ones(10, bool)
    base = ctl.measure({"centroid_hz": np.full(10, 1000.0)}, voiced)
    moved = ctl.measure({"centroid_hz": np.full(10, 1200.0)}, voiced)
    assert ctl.change(moved, base) == pytest.approx(20.0)
    assert ctl.change(base, base) == 0.0


def test_sounding_level_averages_the_frames_near_the_loudest():
    from ddsp_morph.dsp.loudness import sounding_level

    loud = torch.tensor([[-120.0, -20.0, -30.0, -60.0], [-10.0, -10.0, -10.0, -10.0]])
    # -60 and -120 are more than 30 dB under the loudest (-20): left out
    assert sounding_level(loud).tolist() == [-25.0, -10.0]


@pytest.mark.parametrize("reference", ["corpus", "clip"])
def test_loudness_reference_decides_whether_the_decoder_hears_the_level(
    reference: str, tiny_corpus: Path, tmp_path: Path
):
    from ddsp_morph.build import build_datamodule, build_model
    from ddsp_morph.data.augment import with_gain
    from ddsp_morph.dsp.loudness import sounding_level

    cfg = cfg_for(tiny_corpus, tmp_path, f"model.loudness_reference={reference}")
    dm = build_datamodule(cfg)
    dm.setup("fit")
    model = build_model(cfg, n_instruments=len(dm.instruments))
    model.set_stats(dm.stats)
    batch = next(iter(dm.train_dataloader()))
    # A crop carries its whole example's level, moved by the gain augmentation with the crop.
    item = dm.datasets["train"].items[0]
    assert float(item["sounding_db"]) == pytest.approx(
        float(sounding_level(item["loudness_db"][None])[0])
    )
    assert float(with_gain(item, 5.0)["sounding_db"]) == pytest.approx(
        float(item["sounding_db"]) + 5.0
    )
    louder = {
        **batch,
        "loudness_db": batch["loudness_db"] + 12.0,
        "sounding_db": batch["sounding_db"] + 12.0,
    }
    before = model.decoder_inputs(batch)["loudness"]
    after = model.decoder_inputs(louder)["loudness"]
    std = float(model.loudness_std)
    if reference == "clip":
        # the same performance 12 dB louder: the same input (the level is z's to say) ...
        torch.testing.assert_close(after, before, atol=1e-5, rtol=0)
        # ... measured from each example's level; without one, from the clip's own
        level = (batch["loudness_db"] - batch["sounding_db"][:, None]) / std
        torch.testing.assert_close(before.squeeze(-1), level)
        bare = {k: v for k, v in batch.items() if k != "sounding_db"}
        own = sounding_level(batch["loudness_db"])[:, None]
        torch.testing.assert_close(
            model.decoder_inputs(bare)["loudness"].squeeze(-1),
            (batch["loudness_db"] - own) / std,
        )
    else:
        torch.testing.assert_close(after - before, torch.full_like(before, 12.0 / std))
    # A given reference (the streaming synth's: the corpus mean) overrides the clip's own.
    fixed = {**louder, "loudness_ref": model.loudness_mean}
    torch.testing.assert_close(
        model.decoder_inputs(fixed)["loudness"],
        ((louder["loudness_db"] - model.loudness_mean) / std).unsqueeze(-1),
    )


def test_unknown_loudness_reference_is_a_clear_error(tiny_corpus: Path, tmp_path: Path):
    from ddsp_morph.config import validate_config
    from ddsp_morph.errors import ConfigError

    cfg = cfg_for(tiny_corpus, tmp_path, "model.loudness_reference=peak")
    with pytest.raises(ConfigError, match="model.loudness_reference"):
        validate_config(cfg)
