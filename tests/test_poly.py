"""Polyphony: voice allocation, MPE per-note control, and chords rendered by the synth."""

from __future__ import annotations

from pathlib import Path

import mido
import numpy as np
import pytest

from ddsp_morph.control.midi import MidiSettings
from ddsp_morph.control.voices import PolyController


def on(note: int, channel: int = 0, velocity: int = 100):
    return mido.Message("note_on", note=note, velocity=velocity, channel=channel)


def off(note: int, channel: int = 0):
    return mido.Message("note_off", note=note, channel=channel)


def cc(control: int, value: int, channel: int = 0):
    return mido.Message("control_change", control=control, value=value, channel=channel)


def f0_of(pc: PolyController, i: int, t: float) -> float:
    return pc.controllers[i].frame(t)[0]


def test_voices_are_taken_free_first_then_the_oldest_released_then_the_quietest():
    pc = PolyController(3, MidiSettings())
    for k, note in enumerate((60, 64, 67)):
        pc.handle(on(note), 0.1 * k)
    assert [v.note for v in pc.voices] == [60, 64, 67]
    pc.handle(off(64), 0.5)
    pc.handle(off(60), 0.6)
    pc.handle(on(72), 0.7)  # none free: the voice released longest ago (64's)
    assert [v.note for v in pc.voices] == [60, 72, 67] and pc.voices[1].steal is not None
    pc.handle(on(74), 0.8)  # then 60's, released after it
    assert [v.note for v in pc.voices] == [74, 72, 67]
    for i, level in enumerate((-30.0, -10.0, -50.0)):
        pc.voices[i].level_db = level
    pc.handle(on(76), 0.9)  # every voice held: the quietest goes
    assert [v.note for v in pc.voices] == [74, 72, 76]
    assert all(f0_of(pc, i, 1.0) > 0 for i in range(3))


def test_the_pedal_holds_voices_until_it_is_lifted():
    pc = PolyController(2, MidiSettings())
    pc.handle(cc(64, 127), 0.0)
    pc.handle(on(60), 0.0)
    pc.handle(off(60), 0.2)
    assert pc.voices[0].released is None and pc.controllers[0].frame(0.3)[2] == 1.0
    pc.handle(cc(64, 0), 0.4)
    assert pc.voices[0].released is not None and pc.controllers[0].frame(0.5)[2] == 0.0


def test_an_mpe_bend_moves_only_its_own_note_and_rpn_0_sets_the_range():
    pc = PolyController(4, MidiSettings(), mpe=True)
    pc.handle(on(60, channel=1), 0.0)
    pc.handle(on(64, channel=2), 0.0)
    before = [f0_of(pc, i, 0.1) for i in range(2)]
    pc.handle(mido.Message("pitchwheel", pitch=8191, channel=1), 0.2)  # +48 semitones at most
    after = [f0_of(pc, i, 0.3) for i in range(2)]
    cents = 1200 * np.log2(np.asarray(after) / np.asarray(before))
    assert abs(cents[0] - 48 * 100 * 8191 / 8192) < 1 and abs(cents[1]) < 5
    for control, value in ((101, 0), (100, 0), (6, 2)):  # RPN 0 on channel 3: ±2 semitones
        pc.handle(cc(control, value, channel=2), 0.4)
    pc.handle(mido.Message("pitchwheel", pitch=-8192, channel=2), 0.5)
    assert abs(1200 * np.log2(f0_of(pc, 1, 0.6) / before[1]) + 200) < 1
    assert abs(1200 * np.log2(f0_of(pc, 0, 0.6) / after[0])) < 5


def test_mpe_cc74_and_pressure_move_only_their_voice():
    pc = PolyController(4, MidiSettings(), mpe=True)
    pc.handle(on(60, channel=1), 0.0)
    pc.handle(on(64, channel=2), 0.0)
    pc.handle(cc(1, 0), 0.0)  # the global morph at 0
    pc.handle(cc(74, 127, channel=2), 0.1)
    assert pc.voices[1].morph == 1.0 and pc.voices[0].morph is None and pc.morph == 0.0
    pc.handle(mido.Message("aftertouch", value=127, channel=1), 0.2)
    s = pc.settings
    assert pc.controllers[0].frame(0.3)[1] == pytest.approx(s.loudness_max_db)
    assert pc.controllers[1].frame(0.3)[1] < s.loudness_max_db


def _midi(path: Path, notes: list[tuple[float, float, int]], seconds: float) -> Path:
    """Notes as (start s, end s, note): a type-0 file at 960 ticks per second."""
    events = []
    for t0, t1, note in notes:
        events += [(t0, on(note)), (t1, off(note))]
    events.sort(key=lambda e: (e[0], e[1].type == "note_on"))
    mid = mido.MidiFile(ticks_per_beat=480)
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    now = 0.0
    for t, msg in events:
        tr.append(msg.copy(time=round((t - now) * 960)))
        now = t
    tr.append(mido.MetaMessage("end_of_track", time=round((seconds - now) * 960)))
    mid.save(path)
    return path


def _render(run: Path, midi: Path, voices: int, engine: str = "torch") -> np.ndarray:
    from ddsp_morph.realtime.performer import PerformerSettings, render_midi_file
    from ddsp_morph.runs import load_run

    s = PerformerSettings(engine=engine, device_rate=16000, voices=voices)
    audio, _ = render_midi_file(load_run(run, checkpoint="last"), midi, s)
    return audio


def _peak_cents(x: np.ndarray, hz: float, rate: int = 16000) -> tuple[float, float]:
    """(cents off ``hz`` of the spectral peak within ±60 cents of it, its height over the
    median of the 80-1200 Hz band)."""
    n = 8 * len(x)
    mag = np.abs(np.fft.rfft(x * np.hanning(len(x)), n))
    freqs = np.fft.rfftfreq(n, 1 / rate)
    band = (freqs > hz * 2 ** (-60 / 1200)) & (freqs < hz * 2 ** (60 / 1200))
    k = np.flatnonzero(band)[np.argmax(mag[band])]
    ref = np.median(mag[(freqs > 80) & (freqs < 1200)])
    return 1200 * np.log2(freqs[k] / hz), mag[k] / ref


@pytest.mark.parametrize("engine", ["torch", "fast"])
def test_a_three_note_chord_holds_all_three_notes(tiny_run: Path, tmp_path: Path, engine: str):
    chord = {60: 261.63, 64: 329.63, 67: 392.0}
    midi = _midi(tmp_path / "chord.mid", [(0.1, 1.9, n) for n in chord], 2.2)
    audio = _render(tiny_run, midi, voices=8, engine=engine)
    for w0 in (0.4, 0.9, 1.4):  # the whole time the chord is held
        x = audio[int(w0 * 16000) : int((w0 + 0.4) * 16000)]
        for note, hz in chord.items():
            cents, height = _peak_cents(x, hz)
            assert abs(cents) <= 20 and height > 5, (w0, note, cents, height)


def test_a_voice_alone_equals_the_mono_render(tiny_run: Path, tmp_path: Path):
    """From its note-on (a voice starts from a fresh state, as the mono synth does at t = 0)
    to the end of its release, after which the voice is free and no longer rendered."""
    midi = _midi(tmp_path / "one.mid", [(0.0, 0.8, 62)], 1.2)
    mono = _render(tiny_run, midi, voices=1)
    poly = _render(tiny_run, midi, voices=8)
    assert len(mono) == len(poly) and np.abs(mono).max() < 0.7  # below the limiter's knee
    sounding = int(0.85 * 16000)
    assert np.abs(poly[:sounding]).max() > 0.01
    assert np.allclose(poly[:sounding], mono[:sounding], atol=1e-5)


def test_a_ninth_note_steals_without_a_click(tiny_run: Path, tmp_path: Path):
    notes = [(0.1 + 0.05 * k, 1.5, 60 + 2 * k) for k in range(8)] + [(1.0, 1.5, 79)]
    midi = _midi(tmp_path / "nine.mid", notes, 1.8)
    audio = _render(tiny_run, midi, voices=8)
    assert np.abs(audio).max() < 1.0  # the sum of eight voices never clips
    steal = int(1.0 * 16000)
    step = np.abs(np.diff(audio))
    around = step[steal - 256 : steal + 512].max()
    before = step[steal - 1600 : steal - 256].max()
    assert around <= 1.5 * before, (around, before)


def test_a_chord_with_one_voice_plays_one_note(tiny_run: Path, tmp_path: Path):
    """The monophonic synth (--voices 1) keeps last-note priority."""
    chord = {60: 261.63, 67: 392.0}
    midi = _midi(tmp_path / "two.mid", [(0.1, 1.2, 60), (0.1, 1.2, 67)], 1.5)
    x = _render(tiny_run, midi, voices=1)[int(0.4 * 16000) : int(0.9 * 16000)]
    heights = {n: _peak_cents(x, hz)[1] for n, hz in chord.items()}
    assert heights[67] > 5 * heights[60], heights


@pytest.mark.slow
def test_the_cli_plays_a_chord_file_with_voices_and_refuses_zero(tiny_run: Path, tmp_path: Path):
    import subprocess
    import sys

    import soundfile as sf

    from .conftest import REPO

    midi = _midi(tmp_path / "c.mid", [(0.1, 1.0, 60), (0.1, 1.0, 67)], 1.3)
    base = [sys.executable, "-m", "ddsp_morph.realtime", "--run", str(tiny_run)]
    base += ["--midi-file", str(midi), "--engine", "torch", "--device-rate", "16000"]
    out = tmp_path / "c.wav"
    done = subprocess.run(
        base + ["--out", str(out), "--voices", "4"], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    x, rate = sf.read(out, dtype="float32")
    x = x[int(0.4 * rate) : int(0.9 * rate)]
    assert all(_peak_cents(x, hz)[1] > 5 for hz in (261.63, 392.0))
    bad = subprocess.run(
        base + ["--out", str(out), "--voices", "0"], cwd=REPO, capture_output=True, text=True
    )
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "error: --voices: expected an integer >= 1 and <= 64, got 0"
    ]


def test_a_split_and_a_layer_set_each_voice_on_the_path():
    split = PolyController(4, MidiSettings(), split=60)
    split.handle(on(48), 0.0)
    split.handle(on(72), 0.0)
    assert [(v.note, v.morph) for v in split.voices[:2]] == [(48, 0.0), (72, 1.0)]
    layer = PolyController(4, MidiSettings(), layer=True)
    layer.handle(on(60), 0.0)
    assert [(v.note, v.morph) for v in layer.voices[:2]] == [(60, 0.0), (60, 1.0)]
    layer.handle(off(60), 0.5)
    assert all(v.released is not None for v in layer.voices[:2])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--split", "c4:violin,flute"], "error: --split: expected NOTE:LOW,HIGH"),
        (["--split", "60:violin"], "error: --split: expected two instruments A,B"),
        (["--layer", "violin"], "error: --layer: expected two instruments A,B"),
    ],
)
def test_a_bad_split_or_layer_is_one_line(tiny_run: Path, tmp_path: Path, capsys, args, message):
    from ddsp_morph.realtime.cli import main

    from .conftest import exit_code

    out = tmp_path / "o.wav"
    code = exit_code(
        main, ["--run", str(tiny_run), "--midi-file", "x.mid", "--out", str(out), *args]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(message), err


def _perform(run: Path, events: list, seconds: float, **settings):
    """Drive the compiled polyphonic synth block by block with (time, message) events, as the
    live loop does; returns (the mix, each voice slot's own dry samples)."""
    from ddsp_morph.realtime.performer import PerformerSettings
    from ddsp_morph.realtime.poly import PolyPerformer
    from ddsp_morph.runs import load_run

    s = PerformerSettings(device_rate=16000, **settings)
    p = PolyPerformer(load_run(run, checkpoint="last"), s, n_voices=s.voices, mpe=s.mpe)
    events = sorted(events, key=lambda e: e[0])
    mix, voices = [], []
    while p.t < seconds:
        while events and events[0][0] <= p.t:
            p.controller.handle(events.pop(0)[1], p.t)
        mix.append(p.next_block())
        voices.append(p.bank.voices_out.copy())
    return np.concatenate(mix), np.concatenate(voices, axis=1)


def _pitchwheel(semitones: float, channel: int, bend_range: float = 48.0):
    return mido.Message("pitchwheel", pitch=round(8191 * semitones / bend_range), channel=channel)


def test_an_mpe_bend_moves_only_its_own_note_in_the_audio(tiny_run: Path):
    """Three notes on three MPE member channels; channel 3's bend takes its note up two
    semitones. In the rendered audio that note's f0 moves 200 cents; the others stay within
    5 cents of where they were."""
    chord = {(60, 1): 261.63, (64, 2): 329.63, (67, 3): 392.0}
    events = [(0.05, on(n, channel=c)) for n, c in chord]
    events += [(1.0, _pitchwheel(2.0, channel=2))]
    events += [(2.0, off(n, channel=c)) for n, c in chord]
    mix, _ = _perform(tiny_run, events, 2.2, voices=8, mpe=True)
    before = mix[int(0.4 * 16000) : int(0.9 * 16000)]
    after = mix[int(1.3 * 16000) : int(1.8 * 16000)]
    for (note, channel), hz in chord.items():
        c0, h0 = _peak_cents(before, hz)
        assert abs(c0) <= 20 and h0 > 5, (note, c0, h0)
        if channel == 2:
            c1, h1 = _peak_cents(after, hz * 2 ** (2 / 12))
            assert abs(c1) <= 20 and h1 > 5, (note, c1, h1)
            assert _peak_cents(after, hz)[1] < 0.5 * h0  # it left its old pitch
        else:
            c1, h1 = _peak_cents(after, hz)
            assert abs(c1 - c0) <= 5 and h1 > 5, (note, c0, c1)


@pytest.mark.slow
def test_cc74_on_one_mpe_channel_moves_only_that_voice_to_the_other_timbre(two_timbre_run):
    """Two notes held on two MPE channels on the path mellow (0) -> reedy (1); CC74 at the
    top on the second channel. Each voice rendered apart (its own samples) and judged by the
    corpus classifier: the moved voice is heard as reedy, the other stays mellow; before the
    CC both are mellow."""
    from ddsp_morph.evaluation.classifier import corpus_classifier

    corpus, run = two_timbre_run
    clf = corpus_classifier(corpus)
    events = [(0.05, on(57, channel=1)), (0.05, on(64, channel=2))]
    events += [(1.5, cc(74, 127, channel=2))]
    _, voices = _perform(run, events, 3.0, voices=4, mpe=True, source="mellow", target="reedy")
    # voice slots 0 and 1 took the two notes, in order
    held = {"still": voices[0], "moved": voices[1]}
    early = {k: clf.proba_of(v[int(0.3 * 16000) : int(1.4 * 16000)]) for k, v in held.items()}
    late = {k: clf.proba_of(v[int(1.8 * 16000) : int(2.9 * 16000)]) for k, v in held.items()}
    assert early["still"]["mellow"] > 0.5 and early["moved"]["mellow"] > 0.5, early
    assert late["moved"]["reedy"] > 0.5, late
    assert late["still"]["mellow"] > 0.5, late
