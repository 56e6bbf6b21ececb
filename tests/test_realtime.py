"""The streaming engine equals the offline render of the same controls."""

from pathlib import Path

import pytest
import torch

from ddsp_morph.realtime.engine import StreamingEngine, render_offline
from ddsp_morph.training.build import build_model

from .conftest import cfg_for


@pytest.mark.parametrize(
    "synth, latent, frames",
    [("harmonic_noise", "vae", 1), ("harmonic_noise_reverb", "vae", 4), ("harmonic", "none", 3)],
)
def test_streaming_equals_offline(tmp_path: Path, synth: str, latent: str, frames: int):
    cfg = cfg_for(
        tmp_path, tmp_path, f"synth={synth}", f"latent={latent}", "synth.reverb_seconds=0.05"
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
