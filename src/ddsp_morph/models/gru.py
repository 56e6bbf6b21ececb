"""A training pass of ``nn.GRU`` (one layer, one direction) with its own backward.

On the CPU, torch's GRU in training runs each time step as a dozen autograd ops (a node per
gate, per step), and their backward as as many more. Here the input projection is one matrix
product over every step (given precomputed, so that a caller can project an input that holds
over every frame once per clip), the recurrence runs without autograd writing the gates into
preallocated tensors, and the backward steps back through time with one matrix product and
three elementwise ops a step; the weight gradients are one matrix product over every step.
Same equations, parameters and gradients as ``nn.GRU`` (to float rounding); used only where
gradients are needed (``wants_scan``): inference, tracing and scripting keep ``nn.GRU``.
"""

from __future__ import annotations

import torch
from torch import nn


class _GRUScan(torch.autograd.Function):
    """hidden[t] for every step of a GRU: r, z = sigmoid(gx_rz[t] + gh_rz), n = tanh(gx_n[t] +
    r * gh_n), h = (1 - z) * n + z * h, with gh = h @ w_hh.T + b_hh (torch's gate order r, z, n).
    Shapes: gx [T, B, 3H] (time-major: each step's rows contiguous), h0 [B, H]."""

    @staticmethod
    def forward(ctx, gx, h0, w_hh, b_hh):  # type: ignore[override]
        steps, batch, h3 = gx.shape
        h2 = 2 * (h3 // 3)
        out = gx.new_empty(steps, batch, h3 // 3)
        rz = gx.new_empty(steps, batch, h2)
        n = torch.empty_like(out)
        gh = torch.empty_like(gx)
        h, w_t = h0, w_hh.t()
        for t in range(steps):
            g, rz_t, n_t = gh[t], rz[t], n[t]
            torch.addmm(b_hh, h, w_t, out=g)
            torch.add(gx[t, :, :h2], g[:, :h2], out=rz_t).sigmoid_()
            torch.addcmul(gx[t, :, h2:], rz_t[:, : h2 // 2], g[:, h2:], out=n_t).tanh_()
            h = torch.lerp(n_t, h, rz_t[:, h2 // 2 :], out=out[t])
        ctx.save_for_backward(h0, w_hh, out, rz, n, gh)
        return out

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        h0, w_hh, out, rz, n, gh = ctx.saved_tensors
        steps, batch, hidden = out.shape
        r, z = rz[..., :hidden], rz[..., hidden:]
        h_prev = torch.cat([h0.unsqueeze(0), out[:-1]], 0)
        # d h[t] / d (each gate's pre-activation), per unit of d h[t]; d h[t-1] adds z * dh
        d_n = (1.0 - z) * (1.0 - n * n)
        coef = torch.stack(
            [d_n * gh[..., 2 * hidden :] * r * (1.0 - r), (h_prev - n) * z * (1.0 - z), d_n * r],
            dim=2,
        )  # [T, B, 3, H]: the gradients of gh (r, z, n) per unit of dh
        grad_out = grad_out.contiguous()
        dh_all = torch.empty_like(out)
        dgh = torch.empty_like(coef)
        carry = torch.zeros_like(h0)
        for t in range(steps - 1, -1, -1):
            dh = torch.add(grad_out[t], carry, out=dh_all[t])
            dg = torch.mul(coef[t], dh.unsqueeze(1), out=dgh[t]).view(batch, 3 * hidden)
            carry = torch.addmm(dh * z[t], dg, w_hh)
        dgh = dgh.view(steps, batch, 3 * hidden)
        dgx = torch.cat([dgh[..., : 2 * hidden], dh_all * d_n], dim=-1)
        dw = dgh.reshape(-1, 3 * hidden).t() @ h_prev.reshape(-1, hidden)
        return dgx, carry, dw, dgh.sum((0, 1))


def wants_scan(gru: nn.GRU, x: torch.Tensor) -> bool:
    """Whether ``gru_scan`` should run this pass: gradients wanted, a one-layer one-direction
    GRU with float32 or float64 weights, inputs of that type (or of half precision under
    autocast: the scan then runs in the weights' type), and not while tracing or scripting."""
    weights = gru.weight_hh_l0.dtype
    autocast = torch.is_autocast_enabled(x.device.type)
    return (
        torch.is_grad_enabled()
        and (x.requires_grad or gru.weight_hh_l0.requires_grad)
        and gru.num_layers == 1
        and not gru.bidirectional
        and gru.bias
        and weights in (torch.float32, torch.float64)
        and (x.dtype == weights or (autocast and x.dtype in (torch.bfloat16, torch.float16)))
        and not torch.jit.is_tracing()
        and not torch.jit.is_scripting()
    )


def gru_scan(
    gru: nn.GRU, gx: torch.Tensor, hidden: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``gru``'s outputs and last hidden state, like ``gru(x, hidden)`` with ``batch_first``,
    from the input projection ``gx = x @ gru.weight_ih_l0.T + gru.bias_ih_l0`` (Shape
    [batch, steps, 3 * hidden_size]; any broadcastable-over-steps sum of projections will do).
    Returns (Shape [batch, steps, hidden_size], Shape [1, batch, hidden_size])."""
    batch, w_hh = gx.shape[0], gru.weight_hh_l0
    h0 = (
        w_hh.new_zeros(batch, gru.hidden_size)
        if hidden is None
        else hidden.reshape(batch, gru.hidden_size).to(w_hh.dtype)
    )
    # the recurrence in the weights' precision (under autocast, gx comes in bf16 or fp16)
    with torch.autocast(gx.device.type, enabled=False):
        gx = gx.to(w_hh.dtype).transpose(0, 1).contiguous()
        out = _GRUScan.apply(gx, h0, w_hh, gru.bias_hh_l0)
    return out.transpose(0, 1), out[-1].unsqueeze(0)


def run_gru(gru: nn.GRU, x: torch.Tensor, hidden: torch.Tensor | None = None):
    """``gru(x, hidden)`` (batch first), through ``gru_scan`` when ``wants_scan``."""
    if not wants_scan(gru, x):
        return gru(x, hidden)
    gx = nn.functional.linear(x, gru.weight_ih_l0, gru.bias_ih_l0)
    return gru_scan(gru, gx, hidden)
