"""Latent paths, MIDI controls, the instrument classifier, and the interpolation CLI."""

import json
import subprocess
import sys
from pathlib import Path

import mido
import numpy as np
import pandas as pd
import pytest

from ddsp_morph.control.midi import MidiSettings, midi_to_controls
from ddsp_morph.errors import DDSPMorphError
from ddsp_morph.evaluation.classifier import InstrumentClassifier
from ddsp_morph.evaluation.latent_eval import r_squared
from ddsp_morph.latent.geometry import path_points, slerp

from .conftest import REPO

FRAME_RATE = 125.0


def test_slerp_and_linear_paths():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 2.0])
    np.testing.assert_allclose(slerp(a, b, 0.0), a, atol=1e-12)
    np.testing.assert_allclose(slerp(a, b, 1.0), b, atol=1e-12)
    mid = slerp(a, b, 0.5)
    np.testing.assert_allclose(mid / np.linalg.norm(mid), [2**-0.5, 2**-0.5], atol=1e-12)
    assert np.linalg.norm(mid) == pytest.approx(1.5)
    lin = path_points(a, b, 5, "linear")
    np.testing.assert_allclose(lin[2], [0.5, 1.0])
    np.testing.assert_allclose(np.diff(lin, axis=0), np.tile((b - a) / 4, (4, 1)))
    with pytest.raises(DDSPMorphError, match="path: expected"):
        path_points(a, b, 5, "zigzag")
    assert r_squared(np.arange(5.0), 3 * np.arange(5.0) + 1) == pytest.approx(1.0)


def write_midi(path: Path) -> Path:
    mid = mido.MidiFile(ticks_per_beat=480)  # 120 bpm: 960 ticks per second
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    tick = lambda s: int(round(s * 960))  # noqa: E731
    events = [
        (0.0, mido.Message("note_on", note=69, velocity=100)),
        (0.2, mido.Message("note_on", note=72, velocity=100)),
        (0.3, mido.Message("pitchwheel", pitch=4096)),
        (0.4, mido.Message("note_off", note=72)),
        (0.45, mido.Message("pitchwheel", pitch=0)),
        (0.5, mido.Message("control_change", control=1, value=127)),
        (0.6, mido.Message("note_off", note=69)),
    ]
    last = 0
    for t, msg in events:
        tr.append(msg.copy(time=tick(t) - last))
        last = tick(t)
    mid.save(path)
    return path


def test_midi_to_controls_last_note_priority_bend_cc_and_release(tmp_path: Path):
    c = midi_to_controls(
        write_midi(tmp_path / "a.mid"), frame_rate=FRAME_RATE, settings=MidiSettings()
    )
    at = lambda s: int(s * FRAME_RATE)  # noqa: E731
    assert c["f0_hz"][at(0.1)] == pytest.approx(440.0)
    assert c["f0_hz"][at(0.25)] == pytest.approx(523.2511, rel=1e-5)  # the newer note wins
    assert c["f0_hz"][at(0.35)] == pytest.approx(554.3653, rel=1e-5)  # + 1 semitone of bend
    assert c["f0_hz"][at(0.5)] == pytest.approx(440.0)  # back to the held note, bend reset
    assert c["morph"][at(0.4)] == 0.0 and c["morph"][at(0.55)] == 1.0
    assert c["gate"][at(0.55)] == 1.0 and c["gate"][at(0.7)] == 0.0
    s = MidiSettings()
    assert c["loudness_db"][at(0.01)] < c["loudness_db"][at(0.1)]  # attack
    assert c["loudness_db"][at(0.7)] < c["loudness_db"][at(0.55)]  # release
    assert c["loudness_db"][-1] == s.loudness_min_db  # silent after the release
    assert c["loudness_db"].max() <= s.loudness_max_db


def test_malformed_midi_is_one_clear_error(tmp_path: Path):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"MThd\x00\x00\x00\x06garbage")
    with pytest.raises(DDSPMorphError, match=rf"^{bad}: not a readable MIDI file"):
        midi_to_controls(bad, frame_rate=FRAME_RATE)
    with pytest.raises(DDSPMorphError, match="no such MIDI file"):
        midi_to_controls(tmp_path / "missing.mid", frame_rate=FRAME_RATE)


def test_classifier_learns_and_round_trips(tmp_path: Path):
    rng = np.random.default_rng(0)
    sr, t = 16000, np.arange(16000) / 16000
    clips, labels = [], []
    for i in range(12):
        f = 200 + 40 * i
        clips.append(np.sin(2 * np.pi * f * t) * 0.3)
        labels.append("sine")
        clips.append(rng.standard_normal(sr) * 0.1)
        labels.append("noise")
    from ddsp_morph.evaluation.classifier import clip_features

    x = np.stack([clip_features(c.astype(np.float32)) for c in clips])
    clf = InstrumentClassifier.fit(x, labels)
    assert clf.classes == ["noise", "sine"]
    assert clf.proba_of(np.sin(2 * np.pi * 330 * t).astype(np.float32) * 0.2)["sine"] > 0.9
    clf.save(tmp_path / "c.npz")
    back = InstrumentClassifier.load(tmp_path / "c.npz")
    np.testing.assert_allclose(back.predict_proba(x), clf.predict_proba(x))


@pytest.mark.slow
def test_interpolate_cli_from_an_example_and_from_midi(
    tiny_run: Path, tiny_corpus: Path, tmp_path: Path
):
    example = pd.read_csv(tiny_corpus / "manifest.csv").query(
        "split == 'test' and instrument == 'violin'"
    )
    base = [
        sys.executable,
        "-m",
        "ddsp_morph.interpolate",
        f"run={tiny_run}",
        "from=violin",
        "to=flute",
        "steps=3",
    ]
    out = tmp_path / "interp"
    done = subprocess.run(
        [
            *base,
            f"source={example['example_id'].iloc[0]}",
            f"out_dir={out}",
            f"classifier={tmp_path / 'clf.npz'}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    df = pd.read_csv(out / "metrics.csv")
    assert list(df["alpha"]) == [0.0, 0.5, 1.0]
    assert ((df["p_target"] >= 0) & (df["p_target"] <= 1)).all()
    summary = json.loads((out / "summary.json").read_text())
    for key in (
        "p_target_spearman",
        "p_target_max_jump",
        "centroid_r2",
        "hnr_r2",
        "f0_cents_median_worst",
    ):
        assert key in summary
    assert (out / "strip.png").stat().st_size > 10_000 and len(list(out.glob("step*.wav"))) == 3
    assert (tmp_path / "clf.npz").exists() and json.loads((tmp_path / "clf.json").read_text())[
        "n_test"
    ] > 0
    midi_out = tmp_path / "interp_midi"
    done = subprocess.run(
        [
            *base,
            f"source={write_midi(tmp_path / 'm.mid')}",
            "path=slerp",
            f"out_dir={midi_out}",
            f"classifier={tmp_path / 'clf.npz'}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(pd.read_csv(midi_out / "metrics.csv")) == 3
    bad = subprocess.run(
        [*base, "source=nope_0000_0", f"out_dir={tmp_path / 'x'}"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert (
        bad.returncode == 2
        and "source 'nope_0000_0': neither a MIDI file nor an example id" in bad.stderr
    )


def test_interpolate_to_an_instrument_the_run_does_not_know_is_one_line(
    tiny_corpus: Path, tmp_path: Path
):
    from ddsp_morph.training.fit import train

    from .conftest import cfg_for

    run = tmp_path / "violin_only"
    train(
        cfg_for(
            tiny_corpus,
            run,
            "trainer.max_steps=2",
            "data.train_instruments=[violin]",
            "n_audio_examples=1",
        )
    )
    out = tmp_path / "interp"
    done = subprocess.run(
        [sys.executable, "-m", "ddsp_morph.interpolate", f"run={run}", "from=violin", "to=flute"]
        + ["source=melody.mid", f"out_dir={out}", f"classifier={tmp_path / 'clf.npz'}"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
    assert errors == ["error: instrument 'flute': no centroid; this run knows ['violin']"]
    assert not (tmp_path / "clf.npz").exists()  # refused before the classifier was trained
    assert not list(out.glob("*.wav")) and not (out / "metrics.csv").exists()
