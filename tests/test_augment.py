"""Pitch-shift augmentation of training crops (data.augment)."""

import numpy as np
import pytest
import torch

from ddsp_morph.data.augment import GainChange, PitchShift, shifted_crop, with_gain
from ddsp_morph.data.datamodule import FrameDataset
from ddsp_morph.dsp.loudness import a_weighted_loudness_db

SR, HOP, N_FFT = 16000, 128, 1024
SHIFT = PitchShift(semitones=3.0, probability=1.0, sample_rate=SR, loudness_n_fft=N_FFT)


def loudness(audio: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.asarray(audio, np.float32))[None]
    return a_weighted_loudness_db(x, sample_rate=SR, hop_length=HOP, n_fft=N_FFT)[0]


def sine_item(hz: float = 440.0, seconds: float = 2.0) -> dict[str, torch.Tensor]:
    """A sine whose f0 track rises by 1 Hz a frame in name only (to follow the frame times);
    its audio is a steady ``hz``."""
    n = int(seconds * SR)
    audio = (0.5 * np.sin(2 * np.pi * hz * np.arange(n) / SR)).astype(np.float32)
    n_frames = n // HOP
    return {
        "audio": torch.from_numpy(audio),
        "f0_hz": torch.arange(n_frames, dtype=torch.float32) + 100.0,
        "loudness_db": loudness(audio),
        "periodicity": torch.ones(n_frames),
        "mfcc": torch.arange(n_frames, dtype=torch.float32)[:, None].repeat(1, 3),
        "instrument_id": torch.tensor(2),
    }


def peak_hz(audio: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.argmax(spec) * SR / len(audio))


def test_an_unshifted_crop_is_the_plain_crop():
    item = sine_item()
    out = shifted_crop(item, 40, 100, 1.0, hop_length=HOP, shift=SHIFT)
    assert torch.equal(out["audio"], item["audio"][40 * HOP : 140 * HOP])
    assert torch.equal(out["f0_hz"], item["f0_hz"][40:140])
    assert torch.allclose(out["loudness_db"], item["loudness_db"][40:140], atol=1e-4)
    assert torch.equal(out["mfcc"], item["mfcc"][40:140])
    assert int(out["instrument_id"]) == 2


@pytest.mark.parametrize("semitones", [3.0, -3.0, 1.5])
def test_a_shifted_crop_moves_the_pitch_and_reads_the_frames_at_the_shifted_times(semitones):
    ratio = 2 ** (semitones / 12)
    item = sine_item()
    start, n = 30, 100
    out = shifted_crop(item, start, n, ratio, hop_length=HOP, shift=SHIFT)
    assert out["audio"].shape == (n * HOP,) and out["f0_hz"].shape == (n,)
    # the audio sounds at 440 * ratio (a 12 800-sample crop: 1.25 Hz bins)
    assert peak_hz(out["audio"].numpy()) == pytest.approx(440 * ratio, abs=2.0)
    # frame j reads source frame start + j * ratio; f0 is scaled by the ratio
    at = start + np.arange(n) * ratio
    np.testing.assert_allclose(out["f0_hz"].numpy(), (100 + at) * ratio, rtol=1e-5)
    np.testing.assert_allclose(out["mfcc"][:, 1].numpy(), at, rtol=1e-5)
    # loudness is measured again: a sine of 440 * ratio read whole, away from its ends
    direct = loudness(0.5 * np.sin(2 * np.pi * 440 * ratio * np.arange(2 * SR) / SR))
    np.testing.assert_allclose(out["loudness_db"][8:].numpy(), direct[8:n].numpy(), atol=0.05)
    # and not the source's level, which the A-weighting rates differently at 440 Hz
    assert abs(float(out["loudness_db"][50] - item["loudness_db"][50])) > 0.1


def test_a_crop_that_does_not_fit_is_refused():
    item = sine_item(seconds=1.0)
    with pytest.raises(ValueError, match="do not fit"):
        shifted_crop(item, 20, 100, 2 ** (3 / 12), hop_length=HOP, shift=SHIFT)


def test_the_dataset_shifts_crops_within_the_range_it_is_given():
    item = sine_item()
    item["f0_hz"] = torch.full_like(item["f0_hz"], 440.0)
    ds = FrameDataset([item], hop_length=HOP, crop_frames=100, seed=0, pitch_shift=SHIFT)
    ratios = np.array([float(ds[0]["f0_hz"][0]) / 440.0 for _ in range(200)])
    semis = 12 * np.log2(ratios)
    assert semis.min() >= -3.0 - 1e-4 and semis.max() <= 3.0 + 1e-4
    assert semis.min() < -2.0 and semis.max() > 2.0  # the whole range is drawn
    off = FrameDataset(
        [item], hop_length=HOP, crop_frames=100, seed=0, pitch_shift=PitchShift(semitones=0.0)
    )
    assert all(float(off[0]["f0_hz"][0]) == 440.0 for _ in range(20))
    half = FrameDataset(
        [item],
        hop_length=HOP,
        crop_frames=100,
        seed=0,
        pitch_shift=PitchShift(semitones=3.0, probability=0.5),
    )
    plain = np.mean([float(half[0]["f0_hz"][0]) == 440.0 for _ in range(400)])
    assert 0.4 < plain < 0.6


def test_an_example_too_short_for_the_shift_is_cropped_unshifted():
    item = sine_item(seconds=1.0)  # 125 frames
    item["f0_hz"] = torch.full_like(item["f0_hz"], 440.0)
    ds = FrameDataset([item], hop_length=HOP, crop_frames=124, seed=0, pitch_shift=SHIFT)
    for _ in range(20):
        crop = ds[0]
        assert crop["audio"].shape == (124 * HOP,)
        if float(crop["f0_hz"][0]) != 440.0:  # only a downward shift fits
            assert float(crop["f0_hz"][0]) < 440.0


def test_a_gain_scales_the_audio_and_moves_the_loudness_by_as_many_db():
    item = sine_item()
    item["audio"][: 4 * HOP] = 0.0
    item["loudness_db"] = loudness(item["audio"].numpy())
    crop = with_gain(item, 6.0)
    assert torch.allclose(crop["audio"], item["audio"] * 10 ** (6 / 20))
    measured = loudness(crop["audio"].numpy())
    sounding = item["loudness_db"] > -99.0
    assert not sounding[0] and sounding[20:].all()
    np.testing.assert_allclose(
        crop["loudness_db"][sounding].numpy(), measured[sounding].numpy(), atol=1e-3
    )
    assert torch.equal(crop["loudness_db"][~sounding], item["loudness_db"][~sounding])
    assert torch.equal(crop["f0_hz"], item["f0_hz"])
    assert torch.equal(item["audio"][4 * HOP :], sine_item()["audio"][4 * HOP :])  # untouched
    assert with_gain(item, 0.0) is item


def test_the_context_features_follow_the_gain_as_measured_again():
    from ddsp_morph.data.features import ContextSettings, compute_context

    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    audio = sum(np.sin(2 * np.pi * 220 * k * t) / k for k in range(1, 8)) * 0.2
    audio = audio * (1 + 0.3 * np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(SR)
    audio = audio.astype(np.float32)
    s = ContextSettings()
    item = {k: torch.from_numpy(v) for k, v in compute_context(audio, s).items()}
    item["audio"] = torch.from_numpy(audio)
    item["loudness_db"] = loudness(audio)
    crop = with_gain(item, -6.0, n_mels=s.n_mels)
    again = compute_context(crop["audio"].numpy(), s)
    for key, tol in (("mfcc", 1e-3), ("roughness", 1e-4), ("centroid_hz", 0.05)):
        np.testing.assert_allclose(crop[key].numpy(), again[key], atol=tol, rtol=1e-4)
    np.testing.assert_allclose(crop["flatness_db"].numpy(), again["flatness_db"], atol=1e-2)
    # what the moves undo: the unmoved features are off by far more
    assert np.abs(item["mfcc"].numpy() - again["mfcc"]).max() > 1.0
    assert np.abs(item["roughness"].numpy() - again["roughness"]).max() > 1e-3


def test_the_dataset_draws_gains_within_the_range_it_is_given():
    item = sine_item()
    ds = FrameDataset(
        [item], hop_length=HOP, crop_frames=100, seed=0, gain=GainChange(db=6.0, probability=0.5)
    )
    gains = []
    for _ in range(400):
        crop = ds[0]
        gains.append(20 * np.log10(float(crop["audio"].abs().max()) / 0.5))
    gains = np.array(gains)
    assert gains.min() >= -6.01 and gains.max() <= 6.01
    assert gains.min() < -5.0 and gains.max() > 5.0
    assert 0.4 < np.mean(np.abs(gains) < 1e-3) < 0.6  # half the crops unchanged


@pytest.mark.parametrize(
    "kwargs, message",
    [({"semitones": 13.0}, "semitones"), ({"semitones": 2.0, "probability": 1.5}, "probability")],
)
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PitchShift(**kwargs)
    with pytest.raises(ValueError, match="gain change: db"):
        GainChange(db=30.0)


def test_the_config_shifts_the_training_crops_only(tiny_corpus, tmp_path):
    from ddsp_morph.build import build_datamodule
    from tests.conftest import cfg_for

    cfg = cfg_for(
        tiny_corpus,
        tmp_path,
        "data.pitch_shift.semitones=2.5",
        "data.pitch_shift.probability=1",
        "data.gain.db=4",
    )
    dm = build_datamodule(cfg)
    dm.setup("fit")
    assert dm.datasets["train"].pitch_shift == PitchShift(2.5, 1.0, SR, N_FFT)
    assert dm.datasets["train"].gain == GainChange(4.0, 0.5)
    for split in ("valid", "test"):
        assert dm.datasets[split].pitch_shift is None and dm.datasets[split].gain is None
    batch = next(iter(dm.train_dataloader()))
    assert batch["audio"].shape == (4, SR) and batch["loudness_db"].shape == (4, SR // HOP)
