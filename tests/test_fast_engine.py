"""The compiled realtime path: its DSP kernels equal dsp.stream's block after block, and the
compiled engine equals the offline render (float32 weights) or comes close (int8)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from ddsp_morph.build import build_model
from ddsp_morph.dsp.core import upsample_ramp
from ddsp_morph.dsp.stream import HarmonicStream, NoiseStream, ReverbStream
from ddsp_morph.realtime import kernels
from ddsp_morph.realtime.engine import render_offline
from ddsp_morph.realtime.fast import FastEngine

from .conftest import cfg_for

SR, HOP = 16000, 128


def test_fft_matches_numpy():
    rng = np.random.default_rng(0)
    for n in (2, 8, 256):
        x = rng.standard_normal(n) + 1j * rng.standard_normal(n)
        re, im = x.real.copy(), x.imag.copy()
        cos_t, sin_t = kernels.twiddles(n)
        kernels.fft_radix2(re, im, cos_t, sin_t, False)
        np.testing.assert_allclose(re + 1j * im, np.fft.fft(x), atol=1e-10)
        kernels.fft_radix2(re, im, cos_t, sin_t, True)
        np.testing.assert_allclose((re + 1j * im) / n, x, atol=1e-12)


@pytest.mark.parametrize(
    "frames, upsample, steps", [(1, "hann", False), (4, "linear", False), (1, "hann", True)]
)
def test_kernels_equal_the_torch_stream_kernels_block_after_block(
    frames: int, upsample: str, steps: bool
):
    g = torch.Generator().manual_seed(0)
    k, bands, n_blocks = 60, 17, 30
    n = n_blocks * frames
    # f0 sweeps 150 Hz -> 2.5 kHz: harmonics cross Nyquist inside blocks; or ``steps``: notes
    # held for 5 frames each (the oscillator's steady-frequency path), then the next
    f0 = torch.linspace(150.0, 2500.0, n)
    if steps:
        f0 = 150.0 * 2 ** (torch.div(torch.arange(n), 5, rounding_mode="floor") / 2.0)
    amp = torch.rand(n, generator=g)
    dist = torch.rand(n, k, generator=g)
    mags = torch.rand(n, bands, generator=g)
    noise = torch.rand(n * HOP, generator=g) * 2 - 1
    ir = torch.rand(1, 2000, generator=g) * torch.exp(-torch.arange(2000) / 300.0)
    hs = HarmonicStream(
        n_harmonics=k, sample_rate=SR, hop_length=HOP, n_frames=frames, upsample=upsample
    )
    ns = NoiseStream(n_bands=bands, hop_length=HOP, n_frames=frames)
    rs = ReverbStream(ir, HOP * frames, wet=0.6, dry=0.8)
    ramp = upsample_ramp(HOP, method=upsample).numpy()
    h_state, prev = np.zeros(3), np.zeros(k, np.float32)
    tail = np.zeros(ns.ir_size - 1, np.float32)
    spec = rs.ir_twice.numpy()
    ir_re = np.ascontiguousarray(spec.real, np.float32)
    ir_im = np.ascontiguousarray(spec.imag, np.float32)
    ring_re = np.zeros((rs.n_parts, HOP * frames + 1), np.float32)
    ring_im = np.zeros_like(ring_re)
    frame, head = np.zeros(2 * HOP * frames), 0
    cos_t, sin_t = kernels.twiddles(2 * HOP * frames)
    h_out, n_out, r_out = (np.zeros(HOP * frames, np.float32) for _ in range(3))
    peak = 0.0
    for b in range(n_blocks):
        sl = slice(b * frames, (b + 1) * frames)
        nz = noise[b * frames * HOP : (b + 1) * frames * HOP]
        with torch.no_grad():
            ref_h = hs.process(f0[sl], amp[sl], dist[sl])
            ref_n = ns.process(mags[sl], nz)
            ref_r = rs.process(ref_h + ref_n)
        kernels.harmonic_block(
            f0[sl].numpy(), amp[sl].numpy(), dist[sl].numpy(), ramp, float(SR), h_state, prev, h_out
        )
        kernels.noise_block(
            mags[sl].numpy(), nz.numpy(), kernels.fir_basis(ns.basis_reversed.numpy()), tail, n_out
        )
        head = kernels.reverb_block(
            (ref_h + ref_n).numpy(), frame, ring_re, ring_im, ir_re, ir_im, cos_t, sin_t,
            head, 0.8, r_out,
        )  # fmt: skip
        np.testing.assert_allclose(h_out, ref_h.numpy(), atol=1e-5)
        np.testing.assert_allclose(n_out, ref_n.numpy(), atol=1e-5)
        np.testing.assert_allclose(r_out, ref_r.numpy(), atol=1e-5 * max(1.0, ref_r.abs().max()))
        peak = max(peak, float(ref_h.abs().max()))
    assert peak > 0.1
    # above Nyquist nothing sounds: a 7 kHz f0 at 16 kHz leaves one harmonic; 9 kHz none
    state, prev = np.zeros(3), np.zeros(k, np.float32)
    out = np.zeros(HOP, np.float32)
    ones = np.ones(1, np.float32)
    kernels.harmonic_block(
        np.full(1, 9000.0, np.float32), ones, np.ones((1, k), np.float32), ramp, 16000.0,
        state, prev, out,
    )  # fmt: skip
    assert np.all(out == 0.0)


def _model(tmp_path: Path, synth: str, latent: str, hidden: int = 32, z_mode: str = "film"):
    cfg = cfg_for(
        tmp_path,
        tmp_path,
        f"synth={synth}",
        f"latent={latent}",
        "synth.reverb_seconds=0.05",
        f"model.hidden_size={hidden}",
        f"model.gru_size={hidden}",
        f"model.z_mode={z_mode}",
    )
    model = build_model(cfg, n_instruments=2)
    with torch.no_grad():  # away from the initial, near-silent state
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        model.decoder.head.bias.add_(4.0)
    return model


def _controls(n: int):
    t = torch.arange(n)
    f0 = 220.0 * 2 ** (torch.sin(t / 5.0) * 1.5)
    loud = -30.0 + 15 * torch.cos(t / 7.0)
    return f0, loud


def _render(engine, f0, loud, z, noise, frames):
    engine.reset()
    hop = engine.hop
    return torch.cat(
        [
            engine.process(
                f0[i : i + frames],
                loud[i : i + frames],
                z,
                noise[i * hop : (i + frames) * hop],
            )
            for i in range(0, len(f0), frames)
        ]
    )


@pytest.mark.parametrize(
    "synth, latent, frames, tables, weights, z_mode",
    [
        ("harmonic_noise_reverb", "vae", 1, 2048, "float32", "film"),
        ("harmonic_noise_reverb", "vae", 1, 2048, "int16", "film"),
        ("harmonic_noise_reverb", "vae", 1, 2048, "float32", "concat"),
        ("harmonic_noise", "none", 4, 0, "float32", "film"),
        ("harmonic", "vae", 2, 2048, "int16", "film"),
    ],
)
def test_fast_engine_equals_the_offline_render(
    tmp_path: Path, synth: str, latent: str, frames: int, tables: int, weights: str, z_mode: str
):
    torch.manual_seed(0)
    model = _model(tmp_path, synth, latent, z_mode=z_mode)
    if latent != "none":  # the film path is live (and zero only in the concat decoder)
        assert (model.decoder.film is not None) == (z_mode == "film")
    n = 48
    f0, loud = _controls(n)
    z = torch.randn(4) if latent != "none" else None
    offline = render_offline(model, f0, loud, z, seed=3)
    # the offline render's white noise: one torch.rand over the whole length, seed 3
    noise = torch.rand(n * HOP, generator=torch.Generator().manual_seed(3)) * 2 - 1
    engine = FastEngine(model, frames_per_block=frames, input_tables=tables, weights=weights)
    fast = _render(engine, f0, loud, z, noise, frames)
    assert offline.abs().max() > 1e-2
    torch.testing.assert_close(fast, offline, atol=2e-4, rtol=0)
    snr = 10 * torch.log10(offline.square().sum() / (fast - offline).square().sum())
    assert snr > 70
    again = _render(engine, f0, loud, z, noise, frames)
    torch.testing.assert_close(again, fast, atol=0, rtol=0)  # reset restores every state


def test_int8_weights_are_close_not_equal_and_tables_cover_out_of_range_inputs(tmp_path: Path):
    torch.manual_seed(1)
    model = _model(tmp_path, "harmonic_noise_reverb", "vae", hidden=64)
    n = 32
    f0, loud = _controls(n)
    loud[5:9] = 40.0  # above the loudness table (+20 dB): the exact path
    z = torch.randn(4)
    noise = torch.rand(n * HOP, generator=torch.Generator().manual_seed(0)) * 2 - 1
    exact = _render(FastEngine(model, input_tables=0), f0, loud, z, noise, 1)
    tabled = _render(FastEngine(model, input_tables=2048), f0, loud, z, noise, 1)
    torch.testing.assert_close(tabled, exact, atol=2e-5, rtol=0)
    q = _render(FastEngine(model, weights="int8"), f0, loud, z, noise, 1)
    snr = 10 * torch.log10(exact.square().sum() / (q - exact).square().sum())
    assert 30 < snr < 90, snr  # int8 rounding is audible in the numbers, not in the ear


def test_fast_engine_rejects_bad_settings_and_shapes(tmp_path: Path):
    model = _model(tmp_path, "harmonic_noise", "none")
    with pytest.raises(ValueError, match="weights: expected one of"):
        FastEngine(model, weights="int4")
    with pytest.raises(ValueError, match="input_tables"):
        FastEngine(model, input_tables=1)
    engine = FastEngine(model, frames_per_block=2)
    with pytest.raises(ValueError, match=r"expected shape \(2,\)"):
        engine.process(torch.full((3,), 220.0), torch.full((3,), -30.0))
    with pytest.raises(ValueError, match="f0_hz: expected > 0 Hz"):
        engine.process(torch.tensor([220.0, 0.0]), torch.full((2,), -30.0))
    with pytest.raises(ValueError, match="f0_hz: expected > 0 Hz"):
        engine.reference.process(torch.tensor([-1.0, 220.0]), torch.full((2,), -30.0))
