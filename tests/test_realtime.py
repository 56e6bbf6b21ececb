"""The streaming engine equals the offline render of the same controls."""

from pathlib import Path

import pytest
import torch

from ddsp_morph.build import build_model
from ddsp_morph.realtime.engine import StreamingEngine, render_offline

from .conftest import cfg_for, exit_code, hydra_task


@pytest.mark.parametrize(
    "synth, latent, frames, reference",
    [
        ("harmonic_noise", "vae", 1, "corpus"),
        ("harmonic_noise_reverb", "vae", 4, "corpus"),
        ("harmonic", "none", 3, "corpus"),
        # a model that takes the level from z: live, the loudness is measured from the corpus mean
        ("harmonic_noise", "vae", 2, "clip"),
    ],
)
def test_streaming_equals_offline(
    tmp_path: Path, synth: str, latent: str, frames: int, reference: str
):
    cfg = cfg_for(
        tmp_path,
        tmp_path,
        f"synth={synth}",
        f"latent={latent}",
        "synth.reverb_seconds=0.05",
        f"model.loudness_reference={reference}",
    )
    model = build_model(cfg, n_instruments=2)
    with torch.no_grad():  # a model that is not at its initial, near-silent state
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        model.decoder.head.bias.add_(4.0)  # loud harmonics and noise: every state is audible
    n = 24
    t = torch.arange(n)
    f0 = 220.0 * 2 ** (torch.sin(t / 5.0) / 12)
    loud = -30.0 + 10 * torch.cos(t / 7.0)
    z = torch.randn(4) if latent != "none" else None
    offline = render_offline(model, f0, loud, z, seed=3)
    engine = StreamingEngine(model, frames_per_block=frames, seed=3)
    blocks = [
        engine.process(f0[i : i + frames], loud[i : i + frames], z) for i in range(0, n, frames)
    ]
    streamed = torch.cat(blocks)
    assert streamed.shape == offline.shape == (n * 128,)
    assert offline.abs().max() > 1e-3
    torch.testing.assert_close(streamed, offline, atol=1e-4, rtol=0)
    engine.reset()
    again = torch.cat(
        [engine.process(f0[i : i + frames], loud[i : i + frames], z) for i in range(0, n, frames)]
    )
    torch.testing.assert_close(again, streamed, atol=0, rtol=0)


def test_bad_block_shapes_are_named(tmp_path: Path):
    model = build_model(cfg_for(tmp_path, tmp_path, "latent=none"), n_instruments=1)
    engine = StreamingEngine(model, frames_per_block=2)
    with pytest.raises(ValueError, match=r"expected shape \(2,\)"):
        engine.process(torch.full((3,), 220.0), torch.full((3,), -30.0))


def _melody(path: Path) -> Path:
    import mido

    mid = mido.MidiFile(ticks_per_beat=480)  # 960 ticks per second at 120 bpm
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    last = 0
    events = []
    for i, note in enumerate([60, 64, 67, 72]):
        events += [
            (i * 0.5, mido.Message("note_on", note=note, velocity=110)),
            (i * 0.5 + 0.45, mido.Message("note_off", note=note)),
        ]
    events.append((0.3, mido.Message("control_change", control=1, value=127)))
    for t, msg in sorted(events, key=lambda e: e[0]):
        tr.append(msg.copy(time=int(round(t * 960)) - last))
        last = int(round(t * 960))
    mid.save(path)
    return path


def test_headless_render_follows_the_notes(tiny_run: Path, tmp_path: Path):
    import json
    import subprocess
    import sys

    import numpy as np
    import soundfile as sf
    import soxr

    from ddsp_morph.control.midi import midi_to_controls
    from ddsp_morph.data.features import FeatureSettings, extract_f0

    from .conftest import REPO

    midi = _melody(tmp_path / "m.mid")
    out = tmp_path / "out.wav"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ddsp_morph.realtime",
            "--run",
            str(tiny_run),
            "--midi-file",
            str(midi),
            "--out",
            str(out),
            "--from",
            "flute",
            "--to",
            "violin",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    audio, rate = sf.read(out, dtype="float32")
    assert rate == 48000 and out.with_suffix(".png").stat().st_size > 10_000
    stats = json.loads(out.with_suffix(".json").read_text())
    assert stats["source"] == "flute" and stats["target"] == "violin" and stats["block_ms"] == 8.0
    y = soxr.resample(audio, 48000, 16000).astype(np.float32)
    f0, periodicity = extract_f0(y, FeatureSettings())
    ctl = midi_to_controls(midi, frame_rate=125.0)
    n = min(len(f0), len(ctl["f0_hz"]))
    held = (ctl["gate"][:n] > 0) & (periodicity[:n] >= 0.5)
    assert held.sum() > 100
    cents = np.abs(1200 * np.log2(f0[:n][held] / ctl["f0_hz"][:n][held]))
    assert np.median(cents) <= 20.0


def test_bad_midi_and_missing_run_are_one_line_errors(tiny_run: Path, tmp_path: Path):
    from ddsp_morph.realtime.cli import main

    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"MThd\x00\x00\x00\x06\x00\x01")
    assert (
        exit_code(
            main,
            ["--run", str(tiny_run), "--midi-file", str(bad), "--out", str(tmp_path / "o.wav")],
        )
        == 2
    )
    assert (
        exit_code(
            main,
            [
                "--runs-dir",
                str(tmp_path / "none"),
                "--midi-file",
                str(bad),
                "--out",
                str(tmp_path / "o.wav"),
            ],
        )
        == 2
    )


def test_out_of_range_controls_are_clamped():
    import mido

    from ddsp_morph.control.midi import MidiController, MidiSettings

    s = MidiSettings(loudness_min_db=-70, loudness_max_db=-15)
    c = MidiController(s)
    c.osc("/morph", 7.0)
    assert c.morph == 1.0
    c.osc("/pc", -9.0, 9.0)
    assert c.pc == [-1.0, 1.0]
    c.osc("/loudness", 40.0)
    assert c.osc_loudness == -15
    c.osc("/f0", float("nan"))
    c.osc("/f0", "not a number")
    c.osc("/nowhere", 1.0)
    assert c.osc_f0 is None
    c.osc("/f0", 1e9)
    assert c.osc_f0 == 4000.0
    c.handle(mido.Message("pitchwheel", pitch=8191), 0.0)
    assert c.bend == pytest.approx(2.0, abs=1e-3)
    c.handle(mido.Message("note_on", note=127, velocity=127), 0.0)
    f0, loud, gate = c.frame(0.1)
    assert f0 == 4000.0 and gate == 1.0 and loud == -15  # OSC overrides win, clamped


def test_exported_module_renders_in_a_clean_process(tiny_run: Path, tmp_path: Path):
    """python -m ddsp_morph.export writes a TorchScript file that a process without
    ddsp_morph loads and plays; block by block it equals the streaming engine."""
    import subprocess
    import sys

    from .conftest import REPO

    out = tmp_path / "synth.ts"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ddsp_morph.export",
            f"run={tiny_run}",
            "frames_per_block=2",
            f"out={out}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    script = (
        "import sys, torch\n"
        f"m = torch.jit.load({str(out)!r})\n"
        "f0 = 220 * 2 ** (torch.sin(torch.arange(16) / 5.0) / 12)\n"
        "loud = -30 + 10 * torch.cos(torch.arange(16) / 7.0)\n"
        "z = torch.linspace(-1, 1, 4)\n"
        "y = torch.cat([m(f0[i:i + 2], loud[i:i + 2], z) for i in range(0, 16, 2)])\n"
        "assert 'ddsp_morph' not in sys.modules\n"
        f"torch.save(y, {str(tmp_path / 'y.pt')!r})\n"
    )
    clean = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True
    )
    assert clean.returncode == 0, clean.stderr[-3000:]
    y = torch.load(tmp_path / "y.pt")
    assert y.shape == (16 * 128,) and torch.isfinite(y).all() and y.abs().max() > 0


def test_traced_synth_equals_the_engine(tmp_path: Path):
    from types import SimpleNamespace

    from ddsp_morph.realtime.tracing import export_run

    cfg = cfg_for(
        tmp_path,
        tmp_path,
        "synth=harmonic_noise_reverb",
        "synth.noise=false",
        "synth.reverb_seconds=0.05",
    )
    model = build_model(cfg, n_instruments=1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        model.decoder.head.bias.add_(4.0)
    path = export_run(SimpleNamespace(model=model), tmp_path / "s.ts", frames_per_block=2)
    traced = torch.jit.load(str(path))
    f0 = 220 * 2 ** (torch.sin(torch.arange(20) / 5.0) / 12)
    loud = -30 + 10 * torch.cos(torch.arange(20) / 7.0)
    z = torch.randn(4)
    engine = StreamingEngine(model, frames_per_block=2)
    with torch.no_grad():
        a = torch.cat([traced(f0[i : i + 2], loud[i : i + 2], z) for i in range(0, 20, 2)])
    b = torch.cat([engine.process(f0[i : i + 2], loud[i : i + 2], z) for i in range(0, 20, 2)])
    assert b.abs().max() > 0.1
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_polyphase_upsampler_streams_and_suppresses_images():
    import numpy as np

    from ddsp_morph.dsp.resample import PolyphaseUpsampler

    rng = np.random.default_rng(0)
    x = rng.standard_normal(16000).astype(np.float32)
    whole = PolyphaseUpsampler(3).process(x)
    up = PolyphaseUpsampler(3)
    blocks = np.concatenate([up.process(x[i : i + 128]) for i in range(0, 16000, 128)])
    np.testing.assert_allclose(blocks, whole, atol=1e-6)
    assert up.delay_samples / 48000 * 1000 < 1.0  # under a millisecond
    tone = np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000).astype(np.float32)
    y = PolyphaseUpsampler(3).process(tone)[1000:]
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    freqs = np.fft.rfftfreq(len(y), 1 / 48000)
    peak = spec[np.argmin(np.abs(freqs - 1000))]
    image = spec[np.argmin(np.abs(freqs - 15000))]  # 16 kHz - 1 kHz
    assert 20 * np.log10(image / peak) < -50
    assert abs(np.abs(y).max() - 1.0) < 0.02  # unity gain in the passband


@pytest.mark.parametrize("frames", [1, 4])
def test_decoder_step_equals_the_decoder_as_z_moves(tmp_path: Path, frames: int):
    """The engine's decoder (split projections, cached latent share, written-out GRU cell)
    against Decoder.forward over a sequence whose z changes every few blocks and per frame."""
    from ddsp_morph.realtime.engine import DecoderStep

    cfg = cfg_for(tmp_path, tmp_path, "latent=vae")
    model = build_model(cfg, n_instruments=1).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    n = 8 * frames
    g = torch.Generator().manual_seed(5)
    inputs = {k: torch.randn(1, n, 1, generator=g) for k in ("f0", "loudness")}
    z_steps = torch.randn(3, 4, generator=g)
    z = z_steps[(torch.arange(n) // 5) % 3]  # moves every 5 frames, also inside a block
    inputs["z"] = z[None]
    with torch.no_grad():
        ref = model.decoder(inputs)
        step = DecoderStep(model.decoder)
        hidden, outs = None, []
        for i in range(0, n, frames):
            block = {k: v[0, i : i + frames] for k, v in inputs.items()}
            y, hidden = step(block, hidden)
            outs.append(step.split(y.unsqueeze(0)))
    for name in ref:
        got = torch.cat([o[name] for o in outs], dim=1)
        torch.testing.assert_close(got, ref[name], atol=1e-5, rtol=1e-5)


def test_the_fast_and_torch_engines_render_a_midi_file_alike(tiny_run: Path, tmp_path: Path):
    import numpy as np

    from ddsp_morph.errors import DDSPMorphError
    from ddsp_morph.realtime.performer import PerformerSettings, render_midi_file
    from ddsp_morph.runs import load_run

    run = load_run(tiny_run, checkpoint="last")
    midi = _melody(tmp_path / "m.mid")
    renders = {}
    for engine in ("fast", "torch"):
        s = PerformerSettings(device_rate=16000, engine=engine)
        renders[engine], stats = render_midi_file(run, midi, s)
        assert stats["blocks"] * 128 == len(renders[engine])
    a, b = renders["fast"], renders["torch"]
    # different white-noise generators (numpy / torch): compare the per-block energy
    ea = np.sqrt(np.mean(a.reshape(-1, 128) ** 2, axis=1))
    eb = np.sqrt(np.mean(b.reshape(-1, 128) ** 2, axis=1))
    assert ea.max() > 1e-3
    assert np.corrcoef(ea, eb)[0, 1] > 0.99
    assert np.abs(20 * np.log10((ea.mean() + 1e-9) / (eb.mean() + 1e-9))) < 0.5
    with pytest.raises(DDSPMorphError, match="engine: expected"):
        render_midi_file(run, midi, PerformerSettings(engine="jax"))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--frames-per-block", "0"], "error: --frames-per-block: expected an integer >= 1"),
        (["--device-rate", "0"], "error: --device-rate: expected an integer >= 8000"),
        (["--device-rate", "-44100"], "error: --device-rate: expected an integer >= 8000"),
        (["--seconds", "0"], "error: --seconds: expected a duration > 0, got 0.0"),
        (
            ["--activations", "int16", "--weights", "float32"],
            "error: --activations int16: needs --weights int16, got float32",
        ),
    ],
)
def test_bad_realtime_settings_are_one_line(tiny_run: Path, tmp_path: Path, capsys, args, message):
    from ddsp_morph.realtime.cli import main

    out = tmp_path / "o.wav"
    code = exit_code(
        main, ["--run", str(tiny_run), "--midi-file", "x.mid", "--out", str(out), *args]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(message), err
    assert not out.exists()


def test_a_context_model_is_refused_by_the_synth_and_the_export(
    tiny_corpus: Path, tmp_path: Path, capsys
):
    from ddsp_morph.export import main as export_main
    from ddsp_morph.realtime.cli import main
    from ddsp_morph.training.fit import train

    run = tmp_path / "mfcc"
    train(
        cfg_for(
            tiny_corpus,
            run,
            "conditioning=mfcc",
            "trainer.max_steps=2",
            "n_audio_examples=1",
            "morph.enabled=false",
        )
    )
    capsys.readouterr()
    midi = _melody(tmp_path / "m.mid")
    assert (
        exit_code(
            main, ["--run", str(run), "--midi-file", str(midi), "--out", str(tmp_path / "o.wav")]
        )
        == 2
    )
    for extra in ([], ["frames_per_block=abc"], ["frames_per_block=0"]):
        assert exit_code(export_main.__wrapped__, hydra_task("export", f"run={run}", *extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    want = "this model is also conditioned on ['mfcc']; the realtime synth and the export"
    assert len(err) == 4 and want in err[0] and want in err[1], err
    assert err[2] == "error: frames_per_block: expected an integer >= 1 and <= 64, got 'abc'"
    assert err[3] == "error: frames_per_block: expected an integer >= 1 and <= 64, got 0"
    assert not (run / "export").exists() and not (tmp_path / "o.wav").exists()


def test_notes_outside_the_trained_range_warn_once(tiny_run: Path, tmp_path: Path, caplog):
    import logging

    import mido

    from ddsp_morph.realtime.performer import PerformerSettings, render_midi_file
    from ddsp_morph.runs import load_run

    mid = mido.MidiFile(ticks_per_beat=480)
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    for note in (72, 127, 127, 72):
        tr.append(mido.Message("note_on", note=note, velocity=100, time=0))
        tr.append(mido.Message("note_off", note=note, time=240))
    mid.save(tmp_path / "high.mid")
    run = load_run(tiny_run, checkpoint="last")
    with caplog.at_level(logging.WARNING, logger="ddsp_morph.realtime.performer"):
        render_midi_file(run, tmp_path / "high.mid", PerformerSettings(engine="torch"))
    warned = [r.getMessage() for r in caplog.records if "outside the f0 range" in r.getMessage()]
    assert len(warned) == 1 and "12544 Hz" in warned[0] and "trained on (" in warned[0]
    caplog.clear()
    tr[:] = tr[:2]  # C5 only: in range, no warning
    mid.save(tmp_path / "ok.mid")
    with caplog.at_level(logging.WARNING, logger="ddsp_morph.realtime.performer"):
        render_midi_file(run, tmp_path / "ok.mid", PerformerSettings(engine="torch"))
    assert not [r for r in caplog.records if "outside the f0 range" in r.getMessage()]


@pytest.mark.parametrize("virtual", [True, False])
def test_no_midi_subsystem_is_one_line(monkeypatch, virtual: bool):
    import mido

    from ddsp_morph.errors import DDSPMorphError
    from ddsp_morph.realtime.live_midi import open_midi_input

    def broken(*args, **kwargs):
        raise SystemError("MidiInAlsa::initialize: error creating ALSA sequencer client object.")

    monkeypatch.setattr(mido, "open_input", broken)
    monkeypatch.setattr(mido, "get_input_names", lambda: ["Keyboard"])
    with pytest.raises(DDSPMorphError) as e:
        open_midi_input(None, virtual, print)
    msg = str(e.value)
    assert "\n" not in msg and "ALSA sequencer" in msg and "--midi-file in.mid --out out.wav" in msg


def test_a_run_away_from_its_corpus_still_plays_with_the_default_range(tmp_path: Path, caplog):
    import logging

    from ddsp_morph.control.midi import MidiSettings
    from ddsp_morph.sources import corpus_midi_settings

    with caplog.at_level(logging.WARNING, logger="ddsp_morph.sources"):
        s = corpus_midi_settings(tmp_path / "gone")
    assert s == MidiSettings() and "stats.json: not readable here" in caplog.text
