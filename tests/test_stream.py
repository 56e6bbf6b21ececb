"""The realtime DSP kernels equal the one-shot functions block after block."""

from __future__ import annotations

import pytest
import torch

from ddsp_morph.dsp.noise import filtered_noise
from ddsp_morph.dsp.oscillators import harmonic_synth
from ddsp_morph.dsp.reverb import fft_convolve
from ddsp_morph.dsp.stream import HarmonicStream, NoiseStream, ReverbStream

SR, HOP = 16000, 128


@pytest.mark.parametrize("frames", [1, 4])
@pytest.mark.parametrize("upsample", ["hann", "linear"])
def test_harmonic_stream_equals_one_shot(frames: int, upsample: str):
    g = torch.Generator().manual_seed(0)
    n_blocks, k = 12, 60
    m = n_blocks * frames
    # A glide from 90 Hz up past the point where high harmonics cross Nyquist, and back.
    f0 = torch.cat([torch.linspace(90, 900, m // 2), torch.linspace(900, 120, m - m // 2)])[None]
    amp = torch.rand(1, m, generator=g) * 0.3
    dist = torch.rand(1, m, k, generator=g)
    ref = harmonic_synth(f0, amp, dist, sample_rate=SR, hop_length=HOP, upsample=upsample)[0]
    stream = HarmonicStream(
        n_harmonics=k, sample_rate=SR, hop_length=HOP, n_frames=frames, upsample=upsample
    )
    out = torch.cat(
        [
            stream.process(f0[0, i : i + frames], amp[0, i : i + frames], dist[0, i : i + frames])
            for i in range(0, m, frames)
        ]
    )
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    assert float(ref.abs().max()) > 0.05


@pytest.mark.parametrize(("frames", "bands"), [(1, 65), (4, 65), (1, 129)])
def test_noise_stream_equals_one_shot(frames: int, bands: int):
    g = torch.Generator().manual_seed(1)
    m = 10 * frames
    mags = torch.rand(1, m, bands, generator=g)
    noise = torch.rand(1, m * HOP, generator=g) * 2 - 1
    ref = filtered_noise(mags, hop_length=HOP, noise=noise)[0]
    stream = NoiseStream(n_bands=bands, hop_length=HOP, n_frames=frames)
    n = frames * HOP
    out = torch.cat(
        [
            stream.process(mags[0, i : i + frames], noise[0, i * HOP : i * HOP + n])
            for i in range(0, m, frames)
        ]
    )
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_reverb_stream_equals_fft_convolution_with_mix():
    g = torch.Generator().manual_seed(2)
    ir = torch.rand(1, 1000, generator=g) * torch.exp(-torch.arange(1000) / 200.0)
    x = torch.rand(1, 40 * HOP, generator=g) - 0.5
    ref = 0.7 * x + 0.3 * fft_convolve(x, ir)
    stream = ReverbStream(ir, HOP, wet=0.3, dry=0.7)
    out = torch.cat([stream.process(x[0, i : i + HOP]) for i in range(0, x.shape[1], HOP)])
    torch.testing.assert_close(out, ref[0], atol=1e-5, rtol=0)
