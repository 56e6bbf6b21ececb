"""Harmonic oscillator bank.

The fast path never materializes the [batch, n_samples, n_harmonics] phase and amplitude
tensors that magenta/ddsp and ddsp_pytorch build. The fundamental's phase is accumulated
once per sample (float64, wrapped to [0, 2*pi) so minutes of audio do not drift), and the
harmonic sum is evaluated hop by hop as a matrix product ``sin(k * phase) @ amplitudes``.
A custom autograd function recomputes the sines in the backward pass chunk by chunk, so
peak memory is one chunk, not the whole bank. Each frame computes only the harmonics its own
pitch leaves below Nyquist (frames are grouped by that count), not the batch's lowest
pitch's: on batches of the default corpus a third of the sines.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ddsp_morph.dsp.core import check_shape, upsample_frames, upsample_ramp

TWO_PI = 2.0 * math.pi
# Elements of one [batch, chunk_frames, hop, n_harmonics] chunk; bounds peak memory.
CHUNK_ELEMENTS = 1 << 22


class HarmonicState(NamedTuple):
    """What a block of harmonic synthesis hands to the next block.

    phase: Shape [batch], float64, radians in [0, 2*pi): phase of the last sample.
    f0_hz: Shape [batch]: the last control frame's f0.
    amplitudes: Shape [batch, n_harmonics]: the last frame's per-harmonic amplitudes.
    """

    phase: torch.Tensor
    f0_hz: torch.Tensor
    amplitudes: torch.Tensor


def remove_above_nyquist(
    f0_hz: torch.Tensor, harmonic_distribution: torch.Tensor, *, sample_rate: int
) -> torch.Tensor:
    """Zero the harmonics at or above Nyquist.

    Args:
        f0_hz: Shape [batch, n_frames].
        harmonic_distribution: Shape [batch, n_frames, n_harmonics].

    Returns:
        Shape [batch, n_frames, n_harmonics], a new tensor.
    """
    n_harmonics = harmonic_distribution.shape[-1]
    k = torch.arange(1, n_harmonics + 1, device=f0_hz.device, dtype=f0_hz.dtype)
    below = (f0_hz.unsqueeze(-1) * k) < (sample_rate / 2.0)
    return harmonic_distribution * below.to(harmonic_distribution.dtype)


def normalize_distribution(
    harmonic_distribution: torch.Tensor, *, eps: float = 1e-7
) -> torch.Tensor:
    """Scale each frame's harmonic distribution to sum to one (all-zero frames stay zero)."""
    total = harmonic_distribution.sum(dim=-1, keepdim=True)
    return harmonic_distribution / total.clamp_min(eps)


def _check_inputs(
    f0_hz: torch.Tensor, amplitude: torch.Tensor, harmonic_distribution: torch.Tensor
) -> torch.Tensor:
    check_shape("f0_hz", f0_hz, "[batch, n_frames]", 2)
    check_shape("harmonic_distribution", harmonic_distribution, "[batch, n_frames, n_harmonics]", 3)
    if amplitude.ndim == 2:
        amplitude = amplitude.unsqueeze(-1)
    check_shape("amplitude", amplitude, "[batch, n_frames] or [batch, n_frames, 1]", 3)
    if harmonic_distribution.shape[:2] != f0_hz.shape or amplitude.shape[:2] != f0_hz.shape:
        raise ValueError(
            "f0_hz, amplitude and harmonic_distribution must share [batch, n_frames]: got "
            f"{tuple(f0_hz.shape)}, {tuple(amplitude.shape)}, {tuple(harmonic_distribution.shape)}"
        )
    if amplitude.shape[-1] != 1:
        raise ValueError(f"amplitude: expected [batch, n_frames, 1], got {tuple(amplitude.shape)}")
    if f0_hz.numel() and bool((f0_hz <= 0).any()):
        raise ValueError(
            f"f0_hz: must be > 0 Hz everywhere (min {float(f0_hz.min()):.3g}); "
            "hold the last pitch through unvoiced frames and let the amplitude go to zero"
        )
    return amplitude


def accumulate_phase(
    f0_hz_samples: torch.Tensor, *, sample_rate: int, initial_phase: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Running phase of an oscillator, accumulated in float64 and wrapped to [0, 2*pi).

    ``phase[n] = initial_phase + 2*pi/sample_rate * sum(f0[0..n])``.

    Args:
        f0_hz_samples: Shape [batch, n_samples].
        initial_phase: Shape [batch], or None for zero.

    Returns:
        (phase, final_phase): Shape [batch, n_samples] in the dtype of f0 (float32 rounding may
        give exactly 2*pi), and [batch] float64 in [0, 2*pi).
    """
    omega = f0_hz_samples.to(torch.float64) * (TWO_PI / sample_rate)
    phase = torch.cumsum(omega, dim=1)
    if initial_phase is not None:
        phase = phase + initial_phase.to(torch.float64).reshape(-1, 1)
    phase = torch.remainder(phase, TWO_PI)
    final = (
        phase[:, -1].detach()
        if phase.shape[1]
        else torch.zeros(phase.shape[0], dtype=torch.float64)
    )
    return phase.to(f0_hz_samples.dtype), final


# Frames are grouped by how many harmonics they need, rounded up to a multiple of this.
GROUP_STEP = 8
# Up to this many frames (a streaming block) are one group, of the lowest pitch's harmonics.
SMALL_ROWS = 16


def _sines(phase: torch.Tensor, limit: torch.Tensor, k: torch.Tensor, cos: bool) -> torch.Tensor:
    """sin(k*phase) (or k*cos(k*phase)), zero where k >= ``limit`` (Nyquist / f0 per sample).
    phase, limit: [R, H]; k: [K]. Returns [R, H, K]."""
    kphase = phase.unsqueeze(-1) * k
    sines = torch.cos(kphase).mul_(k) if cos else torch.sin(kphase)
    # Harmonics below every sample's limit need no mask: only the top few (the frames of a
    # group differ by < GROUP_STEP harmonics) are masked, which measured 3x faster than
    # masking the whole [R, H, K] tensor. Under tracing every harmonic is masked: the count
    # read from the example's pitch would be frozen into the graph.
    n_safe = 0
    if limit.numel() and not torch.jit.is_tracing():
        n_safe = max(0, min(k.shape[0], math.ceil(float(limit.min())) - 1))
    if n_safe < k.shape[0]:
        sines[..., n_safe:].mul_(k[n_safe:] < limit.unsqueeze(-1))
    return sines


def _one_group(f0: torch.Tensor, n_harmonics: int, nyquist: float):
    """Every frame in one group (rows None) of the harmonics the lowest f0 leaves below Nyquist."""
    lowest = max(float(f0.min()), 1e-3)
    return [(max(1, min(n_harmonics, math.ceil(nyquist / lowest))), None)]


def _frame_groups(f0: torch.Tensor, n_harmonics: int, nyquist: float):
    """Frames grouped by the harmonics that can sound in them: [(kc, rows)], rows indexing the
    flattened [batch * n_frames] frames whose harmonics above ``kc`` are all at or above Nyquist
    (kc = Nyquist over the frame's lowest f0, rounded up to ``GROUP_STEP``); rows None: every
    frame. A batch of clips in different registers then computes each clip's own harmonics,
    not the lowest clip's. A few frames (a streaming block) make one group: grouping would
    cost more than it saves. Under torch.jit tracing one group of all harmonics: a
    data-dependent split would be frozen into the graph."""
    n_rows = f0.shape[0] * f0.shape[1]
    if torch.jit.is_tracing() or n_rows == 0:
        return [(n_harmonics, None)]
    if n_rows <= SMALL_ROWS:
        return _one_group(f0, n_harmonics, nyquist)
    lowest = f0.reshape(n_rows, -1).amin(dim=-1).clamp_min(1e-3)
    kc = torch.ceil(nyquist / lowest).clamp(1, n_harmonics)
    kc = (torch.ceil(kc / GROUP_STEP) * GROUP_STEP).clamp_max(n_harmonics).long()
    values = torch.unique(kc).tolist()
    if len(values) == 1:
        return [(int(values[0]), None)]
    return [(int(v), torch.nonzero(kc == v).squeeze(1)) for v in values]


def _row_chunks(rows: torch.Tensor | None, n_rows: int, hop: int, kc: int):
    """``rows`` (None: all ``n_rows``, as slices) in pieces of at most CHUNK_ELEMENTS sines."""
    step = max(1, CHUNK_ELEMENTS // max(1, hop * kc))
    if rows is None:
        for i in range(0, n_rows, step):
            yield slice(i, min(n_rows, i + step))
        return
    for i in range(0, rows.shape[0], step):
        yield rows[i : i + step]


def _bank_forward(phase, f0, a_start, a_end, ramp, nyquist: float, groups=None) -> torch.Tensor:
    """The harmonic sum, group by group (``_frame_groups``, computed here when not given) and
    chunk by chunk. Shapes: phase, f0 [B, M, H]; a_* [B, M, K]; ramp [H]."""
    batch, n_frames, hop = phase.shape
    n_harmonics = a_start.shape[-1]
    k = torch.arange(1, n_harmonics + 1, dtype=phase.dtype, device=phase.device)
    ph, lim = phase.reshape(-1, hop), (nyquist / f0).reshape(-1, hop)
    ends = torch.stack([a_start, a_end], dim=-1).reshape(-1, n_harmonics, 2)  # [R, K, 2]
    out = phase.new_empty(batch * n_frames, hop)
    if groups is None:
        groups = _frame_groups(f0, n_harmonics, nyquist)
    for kc, group in groups:
        for rows in _row_chunks(group, ph.shape[0], hop, kc):
            s = _sines(ph[rows], lim[rows], k[:kc], cos=False)  # [r, H, kc]
            y2 = torch.matmul(s, ends[rows, :kc])  # [r, H, 2]
            out[rows] = torch.lerp(y2[..., 0], y2[..., 1], ramp)
    return out.reshape(batch, n_frames, hop)


class _HarmonicBank(torch.autograd.Function):
    """y[m, h] = sum_k sin(k*phase[m, h]) * ((1 - r[h]) * a_start[m, k] + r[h] * a_end[m, k])."""

    @staticmethod
    def forward(ctx, phase, f0, a_start, a_end, ramp, nyquist):  # type: ignore[override]
        groups = _frame_groups(f0, a_start.shape[-1], nyquist)
        out = _bank_forward(phase, f0, a_start, a_end, ramp, nyquist, groups)
        ctx.save_for_backward(phase, f0, a_start, a_end, ramp)
        ctx.nyquist, ctx.groups = nyquist, groups  # the backward pass reuses the grouping
        return out

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        phase, f0, a_start, a_end, ramp = ctx.saved_tensors
        batch, n_frames, hop = phase.shape
        n_harmonics = a_start.shape[-1]
        k = torch.arange(1, n_harmonics + 1, dtype=phase.dtype, device=phase.device)
        need_phase, _, need_start, need_end = ctx.needs_input_grad[:4]
        ph, lim = phase.reshape(-1, hop), (ctx.nyquist / f0).reshape(-1, hop)
        g_all = grad_out.reshape(-1, hop)
        ends = torch.stack([a_start, a_end], dim=-1).reshape(-1, n_harmonics, 2)
        grad_phase = torch.zeros_like(ph) if need_phase else None
        grad_ends = torch.zeros_like(ends) if need_start or need_end else None
        weights = torch.stack([1.0 - ramp, ramp], dim=-1)  # [H, 2]
        for kc, group in ctx.groups:
            for rows in _row_chunks(group, ph.shape[0], hop, kc):
                g = g_all[rows]  # [r, H]
                if grad_ends is not None:
                    s = _sines(ph[rows], lim[rows], k[:kc], cos=False)
                    d_ends = torch.matmul(s.transpose(-1, -2), g.unsqueeze(-1) * weights)
                    grad_ends[rows, :kc] = d_ends  # [r, kc, 2]
                if grad_phase is not None:
                    c = _sines(ph[rows], lim[rows], k[:kc], cos=True)
                    z2 = torch.matmul(c, ends[rows, :kc])  # [r, H, 2]
                    grad_phase[rows] = g * torch.lerp(z2[..., 0], z2[..., 1], ramp)
        shape = (batch, n_frames, n_harmonics)
        grad_start = grad_ends[..., 0].reshape(shape) if need_start else None
        grad_end = grad_ends[..., 1].reshape(shape) if need_end else None
        if grad_phase is not None:
            grad_phase = grad_phase.reshape(batch, n_frames, hop)
        return grad_phase, None, grad_start, grad_end, None, None


def harmonic_synth(
    f0_hz: torch.Tensor,
    amplitude: torch.Tensor,
    harmonic_distribution: torch.Tensor,
    *,
    sample_rate: int,
    hop_length: int,
    upsample: str = "hann",
    state: HarmonicState | None = None,
    return_state: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, HarmonicState]:
    """Additive synthesis of a harmonic tone from frame-rate controls.

    Harmonics at or above Nyquist are removed and the distribution renormalized per frame;
    controls are upsampled causally (see ``upsample_frames``); a harmonic that crosses
    Nyquist inside a hop is silenced at sample level.

    Args:
        f0_hz: Shape [batch, n_frames]; must be > 0.
        amplitude: Shape [batch, n_frames] or [batch, n_frames, 1]: total linear amplitude.
        harmonic_distribution: Shape [batch, n_frames, n_harmonics], non-negative.
        sample_rate: audio rate in Hz.
        hop_length: samples per control frame.
        upsample: "hann" or "linear".
        state: the state returned by the previous block, for block-by-block synthesis.
        return_state: also return the state for the next block.

    Returns:
        Audio of shape [batch, n_frames * hop_length], and the HarmonicState if asked.
    """
    amplitude = _check_inputs(f0_hz, amplitude, harmonic_distribution)
    batch, n_frames, _ = harmonic_distribution.shape
    dist = remove_above_nyquist(f0_hz, harmonic_distribution, sample_rate=sample_rate)
    amps = amplitude * normalize_distribution(dist)  # [B, M, K]
    prev_f0 = None if state is None else state.f0_hz.reshape(batch, 1).to(f0_hz.dtype)
    prev_amps = None if state is None else state.amplitudes.to(amps.dtype)
    f0_samples = upsample_frames(f0_hz.unsqueeze(-1), hop_length, method=upsample, previous=prev_f0)
    f0_samples = f0_samples.squeeze(-1)  # [B, N]
    phase, final_phase = accumulate_phase(
        f0_samples, sample_rate=sample_rate, initial_phase=None if state is None else state.phase
    )
    a_start = torch.cat(
        [amps[:, :1] if prev_amps is None else prev_amps.unsqueeze(1), amps[:, :-1]], 1
    )
    ramp = upsample_ramp(hop_length, method=upsample, dtype=amps.dtype, device=amps.device)
    bank_inputs = (
        phase.reshape(batch, n_frames, hop_length),
        f0_samples.detach().reshape(batch, n_frames, hop_length),
        a_start,
        amps,
        ramp,
        sample_rate / 2.0,
    )
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (phase, a_start, amps))
    # Without autograd, skip the Function's bookkeeping (it matters for small streaming blocks).
    y = _HarmonicBank.apply(*bank_inputs) if needs_grad else _bank_forward(*bank_inputs)
    audio = y.reshape(batch, n_frames * hop_length)
    if not return_state:
        return audio
    new_state = HarmonicState(final_phase, f0_hz[:, -1].detach(), amps[:, -1].detach())
    return audio, new_state


def harmonic_synth_reference(
    f0_hz: torch.Tensor,
    amplitude: torch.Tensor,
    harmonic_distribution: torch.Tensor,
    *,
    sample_rate: int,
    hop_length: int,
    upsample: str = "hann",
) -> torch.Tensor:
    """The straightforward way (magenta/ddsp, ddsp_pytorch): materialize the bank.

    Builds [batch, n_samples, n_harmonics] frequencies, cumulative-sums them per harmonic in
    float32, and sums the sines. Kept as the benchmark's reference and a test oracle.
    """
    amplitude = _check_inputs(f0_hz, amplitude, harmonic_distribution)
    n_harmonics = harmonic_distribution.shape[-1]
    dist = remove_above_nyquist(f0_hz, harmonic_distribution, sample_rate=sample_rate)
    amps = amplitude * normalize_distribution(dist)
    amps_samples = upsample_frames(amps, hop_length, method=upsample)  # [B, N, K]
    f0_samples = upsample_frames(f0_hz.unsqueeze(-1), hop_length, method=upsample)  # [B, N, 1]
    k = torch.arange(1, n_harmonics + 1, dtype=f0_hz.dtype, device=f0_hz.device)
    freqs = f0_samples * k  # [B, N, K]
    amps_samples = amps_samples * (freqs < sample_rate / 2.0)
    phases = torch.cumsum(TWO_PI * freqs / sample_rate, dim=1)
    return (torch.sin(phases) * amps_samples).sum(-1)
