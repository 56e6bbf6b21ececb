"""Gradients reach every synth control and every learnable parameter."""

import pytest
import torch

from ddsp_morph.models.autoencoder import DDSPAutoencoder
from ddsp_morph.models.decoder import Decoder
from ddsp_morph.synths.stack import SynthStack


def make(noise: bool, reverb: bool, mode: str = "decaying_noise", per_instrument: bool = False):
    synth = SynthStack(
        sample_rate=16000,
        hop_length=64,
        n_harmonics=16,
        noise=noise,
        n_noise_bands=17,
        reverb=reverb,
        reverb_mode=mode,
        reverb_seconds=0.05,
        reverb_per_instrument=per_instrument,
        n_instruments=3,
    )
    dec = Decoder(
        input_sizes={"f0": 1, "loudness": 1},
        output_sizes=synth.control_sizes,
        hidden_size=16,
        gru_size=16,
    )
    return DDSPAutoencoder(decoder=dec, synth=synth, conditioning=["f0", "loudness"])


CASES = [
    ("harmonic", False, False, "decaying_noise", False),
    ("harmonic_noise", True, False, "decaying_noise", False),
    ("harmonic_noise_reverb", True, True, "decaying_noise", False),
    ("harmonic_noise_reverb free taps", True, True, "free", False),
    ("harmonic_noise_reverb per instrument", True, True, "decaying_noise", True),
]


@pytest.mark.parametrize("name, noise, reverb, mode, per_instrument", CASES)
def test_every_parameter_and_control_gets_a_gradient(name, noise, reverb, mode, per_instrument):
    model = make(noise, reverb, mode, per_instrument)
    batch = {
        "f0_hz": torch.rand(3, 12) * 300 + 100,
        "loudness_db": torch.randn(3, 12) * 10 - 30,
        "instrument_id": torch.tensor([0, 1, 2]),
    }
    out = model(batch)
    controls = [k for k in ("amplitude", "harmonic_distribution", "noise_magnitudes") if k in out]
    for k in controls:
        out[k].retain_grad()
    out["audio"].square().sum().backward()
    expected_controls = {"amplitude", "harmonic_distribution"} | (
        {"noise_magnitudes"} if noise else set()
    )
    assert set(controls) == expected_controls
    for k in controls:
        assert out[k].grad is not None and out[k].grad.abs().sum() > 0, (
            f"{name}: no gradient at {k}"
        )
    for pname, p in model.named_parameters():
        if per_instrument and pname.startswith("synth.reverb"):
            # every instrument is in the batch, so every IR row gets a gradient
            assert (p.grad.reshape(3, -1).abs().sum(1) > 0).all(), f"{name}: {pname}"
            continue
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}: no gradient at {pname}"


def test_decoder_heads_follow_the_synth():
    assert set(make(False, False).decoder.output_sizes) == {"amplitude", "harmonic_distribution"}
    assert make(True, True).decoder.output_sizes == {
        "amplitude": 1,
        "harmonic_distribution": 16,
        "noise_magnitudes": 17,
    }
