"""Host exports: the nn~ file (its method contract at nn~'s shapes and buffer sizes, streamed
output equal to the engine's) and the Neutone file."""

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ddsp_morph.build import build_model
from ddsp_morph.dsp.resample import PolyphaseUpsampler
from ddsp_morph.realtime.engine import StreamingEngine
from ddsp_morph.realtime.nn_tilde import export_nn_tilde

from .conftest import cfg_for


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory: pytest.TempPathFactory):
    """A deterministic film VAE synth (harmonic + reverb, no noise: its output is exact), with
    two instrument centroids and a corpus stats.json, as a loaded run presents them."""
    root = tmp_path_factory.mktemp("host")
    cfg = cfg_for(
        root, root, "synth=harmonic_noise_reverb", "synth.noise=false", "synth.reverb_seconds=0.05"
    )
    torch.manual_seed(0)
    model = build_model(cfg, n_instruments=2).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        model.decoder.head.bias.add_(4.0)
    z = model.encoder.z_dim
    centroids = {"flute": [0.8] * z, "violin": [-0.8] * z}
    corpus = root / "corpus"
    corpus.mkdir()
    stats = {"loudness_db_voiced_mean": -25.0, "loudness_db_min": -90.0, "f0_hz_voiced_p005": 150.0}
    (corpus / "stats.json").write_text(json.dumps(stats))
    cfg.data.corpus_dir = str(corpus)
    return SimpleNamespace(
        model=model, cfg=cfg, extra={"latent": {"centroids": centroids}}, checkpoint_path="x"
    )


def test_nn_tilde_contract_and_streaming_equals_the_engine(fake_run, tmp_path: Path):
    out = tmp_path / "synth.ts"
    meta = export_nn_tilde(fake_run, out, host_rate=48000, source="violin", target="flute")
    m = torch.jit.load(str(out))
    # what nn~ reads
    assert m.get_methods() == ["forward", "audio"]
    assert m.forward_params.tolist() == [3, 1, 1, 1] and m.audio_params.tolist() == [2, 1, 1, 1]
    assert len(m.forward_input_labels) == 3 and len(m.forward_output_labels) == 1
    assert len(m.audio_input_labels) == 2 and m.get_sample_rate() == 48000
    assert m.get_instruments() == ["flute", "violin"] and m.centroids.shape[0] == 2
    assert m.get_attributes() == [] and json.loads(out.with_suffix(".json").read_text()) == meta
    # controls that move: f0 glides, loudness swells, morph sweeps violin -> flute
    n_frames = 60
    t = np.arange(n_frames * 384) / 48000
    f0 = 220 * 2 ** (np.sin(2 * np.pi * 0.7 * t) / 12)
    loud = -30 + 8 * np.cos(2 * np.pi * 0.5 * t)
    morph = np.linspace(0, 1, len(t))
    x = torch.from_numpy(np.stack([f0, loud, morph]).astype(np.float32))[None]
    # the reference: the engine frame by frame (controls = the frame's mean), upsampled
    engine = StreamingEngine(fake_run.model, frames_per_block=1)
    up = PolyphaseUpsampler(3)
    ref = []
    for k in range(n_frames):
        c = x[0, :, k * 384 : (k + 1) * 384].mean(-1)
        with torch.no_grad():
            y = engine.process(c[:1], c[1:2], m.z_at(c[2]))
        ref.append(up.process(y.numpy()))
    ref = np.concatenate(ref)
    for n in (128, 384, 1000, 4096):  # nn~'s buffer sizes, and one that divides nothing
        m.reset()
        out_blocks = [m(x[:, :, i : i + n]) for i in range(0, x.shape[-1], n)]
        assert all(
            b.shape == (1, 1, min(n, x.shape[-1] - i))
            for b, i in zip(out_blocks, range(0, x.shape[-1], n), strict=True)
        )
        y = torch.cat(out_blocks, -1)[0, 0].numpy()
        assert np.abs(y[:384]).max() == 0.0  # one frame of latency, then the stream
        np.testing.assert_allclose(y[384:], ref[: len(y) - 384], atol=2e-5)
    assert np.abs(ref).max() > 0.05


def _engine_render(model, x: torch.Tensor, z_at) -> np.ndarray:
    """One voice's controls [3, n] at 48 kHz through the reference engine, frame by frame
    (controls = the frame's mean), upsampled: what the export must play for it."""
    engine = StreamingEngine(model, frames_per_block=1)
    up = PolyphaseUpsampler(3)
    out = []
    for k in range(x.shape[-1] // 384):
        c = x[:, k * 384 : (k + 1) * 384].mean(-1)
        with torch.no_grad():
            out.append(up.process(engine.process(c[:1], c[1:2], z_at(c[2])).numpy()))
    return np.concatenate(out)


def test_nn_tilde_mc_channels_are_independent_voices(fake_run, tmp_path: Path):
    """mc.nn~: a batch of channels, each its own voice and state: three channels play three
    different notes (one also morphs), each equal to its mono render (the export's fourth
    voice idles); more channels than the export's voices are refused."""
    out = tmp_path / "mc.ts"
    meta = export_nn_tilde(
        fake_run, out, host_rate=48000, source="violin", target="flute", voices=4
    )
    m = torch.jit.load(str(out))
    assert m.get_voices() == 4 and meta["voices"] == 4 and "mc.nn~" in meta["max_patch"]
    n = 40 * 384
    t = np.arange(n) / 48000
    a = np.stack([np.full(n, 220.0), -30 + 6 * np.cos(2 * np.pi * t), np.zeros(n)])
    b = np.stack([330 * 2 ** (np.sin(2 * np.pi * t) / 12), np.full(n, -28.0), np.linspace(0, 1, n)])
    c3 = np.stack([np.full(n, 440.0), np.full(n, -35.0), np.full(n, 0.7)])
    x = torch.from_numpy(np.stack([a, b, c3]).astype(np.float32))  # [3 channels, 3, n]
    refs = [_engine_render(fake_run.model, x[c], m.z_at) for c in range(3)]
    for size in (384, 1000):
        m.reset()
        y = torch.cat([m(x[:, :, i : i + size]) for i in range(0, n, size)], -1)[:, 0].numpy()
        assert y.shape == (3, n)
        for c in range(3):  # (a batched GRU rounds differently from a single one: 1e-4)
            np.testing.assert_allclose(y[c, 384:], refs[c][: n - 384], atol=1e-3)
            err = y[c, 384:] - refs[c][: n - 384]
            assert 10 * np.log10(np.sum(refs[c] ** 2) / np.sum(err**2)) > 50
    assert np.abs(refs[0] - refs[1][: len(refs[0])]).max() > 0.05  # two different voices
    with pytest.raises(torch.jit.Error, match="more channels than this export has voices"):
        m(torch.zeros(5, 3, 384))


def test_nn_tilde_audio_method_follows_the_input_pitch(fake_run, tmp_path: Path):
    out = tmp_path / "synth.ts"
    export_nn_tilde(fake_run, out, host_rate=48000)
    m = torch.jit.load(str(out))
    t = np.arange(48000) / 48000
    tone = 0.2 * sum(np.sin(2 * np.pi * k * 330 * t) / k for k in (1, 2, 3))
    x = torch.from_numpy(np.stack([tone, np.zeros_like(t)]).astype(np.float32))[None]
    y = torch.cat([m.audio(x[:, :, i : i + 512]) for i in range(0, 48000, 512)], -1)[0, 0]
    from ddsp_morph.data.features import FeatureSettings, compute_features

    f = compute_features(y.numpy()[::3].copy(), FeatureSettings())
    voiced = f["periodicity"][30:] >= 0.5
    assert voiced.mean() > 0.8
    assert np.median(np.abs(1200 * np.log2(f["f0_hz"][30:][voiced] / 330))) < 20
    # silence in: the model gets the floor loudness (unvoiced) while f0 holds the last note
    m.audio(torch.zeros(1, 2, 9600))
    assert not m.follower.last_voiced
    assert abs(1200 * np.log2(m.follower.f0_hold / 330)) < 20


@pytest.mark.slow
def test_export_cli_nn_tilde_in_a_clean_process(tiny_run: Path, tmp_path: Path):
    from .conftest import REPO

    out = tmp_path / "nn.ts"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ddsp_morph.export",
            f"run={tiny_run}",
            "format=nn_tilde",
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
        "for name in m.get_methods():\n"
        "    p = getattr(m, name + '_params').tolist()\n"
        "    for n in (128, 2048):\n"
        "        y = getattr(m, name)(torch.rand(1, p[0], n))\n"
        "        assert y.shape == (1, p[2], n), y.shape\n"
        "assert 'ddsp_morph' not in sys.modules\n"
    )
    clean = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True
    )
    assert clean.returncode == 0, clean.stderr[-3000:]
    bad = subprocess.run(
        [sys.executable, "-m", "ddsp_morph.export", f"run={tiny_run}", "format=vst"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: format: expected")


@pytest.mark.slow
def test_neutone_export_loads_plays_and_reports_its_delay(fake_run, tmp_path: Path):
    from neutone_sdk.utils import load_neutone_model

    from ddsp_morph.realtime.neutone import export_neutone
    from ddsp_morph.realtime.nn_tilde import build_nn_module

    out = export_neutone(fake_run, tmp_path / "m.nm", benchmark=False)  # the SDK's own checks run
    model, meta = load_neutone_model(str(out))
    assert [p["name"] for p in meta["neutone_parameters"].values()][:3] == ["morph", "x", "y"]
    assert json.loads(out.with_suffix(".json").read_text())["model_name"] == "DDSP.Morph"
    model.set_daw_sample_rate_and_buffer_size(48000, 512)
    model.reset()
    _, info = build_nn_module(fake_run)
    assert model.calc_model_delay_samples() == info["latency_samples_audio"]
    t = np.arange(93 * 512) / 48000  # the DAW's buffers: 512 samples each
    tone = torch.from_numpy((0.2 * np.sin(2 * np.pi * 330 * t)).astype(np.float32))[None]
    params = torch.zeros(4, 512)
    params[0] = 1.0  # morph at the second instrument
    y = torch.cat([model(tone[:, i : i + 512], params) for i in range(0, len(t), 512)], -1)
    assert y.shape == (1, len(t)) and torch.isfinite(y).all() and y[0, 9600:].abs().max() > 0.01
