import numpy as np
import pytest
import scipy.signal
import torch

from ddsp_morph.dsp.noise import filtered_noise, noise_filter_irs
from ddsp_morph.dsp.reverb import PartitionedConvolver, decaying_noise_ir, fft_convolve, reverb

HOP = 32


def test_filtered_noise_matches_direct_convolution_overlap_add():
    torch.manual_seed(0)
    mags = torch.rand(2, 7, 9, dtype=torch.float64)
    noise = torch.rand(2, 7 * HOP, dtype=torch.float64) * 2 - 1
    y = filtered_noise(mags, hop_length=HOP, noise=noise).numpy()
    irs = noise_filter_irs(mags).numpy()
    ref = np.zeros((2, 7 * HOP + irs.shape[-1]))
    for b in range(2):
        for m in range(7):
            seg = np.convolve(noise[b, m * HOP : (m + 1) * HOP].numpy(), irs[b, m])
            ref[b, m * HOP : m * HOP + len(seg)] += seg
    np.testing.assert_allclose(y, ref[:, : 7 * HOP], atol=1e-12)


def test_noise_filter_is_linear_phase_with_the_asked_magnitude():
    mags = torch.linspace(1.0, 0.0, 33, dtype=torch.float64).reshape(1, 1, 33)
    ir = noise_filter_irs(mags)[0, 0].numpy()
    assert np.allclose(ir[1:], ir[1:][::-1], atol=1e-12)  # symmetric about its centre: linear phase
    response = np.abs(np.fft.rfft(ir, 64))
    # windowing smooths the response; a ramp stays a ramp away from the edges
    np.testing.assert_allclose(response[4:28], mags[0, 0, 4:28].numpy(), atol=0.05)


def test_flat_magnitudes_give_white_noise_spectrum():
    g = torch.Generator().manual_seed(0)
    y = filtered_noise(torch.ones(1, 2000, 17), hop_length=HOP, generator=g)[0].numpy()
    f, p = scipy.signal.welch(y, nperseg=256)
    band = p[5:-5]
    assert band.std() / band.mean() < 0.25


def test_generator_makes_noise_reproducible():
    mags = torch.rand(1, 10, 9)
    a = filtered_noise(mags, hop_length=HOP, generator=torch.Generator().manual_seed(5))
    b = filtered_noise(mags, hop_length=HOP, generator=torch.Generator().manual_seed(5))
    c = filtered_noise(mags, hop_length=HOP, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_noise_streaming_equals_one_shot():
    torch.manual_seed(1)
    mags, noise = (
        torch.rand(2, 20, 65),
        torch.rand(2, 20 * HOP) * 2 - 1,
    )  # ir (128) longer than a hop
    full = filtered_noise(mags, hop_length=HOP, noise=noise)
    out, tail = [], None
    for s, e in [(0, 1), (1, 2), (2, 9), (9, 20)]:
        y, tail = filtered_noise(
            mags[:, s:e],
            hop_length=HOP,
            noise=noise[:, s * HOP : e * HOP],
            tail=tail,
            return_tail=True,
        )
        out.append(y)
    torch.testing.assert_close(torch.cat(out, 1), full, atol=1e-5, rtol=0)


def test_noise_gradcheck():
    mags = torch.rand(1, 3, 5, dtype=torch.float64, requires_grad=True)
    noise = torch.rand(1, 3 * 4, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda m: filtered_noise(m, hop_length=4, noise=noise), (mags,))


def test_fft_convolve_matches_scipy():
    rng = np.random.default_rng(0)
    x, h = rng.standard_normal((3, 1000)), rng.standard_normal((3, 300))
    y = fft_convolve(torch.from_numpy(x), torch.from_numpy(h)).numpy()
    for b in range(3):
        np.testing.assert_allclose(y[b], scipy.signal.fftconvolve(x[b], h[b])[:1000], atol=1e-10)
    shared = fft_convolve(torch.from_numpy(x), torch.from_numpy(h[:1])).numpy()
    np.testing.assert_allclose(shared[2], scipy.signal.fftconvolve(x[2], h[0])[:1000], atol=1e-10)


def test_reverb_wet_dry_and_decay():
    x = torch.zeros(1, 100)
    x[0, 0] = 1.0
    ir = torch.rand(1, 50)
    y = reverb(x, ir, wet=0.3, dry=0.7)
    torch.testing.assert_close(y[0, 0], 0.7 + 0.3 * ir[0, 0])
    torch.testing.assert_close(y[0, 1:50], 0.3 * ir[0, 1:])
    noise = torch.ones(2, 16000)
    d = decaying_noise_ir(noise, torch.tensor([6.9, 13.8]), sample_rate=16000)
    assert float(d[0, 15999]) == pytest.approx(
        np.exp(-6.9 * 15999 / 16000), rel=1e-4
    )  # -60 dB after 1 s
    assert float(d[1, 8000]) == pytest.approx(np.exp(-6.9), rel=1e-4)


def test_partitioned_convolution_equals_one_shot():
    torch.manual_seed(2)
    ir = torch.rand(2, 1000) * torch.exp(-torch.arange(1000) / 200.0)
    x = torch.randn(2, 128 * 20)
    full = fft_convolve(x, ir)
    conv = PartitionedConvolver(ir, 128)
    out = torch.cat([conv.process(x[:, i * 128 : (i + 1) * 128]) for i in range(20)], 1)
    torch.testing.assert_close(out, full, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="block: expected shape"):
        conv.process(torch.zeros(2, 64))


def test_reverb_gradcheck():
    x = torch.rand(1, 20, dtype=torch.float64)
    ir = torch.rand(1, 8, dtype=torch.float64, requires_grad=True)
    wet = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda h, w: reverb(x, h, wet=w, dry=1 - w), (ir, wet))
    decay = torch.tensor([3.0], dtype=torch.float64, requires_grad=True)
    noise = torch.rand(1, 16, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda d: decaying_noise_ir(noise, d, sample_rate=16), (decay,))
