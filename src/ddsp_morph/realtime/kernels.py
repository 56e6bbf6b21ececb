"""Compiled (numba) block kernels for the realtime path: the arithmetic of ``dsp.stream`` with
no per-operation dispatch. A torch op costs 2-7 µs on the CPU whatever its size, and one
128-sample block of harmonic + noise + reverb is ~60 of them; here the block is a few loops.

Pure numpy in, numpy out, state in caller-owned arrays (updated in place); nothing allocated
per call beyond small scratch arrays. Equal to ``dsp.stream`` block after block to float32
rounding (tested). Compiled on first use and cached on disk (``cache=True``).

- ``harmonic_block``: the oscillator bank. The phase is accumulated in float64 and wrapped;
  sin(k * phase) for k = 1..K comes from the Chebyshev recurrence
  sin(k x) = 2 cos(x) sin((k - 1) x) - sin((k - 2) x) in float64 (one multiply-add per
  harmonic and sample instead of a sine), exact to ~1e-13 for 100 harmonics.
- ``noise_block``: per-frame FIR taps (magnitudes @ the bands' frequency-sampling FIRs) and a
  direct convolution of the frame's noise, carrying the filter's ringing.
- ``reverb_block``: uniformly partitioned overlap-save convolution over a ring of input
  spectra, with an in-place radix-2 FFT (``fft_radix2``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

TWO_PI = 2.0 * math.pi


@njit(cache=True, fastmath=False)
def harmonic_block(
    f0_hz, amplitude, distribution, ramp, sample_rate, state, prev_amps, out
):  # pragma: no cover - compiled
    """One block of the harmonic bank (batch 1).

    Args:
        f0_hz: float32 [M] (> 0). amplitude: float32 [M]. distribution: float32 [M, K].
        ramp: float32 [H], the new frame's weight at each sample of a hop (``upsample_ramp``).
        state: float64 [3]: phase (radians, wrapped), last f0 (0 = no block yet), and a flag
            that prev_amps holds the last frame's amplitudes.
        prev_amps: float32 [K], the last frame's per-harmonic amplitudes (updated).
        out: float32 [M * H], written.
    """
    m, k_total = distribution.shape
    hop = ramp.shape[0]
    harmonic_block_into(
        f0_hz, amplitude, distribution, ramp, sample_rate, state, prev_amps, out,
        np.empty((m, k_total), dtype=np.float32), np.empty(k_total, dtype=np.float32),
        np.empty((5, hop)), np.empty(hop, dtype=np.int64),
    )  # fmt: skip


@njit(cache=True, fastmath=False)
def harmonic_block_into(
    f0_hz, amplitude, distribution, ramp, sample_rate, state, prev_amps, out,
    amps, a_start, scratch, kmax,
):  # fmt: skip  # pragma: no cover - compiled
    """``harmonic_block`` with its scratch given (nothing allocated): amps float32 [M, K],
    a_start float32 [K], scratch float64 [5, H], kmax int64 [H]."""
    m, k_total = distribution.shape
    hop = ramp.shape[0]
    nyquist = sample_rate / 2.0
    omega = TWO_PI / sample_rate
    for i in range(m):
        total = np.float32(0.0)
        for k in range(k_total):
            v = distribution[i, k] if np.float32(f0_hz[i] * np.float32(k + 1)) < nyquist else 0.0
            amps[i, k] = v
            total += v
        scale = amplitude[i] / max(total, np.float32(1e-7))
        for k in range(k_total):
            amps[i, k] *= scale
    if state[2] == 0.0:
        prev_amps[:] = amps[0]
        state[1] = f0_hz[0]
        state[2] = 1.0
    phase = state[0]
    f_start = np.float32(state[1])
    a_start[:] = prev_amps
    # per sample of a hop: phase, sin and 2 cos of it, and how many harmonics sound
    s0, s1, c2, acc_a, acc_b = scratch[0], scratch[1], scratch[2], scratch[3], scratch[4]
    for i in range(m):
        f_end = f0_hz[i]
        k_block = 0
        if f_end == f_start:
            # a steady frequency: one sine and cosine of the step, then each sample's sin and
            # cos by rotation (error ~1e-14 over a hop); the phase itself accumulates as below
            step = np.float64(f_start) * omega
            kn = min(k_total, int(math.ceil(nyquist / f_start)) if f_start > 0 else k_total)
            while kn > 0 and np.float32(f_start * kn) >= nyquist:
                kn -= 1
            k_block = kn
            cd, sd = math.cos(step), math.sin(step)
            phase += step
            if phase >= TWO_PI:
                phase -= TWO_PI * math.floor(phase / TWO_PI)
            sv, cv = math.sin(phase), math.cos(phase)
            for n in range(hop):
                kmax[n] = kn
                s1[n] = sv
                c2[n] = 2.0 * cv
                if n + 1 < hop:
                    phase += step
                    if phase >= TWO_PI:
                        phase -= TWO_PI * math.floor(phase / TWO_PI)
                    sv, cv = sv * cd + cv * sd, cv * cd - sv * sd
            _harmonic_sums(s0, s1, c2, kmax, k_block, a_start, amps[i], acc_a, acc_b)
            for n in range(hop):
                out[i * hop + n] = acc_a[n] + ramp[n] * (acc_b[n] - acc_a[n])
            for k in range(k_total):
                a_start[k] = amps[i, k]
            continue
        for n in range(hop):
            f = f_start + ramp[n] * (f_end - f_start)  # float32, as dsp.stream
            phase += np.float64(f) * omega
            if phase >= TWO_PI:
                phase -= TWO_PI * math.floor(phase / TWO_PI)
            kn = min(k_total, int(math.ceil(nyquist / f)) if f > 0 else k_total)
            while kn > 0 and np.float32(f * kn) >= nyquist:
                kn -= 1
            kmax[n] = kn
            k_block = max(k_block, kn)
            s1[n] = math.sin(phase)
            c2[n] = 2.0 * math.cos(phase)
        _harmonic_sums(s0, s1, c2, kmax, k_block, a_start, amps[i], acc_a, acc_b)
        for n in range(hop):
            out[i * hop + n] = acc_a[n] + ramp[n] * (acc_b[n] - acc_a[n])
        f_start = f_end
        for k in range(k_total):
            a_start[k] = amps[i, k]
    prev_amps[:] = amps[m - 1]
    state[0] = phase
    state[1] = f0_hz[m - 1]


@njit(cache=True, fastmath=True)
def _harmonic_sums(s0, s1, c2, kmax, k_block, a_start, a_end, acc_a, acc_b):  # pragma: no cover
    """acc_a[n] = sum_k sin(k x_n) a_start[k], acc_b likewise with a_end, over the harmonics
    below Nyquist at each sample (k < kmax[n]), by the Chebyshev recurrence; the loop over
    samples is the inner one, so it runs in SIMD lanes."""
    hop = s1.shape[0]
    for n in range(hop):
        s0[n] = 0.0
        acc_a[n] = 0.0
        acc_b[n] = 0.0
    for k in range(k_block):
        ask = np.float64(a_start[k])
        aek = np.float64(a_end[k])
        for n in range(hop):
            sv = s1[n] if k < kmax[n] else 0.0
            acc_a[n] += sv * ask
            acc_b[n] += sv * aek
            s2 = c2[n] * s1[n] - s0[n]
            s0[n] = s1[n]
            s1[n] = s2


@njit(cache=True)
def noise_block(magnitudes, noise, basis, tail, out):  # pragma: no cover - compiled
    """One block of filtered noise (batch 1).

    Args:
        magnitudes: float32 [M, B]; noise: float32 [M * hop] white noise.
        basis: float32 [B, L], each band's windowed linear-phase FIR (``dsp.stream``'s
            ``basis_reversed`` read backwards: ``fir_basis``).
        tail: float32 [L - 1], the ringing carried from the last block (updated).
        out: float32 [M * hop], written.
    """
    taps_n = basis.shape[1]
    noise_block_into(
        magnitudes, 0, noise, basis, tail, out,
        np.empty(noise.shape[0] + taps_n - 1, dtype=np.float32), np.empty(taps_n, dtype=np.float32),
    )  # fmt: skip


@njit(cache=True, fastmath=True)
def noise_block_into(
    magnitudes, band0, noise, basis, tail, out, acc, taps
):  # pragma: no cover - compiled
    """``noise_block`` with its scratch given (nothing allocated): acc float32 [M * hop + L - 1],
    taps float32 [L]; the bands are ``magnitudes[:, band0:]`` (a slice would cost a record)."""
    m = magnitudes.shape[0]
    n_bands = basis.shape[0]
    taps_n = basis.shape[1]
    hop = noise.shape[0] // m
    r = taps_n - 1
    acc[:] = 0.0
    for j in range(r):  # (a loop: ``acc[:r] += tail`` would allocate a temporary)
        acc[j] = tail[j]
    for i in range(m):
        taps[:] = 0.0
        for b in range(n_bands):
            mb = magnitudes[i, band0 + b]
            for j in range(taps_n):
                taps[j] += mb * basis[b, j]  # (forward: 4x faster than a reversed store)
        # y[t] = sum_j x[t - j] h[j], h = taps
        base = i * hop
        for s in range(hop):
            x = noise[base + s]
            for j in range(taps_n):
                acc[base + s + j] += x * taps[j]
    out[:] = acc[: m * hop]
    tail[:] = acc[m * hop :]


@njit(cache=True)
def fft_radix2(re, im, cos_t, sin_t, inverse):  # pragma: no cover - compiled
    """In-place iterative radix-2 complex FFT (length n a power of two), unnormalized;
    ``cos_t``, ``sin_t`` = cos, sin(2 pi j / n) for j < n / 2 (``twiddles``)."""
    n = re.shape[0]
    j = 0
    for i in range(1, n):
        bit = n >> 1
        while j & bit:
            j ^= bit
            bit >>= 1
        j |= bit
        if i < j:
            re[i], re[j] = re[j], re[i]
            im[i], im[j] = im[j], im[i]
    sign = 1.0 if inverse else -1.0
    length = 2
    while length <= n:
        half = length // 2
        stride = n // length
        for start in range(0, n, length):
            for k in range(half):
                cr = cos_t[k * stride]
                ci = sign * sin_t[k * stride]
                a = start + k
                b = a + half
                tr = re[b] * cr - im[b] * ci
                ti = re[b] * ci + im[b] * cr
                re[b] = re[a] - tr
                im[b] = im[a] - ti
                re[a] += tr
                im[a] += ti
        length *= 2


def fir_basis(basis_reversed: np.ndarray) -> np.ndarray:
    """``noise_block``'s basis from ``dsp.stream.NoiseStream.basis_reversed``: each band's FIR
    in time order, contiguous."""
    return np.ascontiguousarray(np.asarray(basis_reversed, np.float32)[:, ::-1])


def twiddles(n: int) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of 2 pi j / n for j < n / 2, for ``fft_radix2``."""
    ang = 2.0 * np.pi * np.arange(n // 2) / n
    return np.cos(ang), np.sin(ang)


@njit(cache=True, fastmath=True)
def _spectral_mac(ring_re, ring_im, ir_re, ir_im, off, acc_re, acc_im):  # pragma: no cover
    """acc += sum over partitions q of ring[q] * ir[off + q] (complex, bins in SIMD lanes)."""
    p, n_bins = ring_re.shape
    for q in range(p):
        xr, xi = ring_re[q], ring_im[q]
        hr, hi = ir_re[off + q], ir_im[off + q]
        for f in range(n_bins):
            acc_re[f] += xr[f] * hr[f] - xi[f] * hi[f]
            acc_im[f] += xr[f] * hi[f] + xi[f] * hr[f]


@njit(cache=True)
def reverb_block(
    block, frame, ring_re, ring_im, ir_re, ir_im, cos_t, sin_t, head, dry, out
):  # pragma: no cover - compiled
    """One block of partitioned overlap-save reverb (batch 1): out = dry * block + block * IR.

    Args:
        block: float32 [B]. frame: float64 [2B], the last two blocks (updated).
        ring_re, ring_im: float32 [P, B + 1], the input spectra, newest at ``head`` (updated).
        ir_re, ir_im: float32 [2P, B + 1], the IR's partition spectra (times wet) twice over.
        cos_t, sin_t: ``twiddles(2B)``.
        head: the ring's current head; returns the new one.
        out: float32 [B], written.
    """
    b = block.shape[0]
    return reverb_block_into(
        block, frame, ring_re, ring_im, ir_re, ir_im, cos_t, sin_t, head, dry, out,
        np.empty((2, 2 * b)), np.empty((2, b + 1), dtype=np.float32),
    )  # fmt: skip


@njit(cache=True)
def reverb_block_into(
    block, frame, ring_re, ring_im, ir_re, ir_im, cos_t, sin_t, head, dry, out, fft, acc
):  # pragma: no cover - compiled
    """``reverb_block`` with its scratch given (nothing allocated): fft float64 [2, 2B],
    acc float32 [2, B + 1]."""
    b = block.shape[0]
    p = ring_re.shape[0]
    n = 2 * b
    for i in range(b):  # (a loop: overlapping slices would be copied through a temporary)
        frame[i] = frame[b + i]
    frame[b:] = block
    head = (head - 1) % p
    re, im = fft[0], fft[1]
    re[:] = frame
    im[:] = 0.0
    fft_radix2(re, im, cos_t, sin_t, False)
    ring_re[head] = re[: b + 1]  # float32, as the torch kernel's complex64
    ring_im[head] = im[: b + 1]
    acc_re, acc_im = acc[0], acc[1]
    acc_re[:] = 0.0
    acc_im[:] = 0.0
    _spectral_mac(ring_re, ring_im, ir_re, ir_im, p - head, acc_re, acc_im)
    # Hermitian extension, then the inverse transform
    for f in range(b + 1):
        re[f] = acc_re[f]
        im[f] = acc_im[f]
    for f in range(1, b):
        re[n - f] = acc_re[f]
        im[n - f] = -acc_im[f]
    fft_radix2(re, im, cos_t, sin_t, True)
    for i in range(b):
        out[i] = dry * block[i] + re[b + i] / n
    return head
