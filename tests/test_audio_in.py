"""Audio in: the streaming tracker, level and voicing on signals whose answer is known, and
the CLI's one-line refusals. The trained-model end-to-end test is in test_morph.py."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from ddsp_morph.data.features import FeatureSettings, extract_loudness
from ddsp_morph.dsp.resample import PolyphaseDownsampler
from ddsp_morph.realtime.audio_in import AudioFollower, AudioInSettings
from ddsp_morph.realtime.tracker import StreamingLoudness, StreamingYin

from .conftest import REPO

SR, HOP = 16000, 128
STATS = {"loudness_db_voiced_mean": -25.0, "loudness_db_min": -90.0, "f0_hz_voiced_p005": 150.0}


def tone(f0, seconds=1.0, amp=0.3, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    return (amp * sum(np.sin(2 * np.pi * k * f0 * t) / k for k in (1, 2, 3))).astype(np.float32)


def stream(tracker, x):
    x = torch.from_numpy(np.asarray(x, np.float32))
    return np.array([tracker(x[i : i + HOP]) for i in range(0, len(x) - HOP + 1, HOP)])


@pytest.mark.parametrize("f0", [110.0, 261.6, 440.0, 1046.5])
def test_yin_tracks_a_tone_within_a_few_cents(f0: float):
    y = StreamingYin(SR, HOP, fmin=100.0, fmax=2000.0)
    out = stream(y, tone(f0))
    settled = out[int(y.lag_frames) + 4 :]
    err = 1200 * np.log2(settled[:, 0] / f0)
    assert np.median(np.abs(err)) < 5.0 and settled[:, 1].min() > 0.8


def test_yin_lag_is_half_its_window():
    y = StreamingYin(SR, HOP, fmin=100.0, fmax=2000.0)
    assert y.lag_frames == pytest.approx((2 * 160) / 2 / HOP)  # two periods of 100 Hz
    x = np.concatenate([tone(220.0, 0.5), tone(330.0, 0.5)])
    f = stream(y, x)[:, 0]
    switch = 10 + np.argmax(f[10:] > np.sqrt(220 * 330))  # the first frame reading the new note
    assert abs(switch - (len(x) // 2 // HOP + y.lag_frames)) <= 2


def test_streaming_loudness_matches_the_training_feature():
    lv = StreamingLoudness(SR, 512)
    sine = np.sin(2 * np.pi * 1000 * np.arange(SR) / SR).astype(np.float32)
    assert stream(lv, sine)[-1] == pytest.approx(-3.01, abs=0.05)
    x = tone(330.0, 1.0, amp=0.1)
    offline = extract_loudness(x, FeatureSettings())[20:-20]
    streamed = stream(StreamingLoudness(SR, 512), x)[20:-20]
    n = min(len(offline), len(streamed))
    assert np.abs(np.median(streamed[:n] - offline[:n])) < 0.5


def test_downsampler_is_block_invariant_and_keeps_level():
    x = np.random.default_rng(0).standard_normal(48000)
    a = PolyphaseDownsampler(3).process(x)
    d = PolyphaseDownsampler(3)
    b = np.concatenate([d.process(x[i : i + 100]) for i in range(0, len(x), 100)])
    assert len(a) == len(b) == 16000 and np.abs(a - b).max() < 1e-5
    s = np.sin(2 * np.pi * 1000 * np.arange(48000) / 48000)
    assert np.std(PolyphaseDownsampler(3).process(s)[100:]) * np.sqrt(2) == pytest.approx(
        1, abs=0.01
    )


def follow(x, rate=SR, **kw):
    f = AudioFollower(
        sample_rate=SR, hop=HOP, input_rate=rate, stats=STATS, settings=AudioInSettings(**kw)
    )
    f0, loud = f.push(x)
    return f, f0, loud


def test_silence_gives_the_floor_and_holds_f0_without_a_jump():
    x = np.concatenate([tone(330.0, 0.6), np.zeros(8000, np.float32)])
    f, f0, loud = follow(x)
    assert loud[-20:].max() == STATS["loudness_db_min"]  # silence in, silence to the model
    assert np.all(np.abs(1200 * np.log2(f0[-20:] / 330.0)) < 10)  # f0 held, no click


def test_auto_gain_maps_plus_minus_12_db_onto_the_corpus_level():
    x = tone(330.0, 8.0, amp=0.05)
    levels = []
    for db in (-12, 0, 12):
        _, _, loud = follow(x * 10 ** (db / 20), follower_seconds=1.0)
        levels.append(np.median(loud[-100:]))
    assert max(levels) - min(levels) < 1.0  # the input level no longer shows
    assert abs(levels[1] - STATS["loudness_db_voiced_mean"]) < 1.0
    _, _, raw = follow(x * 10 ** (12 / 20), auto_gain=False)
    assert np.median(raw[-100:]) > levels[2] + 5  # without it, +12 dB passes through


def test_48k_input_clipping_and_nan_keep_streaming():
    x = tone(440.0, 1.0, amp=2.0, sr=48000)  # clips hard
    x[1000:1100] = np.nan
    f, f0, loud = follow(x, rate=48000)
    assert len(f0) == 125 and np.isfinite(f0).all() and np.isfinite(loud).all()
    assert np.median(np.abs(1200 * np.log2(f0[10:] / 440.0))) < 10


@pytest.mark.parametrize(
    "args, message",
    [
        (["--audio-file", "x.wav"], "--audio-file needs --out"),
        (["--audio-file", "x.wav", "--out", "y.wav", "--morph", "2"], "--morph: expected"),
    ],
)
def test_cli_refuses_in_one_line(tiny_run, args, message):
    done = subprocess.run(
        [sys.executable, "-m", "ddsp_morph.realtime", "--run", str(tiny_run), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.strip().startswith(f"error: {message}") and "\n" not in done.stderr.strip()


class FakeSoundDevice:
    """What sounddevice reports for a machine with a stereo USB input and a mono mic."""

    def __init__(self, refuse_rate: int | None = None):
        self.refuse_rate = refuse_rate

    def query_devices(self):
        return [
            {"name": "Speakers", "max_input_channels": 0, "default_samplerate": 48000.0},
            {"name": "USB Audio", "max_input_channels": 2, "default_samplerate": 44100.0},
            {"name": "Mic", "max_input_channels": 1, "default_samplerate": 48000.0},
        ]

    def check_input_settings(self, device, channels, samplerate, dtype):
        if samplerate == self.refuse_rate:
            raise ValueError("Invalid sample rate [PaErrorCode -9997]")


def test_input_device_choice_and_its_one_line_refusals():
    from ddsp_morph.errors import DDSPMorphError
    from ddsp_morph.realtime.live_audio import pick_input_device

    sd = FakeSoundDevice()
    assert pick_input_device(sd, "usb", 2, 48000) == 1
    assert pick_input_device(sd, "2", 1, 48000) == 2
    with pytest.raises(
        DDSPMorphError, match=r"input device 'Zoom': not found; inputs: \['USB Audio', 'Mic'\]"
    ):
        pick_input_device(sd, "Zoom", 1, 48000)
    with pytest.raises(DDSPMorphError, match="has 1 input channel\\(s\\), --input-channels 2"):
        pick_input_device(sd, "Mic", 2, 48000)
    with pytest.raises(DDSPMorphError, match="refuses 48000 Hz x 2 ch .*try --device-rate 44100"):
        pick_input_device(FakeSoundDevice(refuse_rate=48000), "USB", 2, 48000)
