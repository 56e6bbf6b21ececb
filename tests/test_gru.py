import pytest
import torch
from torch import nn

from ddsp_morph.models import gru as gru_module
from ddsp_morph.models.decoder import Decoder
from ddsp_morph.models.gru import gru_scan, run_gru, wants_scan


def _grads(out, hidden, inputs, upstream):
    loss = (out * upstream).sum() + hidden.square().sum()
    return torch.autograd.grad(loss, inputs)


@pytest.mark.parametrize("with_hidden", [False, True])
def test_the_scan_is_torchs_gru_with_its_gradients(with_hidden):
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    gru = nn.GRU(7, 5, batch_first=True).double()
    x = torch.randn(3, 11, 7, generator=g, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(1, 3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    hidden = h0 if with_hidden else None
    ref, ref_h = gru(x, hidden)
    got, got_h = run_gru(gru, x, hidden)
    torch.testing.assert_close(got, ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(got_h, ref_h, atol=1e-12, rtol=0)
    upstream = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    inputs = [x, *gru.parameters()] + ([h0] if with_hidden else [])
    for a, b in zip(
        _grads(got, got_h, inputs, upstream), _grads(ref, ref_h, inputs, upstream), strict=True
    ):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
        assert float(a.abs().max()) > 0
    assert torch.autograd.gradcheck(
        lambda a, h: gru_scan(gru, nn.functional.linear(a, gru.weight_ih_l0, gru.bias_ih_l0), h),
        (x[:2, :4], h0[:, :2]),
    )


def test_the_scan_runs_only_where_gradients_are_wanted():
    gru = nn.GRU(4, 3, batch_first=True)
    x = torch.randn(2, 5, 4)
    assert wants_scan(gru, x)
    with torch.no_grad():
        assert not wants_scan(gru, x)
    assert not wants_scan(gru, x.to(torch.bfloat16))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert wants_scan(gru, x.to(torch.bfloat16))  # the scan runs in float32
    assert not wants_scan(nn.GRU(4, 3, num_layers=2, batch_first=True), x)
    frozen = nn.GRU(4, 3, batch_first=True).requires_grad_(False)
    assert not wants_scan(frozen, x)


@pytest.mark.parametrize("z_mode,z_dim", [("film", 3), ("concat", 3), ("concat", 0)])
def test_the_decoder_trains_through_the_scan_as_through_torchs_gru(monkeypatch, z_mode, z_dim):
    # z held over the frames and a performance played with two z: the decoder projects each
    # input once on its own rows; outputs and every parameter's gradient as torch's GRU gives
    torch.manual_seed(1)
    sizes = {"f0": 1, "loudness": 1, **({"z": z_dim} if z_dim else {})}
    dec = Decoder(
        input_sizes=sizes,
        output_sizes={"amps": 2, "noise": 4},
        hidden_size=8,
        gru_size=6,
        z_mode=z_mode,
    ).double()
    with torch.no_grad():
        for p in dec.parameters():
            p.add_(0.1 * torch.randn_like(p))  # the FiLM layers start at zero
    f0, loud = torch.randn(1, 9, 1).double(), torch.randn(1, 9, 1).double()
    inputs = {"f0": f0, "loudness": loud}
    if z_dim:
        inputs["z"] = torch.randn(2, 1, z_dim).double().expand(-1, 9, -1)
    rows = 2 if z_dim else 1

    def run():
        out = dec(inputs)
        loss = sum((v * (i + 1)).square().sum() for i, v in enumerate(out.values()))
        return out, torch.autograd.grad(loss, list(dec.parameters()))

    calls = []
    real = gru_module._GRUScan.apply
    monkeypatch.setattr(
        gru_module._GRUScan, "apply", lambda *a: calls.append(1) or real(*a), raising=True
    )
    scanned, scanned_grads = run()
    assert calls, "the training pass did not go through the scan"
    monkeypatch.setattr("ddsp_morph.models.decoder.wants_scan", lambda *a: False)
    native, native_grads = run()
    for k in native:
        assert native[k].shape == (rows, 9, dec.output_sizes[k])
        torch.testing.assert_close(scanned[k], native[k], atol=1e-12, rtol=0)
    for a, b in zip(scanned_grads, native_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


def test_under_bf16_autocast_the_scan_runs_in_float32():
    # mixed-precision training: the projections in bf16, the recurrence in the weights' float32;
    # outputs within bf16 rounding of float32 and gradients reach every weight
    torch.manual_seed(2)
    gru = nn.GRU(6, 5, batch_first=True)
    x = torch.randn(3, 20, 6)
    ref, _ = gru(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gx = nn.functional.linear(x, gru.weight_ih_l0, gru.bias_ih_l0)
        assert gx.dtype == torch.bfloat16
        got, last = gru_scan(gru, gx)
    assert got.dtype == torch.float32 and last.dtype == torch.float32
    torch.testing.assert_close(got, ref, atol=0.03, rtol=0)
    got.square().sum().backward()
    assert all(float(p.grad.abs().max()) > 0 for p in gru.parameters())
