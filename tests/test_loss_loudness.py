import math

import numpy as np
import pytest
import torch

from ddsp_morph.dsp.loudness import a_weighted_loudness_db, a_weighting_db
from ddsp_morph.dsp.spectral import multiscale_spectral_loss

SR = 16000


def test_loss_of_identical_signals_is_zero():
    x = torch.randn(2, 4000)
    assert float(multiscale_spectral_loss(x, x.clone())) == 0.0


def test_loss_matches_hand_computation():
    # One scale, linear term only, no overlap detail: compute the STFT by hand with numpy.
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(256), rng.standard_normal(256)
    n_fft, hop = 64, 16
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)

    def mag(x):
        xp = np.pad(x, n_fft // 2, mode="reflect")
        frames = [xp[i * hop : i * hop + n_fft] * win for i in range(1 + len(x) // hop)]
        return np.abs(np.fft.rfft(np.array(frames), axis=-1))

    ma, mb = mag(a), mag(b)
    lin = np.abs(ma - mb).mean()
    log = np.abs(np.log(ma + 1e-7) - np.log(mb + 1e-7)).mean()
    ta, tb = torch.from_numpy(a)[None], torch.from_numpy(b)[None]
    got = multiscale_spectral_loss(
        ta, tb, fft_sizes=[64], overlap=0.75, linear_weight=1.0, log_weight=0.5
    )
    assert float(got) == pytest.approx(lin + 0.5 * log, rel=1e-9)


def test_loss_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="pred and target must match"):
        multiscale_spectral_loss(torch.zeros(1, 100), torch.zeros(1, 200))


@pytest.mark.parametrize(
    "freq, expected_db", [(50.119, -30.2), (100, -19.1), (1000, 0.0), (4000, 1.0), (10000, -2.5)]
)
def test_a_weighting_at_standard_frequencies(freq, expected_db):
    # IEC 61672-1 table values, rounded to 0.1 dB
    assert float(a_weighting_db(torch.tensor([float(freq)]))) == pytest.approx(expected_db, abs=0.1)


def test_loudness_of_a_full_scale_1khz_sine_and_a_6db_gain():
    t = torch.arange(SR) / SR
    x = torch.sin(2 * torch.pi * 1000 * t).unsqueeze(0)
    ld = a_weighted_loudness_db(x, sample_rate=SR, hop_length=128)[0, 10:-10]
    assert float(ld.mean()) == pytest.approx(-3.01, abs=0.05)
    ld2 = a_weighted_loudness_db(2 * x, sample_rate=SR, hop_length=128)[0, 10:-10]
    assert float((ld2 - ld).mean()) == pytest.approx(6.02, abs=0.01)


def test_loudness_frame_count_and_silence_floor():
    ld = a_weighted_loudness_db(torch.zeros(2, 128 * 50), sample_rate=SR, hop_length=128)
    assert ld.shape == (2, 50)
    assert torch.all(ld == -100.0)


def test_a_weighting_makes_low_tones_quieter():
    t = torch.arange(SR) / SR
    low = a_weighted_loudness_db(
        torch.sin(2 * torch.pi * 100 * t)[None], sample_rate=SR, hop_length=128
    )[0, 20:-20].mean()
    mid = a_weighted_loudness_db(
        torch.sin(2 * torch.pi * 1000 * t)[None], sample_rate=SR, hop_length=128
    )[0, 20:-20].mean()
    assert float(mid - low) == pytest.approx(19.1, abs=0.5)


def test_fused_loss_has_the_value_and_gradient_of_plain_autograd():
    g = torch.Generator().manual_seed(4)
    target = torch.randn(2, 4000, generator=g)
    x1 = torch.randn(2, 4000, generator=g, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    a = multiscale_spectral_loss(x1, target, fused=True, log_weight=0.7)
    b = multiscale_spectral_loss(x2, target, fused=False, log_weight=0.7)
    (3.0 * a).backward()
    (3.0 * b).backward()
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(x1.grad, x2.grad)
    assert float(x1.grad.abs().max()) > 0


def test_fused_loss_gradcheck_float64():
    g = torch.Generator().manual_seed(5)
    target = torch.randn(1, 96, generator=g, dtype=torch.float64)
    x = torch.randn(1, 96, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda p: multiscale_spectral_loss(p, target, fft_sizes=(32, 16), eps=1e-3), (x,)
    )


def test_loss_under_bf16_autocast_is_float32_and_equal():
    g = torch.Generator().manual_seed(6)
    target, x = torch.randn(2, 2000, generator=g), torch.randn(2, 2000, generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a = multiscale_spectral_loss(x, target)
    assert a.dtype == torch.float32
    torch.testing.assert_close(a, multiscale_spectral_loss(x, target))


def _tremolo(depth_db: float, *, sr: int = 16000, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(sr * seconds)) / sr
    gain_db = depth_db / 2 * torch.sin(2 * math.pi * 6.0 * t)
    return torch.sin(2 * math.pi * 440.0 * t) * 10 ** (gain_db / 20)


def test_band_fluctuation_measures_how_much_the_bands_move():
    from ddsp_morph.dsp.filters import mel_filterbank
    from ddsp_morph.dsp.spectral import band_fluctuation

    basis = torch.as_tensor(mel_filterbank(sample_rate=16000, n_fft=512, n_mels=40, fmin=30.0))
    basis = basis.float()
    x = torch.stack([_tremolo(0.0), _tremolo(6.0), _tremolo(12.0)])
    band = int(basis[:, 14].argmax())  # the band holding 440 Hz (bin 14 of a 512-point FFT)
    f = band_fluctuation(x, basis, hop=128)[:, band]
    # a steady tone does not move; a 6 Hz tremolo of peak-to-peak depth D dB moves by
    # D/2 * 2*pi*6 * hop/sr / sqrt(2) dB per frame (rms): 0.64 at 6 dB, twice that at 12 dB
    assert float(f[0]) < 0.05
    assert 0.55 < float(f[1]) < 0.7
    assert float(f[2]) == pytest.approx(2 * float(f[1]), rel=0.1)
    # silence does not count: a second more of it after the note changes nothing
    short = torch.cat([x[1:2], torch.zeros(1, 8000)], dim=1)
    long = torch.cat([x[1:2], torch.zeros(1, 24000)], dim=1)
    assert float(band_fluctuation(long, basis, hop=128)[0, band]) == pytest.approx(
        float(band_fluctuation(short, basis, hop=128)[0, band]), rel=1e-4
    )


def test_fluctuation_loss_is_zero_on_the_target_and_pushes_a_steady_render_to_move():
    from ddsp_morph.dsp.filters import mel_filterbank
    from ddsp_morph.dsp.spectral import fluctuation_loss

    basis = torch.as_tensor(mel_filterbank(sample_rate=16000, n_fft=512, n_mels=40, fmin=30.0))
    basis = basis.float()
    target = _tremolo(12.0).unsqueeze(0)
    assert float(fluctuation_loss(target, target, basis, hop=128)) < 1e-3
    depth = torch.tensor(1.0, requires_grad=True)  # a tremolo whose depth is learned
    t = torch.arange(16000) / 16000
    pred = torch.sin(2 * math.pi * 440.0 * t) * 10 ** (depth * torch.sin(2 * math.pi * 6 * t) / 20)
    loss = fluctuation_loss(pred.unsqueeze(0), target, basis, hop=128)
    loss.backward()
    assert float(loss) > 0 and float(depth.grad) < 0  # deeper is better


@pytest.mark.parametrize("n_fft,hop,pad_mode", [(64, 16, "reflect"), (63, 20, "constant")])
def test_frame_spectrum_is_torch_stft_with_its_gradient(n_fft, hop, pad_mode):
    # the loss's frame-major spectrum: torch.stft's values, and through the adjoint real FFT the
    # gradient torch.stft's own backward gives (odd n_fft: no Nyquist bin to double)
    from ddsp_morph.dsp.spectral import frame_spectrum

    g = torch.Generator().manual_seed(6)
    x1 = torch.randn(2, 500, generator=g, dtype=torch.float64, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    window = torch.hann_window(n_fft, dtype=torch.float64)
    ours = frame_spectrum(x1, n_fft, hop, window, pad_mode=pad_mode)
    ref = torch.stft(
        x2, n_fft, hop, window=window, center=True, pad_mode=pad_mode, return_complex=True
    ).transpose(1, 2)
    torch.testing.assert_close(ours, ref, atol=1e-12, rtol=0)
    upstream = torch.randn(ref.shape, generator=g, dtype=torch.complex128)
    (ours * upstream.conj()).real.sum().backward()
    (ref * upstream.conj()).real.sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, atol=1e-10, rtol=0)
    assert float(x1.grad.abs().max()) > 1.0
    assert torch.autograd.gradcheck(
        lambda a: frame_spectrum(a, n_fft, hop, window, pad_mode=pad_mode), (x1[:1, :100],)
    )


def test_magnitude_is_abs():
    from ddsp_morph.dsp.spectral import magnitude

    spec = torch.randn(3, 40, 33, dtype=torch.complex64)
    spec[0, 0, :5] = 0
    torch.testing.assert_close(magnitude(spec), spec.abs())
    assert float(magnitude(spec)[0, 0, :5].abs().max()) == 0.0


def test_magnitude_has_the_gradient_of_abs_also_at_silent_bins():
    # sqrt(re^2 + im^2) through autograd is 0 * inf = NaN at a zero bin: every training step
    # whose re-encoded conversion held a silent frame was skipped as non-finite
    from ddsp_morph.dsp.spectral import magnitude

    g = torch.Generator().manual_seed(3)
    spec = torch.randn(2, 30, 17, dtype=torch.complex128, generator=g)
    spec[1, 4:9] = 0
    ours, ref = spec.clone().requires_grad_(True), spec.clone().requires_grad_(True)
    upstream = torch.randn(spec.shape, dtype=torch.float64, generator=g)
    (magnitude(ours) * upstream).sum().backward()
    (ref.abs() * upstream).sum().backward()
    assert torch.isfinite(torch.view_as_real(ours.grad)).all()
    torch.testing.assert_close(ours.grad, ref.grad, atol=1e-12, rtol=0)
    assert float(ours.grad[1, 4:9].abs().max()) == 0.0 and float(ours.grad.abs().max()) > 0.1


def test_descriptors_of_audio_with_digital_silence_have_finite_gradients():
    # a rendered corpus's rests are exact zeros, and so is a render of them: the encoder's
    # MFCCs (the timbre cycle re-encodes renders) and the centroid must pass a gradient through
    from ddsp_morph.dsp.descriptors import frame_magnitudes, frame_power, spectral_centroid_hz
    from ddsp_morph.models.encoder import MFCC

    t = torch.arange(16000) / 16000.0
    audio = (0.3 * torch.sin(2 * math.pi * 330.0 * t)).repeat(2, 1)
    audio[:, 4000:12000] = 0.0
    audio.requires_grad_(True)
    front = MFCC(sample_rate=16000, n_fft=1024, hop_length=128, n_mels=64, n_mfcc=20)
    front(audio, 125).sum().backward()
    assert torch.isfinite(audio.grad).all() and float(audio.grad.abs().max()) > 0
    audio.grad = None
    spectral_centroid_hz(audio, sample_rate=16000, hop_length=128).sum().backward()
    assert torch.isfinite(audio.grad).all()
    power = frame_power(audio, n_fft=512, hop_length=128)
    mags = frame_magnitudes(audio, n_fft=512, hop_length=128)
    torch.testing.assert_close(power, mags**2, rtol=1e-5, atol=1e-9)


def test_band_statistics_hear_level_shape_and_movement_over_the_sounding_frames():
    from ddsp_morph.dsp.filters import mel_filterbank
    from ddsp_morph.dsp.spectral import band_fluctuation, band_statistics

    basis = torch.as_tensor(mel_filterbank(sample_rate=16000, n_fft=512, n_mels=40, fmin=30.0))
    basis = basis.float()
    band = int(basis[:, 14].argmax())  # the band holding 440 Hz
    x = torch.stack([_tremolo(0.0), 0.1 * _tremolo(0.0), _tremolo(12.0)])
    s = band_statistics(x, basis, hop=128)
    assert s.shape == (3, 160)
    level_mean, level_std, change_mean, change_std = s.split(40, dim=-1)
    # a tenth of the amplitude: 20 dB lower in every band it sounds in
    assert float(level_mean[0, band] - level_mean[1, band]) == pytest.approx(20.0, abs=0.01)
    # a steady tone neither spreads nor moves; the tremolo does both, and its movement is
    # band_fluctuation's
    assert float(level_std[0, band]) < 0.05 and float(change_std[0, band]) < 0.05
    assert float(level_std[2, band]) > 2.0
    assert abs(float(change_mean[2, band])) < 0.1
    torch.testing.assert_close(
        change_std, band_fluctuation(x, basis, hop=128), rtol=1e-4, atol=1e-4
    )
    # silence after the note changes nothing
    short = torch.cat([x[2:3], torch.zeros(1, 8000)], dim=1)
    long = torch.cat([x[2:3], torch.zeros(1, 24000)], dim=1)
    torch.testing.assert_close(
        band_statistics(long, basis, hop=128),
        band_statistics(short, basis, hop=128),
        rtol=1e-4,
        atol=1e-4,
    )
    # differentiable: a louder render raises the level statistics
    gain = torch.tensor(0.5, requires_grad=True)
    band_statistics(gain * x[:1], basis, hop=128)[0, band].backward()
    assert float(gain.grad) == pytest.approx(20 / math.log(10) / 0.5, rel=1e-3)
