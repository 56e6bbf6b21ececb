"""The benchmark's reference training step (ddsp_pytorch's shape) is a working DDSP step: its
convolution is linear convolution, its loss is zero only on equal audio, and every parameter
learns. A broken reference would make `make bench`'s ratios meaningless."""

import importlib.util
from pathlib import Path

import numpy as np
import torch

PATH = Path(__file__).resolve().parents[1] / "experiments" / "benchmarks" / "reference_step.py"


def reference():
    spec = importlib.util.spec_from_file_location("reference_step", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fft_convolve_is_causal_linear_convolution():
    ref = reference()
    g = torch.Generator().manual_seed(0)
    x, k = torch.randn(3, 50, generator=g), torch.randn(3, 50, generator=g)
    want = np.stack([np.convolve(a, b)[:50] for a, b in zip(x.numpy(), k.numpy(), strict=True)])
    np.testing.assert_allclose(ref._fft_convolve(x, k).numpy(), want, atol=1e-4)


def test_loss_is_zero_on_equal_audio_and_grows_with_the_difference():
    ref = reference()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 8000, generator=g)
    assert float(ref.reference_loss(x, x)) == 0.0
    near = float(ref.reference_loss(x + 0.01 * torch.randn(2, 8000, generator=g), x))
    far = float(ref.reference_loss(x + 0.5 * torch.randn(2, 8000, generator=g), x))
    assert 0.0 < near < far


def test_a_step_renders_the_clip_length_and_trains_every_parameter():
    ref = reference()
    torch.manual_seed(0)
    model = ref.ReferenceDDSP(hidden=32, block=160)
    f0 = torch.linspace(100, 900, 20).reshape(1, 20, 1).repeat(2, 1, 1)
    audio = model(f0, torch.linspace(-1, 1, 20).reshape(1, 20, 1).repeat(2, 1, 1))
    assert audio.shape == (2, 20 * 160) and torch.isfinite(audio).all()
    ref.reference_loss(audio, torch.randn(2, 3200) * 0.1, scales=(512, 128)).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
