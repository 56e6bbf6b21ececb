"""The compiled realtime engine: ``StreamingEngine``'s block (decoder + harmonic + noise +
reverb) as one numba function call per block, no torch op in the block path.

Why: a torch op costs 2-7 µs on the CPU whatever its size; the torch engine's block is ~100
of them, so the tiny decoder spent most of its time dispatching and the full-size one a good
part. Here the decoder's matrix-vector products are BLAS calls (``np.dot``) on weights packed
once into flat buffers, and everything else (layer norm, gates, the DSP kernels of
``kernels``) is compiled loops.

- The arithmetic is ``DecoderStep``'s (the same weight layout, taken from it), so the output
  equals the offline render to float32 rounding, block after block (tested).
- The f0 and loudness branches (each input's MLP and its share of the GRU input and output
  MLP projections) are functions of one number each: tabulated at ``input_tables`` points
  over the playable range and interpolated linearly. They are 3 of the full-size decoder's
  4.3 M multiply-adds per frame; the interpolation error is below float32 rounding of the
  output at 2048 points (measured by the bench).
- ``weights="int16"`` / ``"int8"``: integer matrices with one float scale per output row,
  half / a quarter of the weight traffic; int16 is float32's output to ~90 dB SNR, int8 to
  ~45-60 dB (the bench measures both).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit
from threadpoolctl import threadpool_limits

from ddsp_morph.dsp.core import upsample_ramp
from ddsp_morph.realtime.engine import StreamingEngine, check_block
from ddsp_morph.realtime.kernels import (
    fir_basis,
    harmonic_block,
    noise_block,
    reverb_block,
    twiddles,
)

WEIGHT_FORMATS = ("float32", "int16", "int8")
_INT_FORMATS = {"int16": (np.int16, 32767), "int8": (np.int8, 127)}


@njit(cache=True, fastmath=True)
def _matvec(wbuf, qbuf, table, index, x, out):  # pragma: no cover - compiled
    """out = W @ x for matrix ``index`` of the packed weights: ``table[index]`` holds
    (offset, rows, cols, integer flag); a float32 matrix lies in ``wbuf`` (one BLAS call), an
    integer one (int8 or int16) in ``qbuf`` with its row scales in ``wbuf`` at ``offset``."""
    o, rows, cols, q = table[index]
    if q == 0:
        out[:] = np.dot(wbuf[o : o + rows * cols].reshape((rows, cols)), x)
    else:
        w = qbuf[o : o + rows * cols].reshape((rows, cols))
        for i in range(rows):
            acc = np.float32(0.0)
            for j in range(cols):
                acc += np.float32(w[i, j]) * x[j]
            out[i] = acc * wbuf[o + i]


@njit(cache=True)
def _vec(vbuf, table, index):  # pragma: no cover - compiled
    o, n = table[index]
    return vbuf[o : o + n]


@njit(cache=True, fastmath=True)
def _layer_norm_leaky(x, gain, bias, eps, slope):  # pragma: no cover - compiled
    n = x.shape[0]
    mean = 0.0
    for i in range(n):
        mean += x[i]
    mean /= n
    var = 0.0
    for i in range(n):
        d = x[i] - mean
        var += d * d
    inv = 1.0 / math.sqrt(var / n + eps)
    for i in range(n):
        v = np.float32((x[i] - mean) * inv) * gain[i] + bias[i]
        x[i] = v if v >= 0 else v * slope


# tanh as x P(x^2) / Q(x^2), fitted by reweighted least squares on [0, 7.9] (beyond, tanh is
# 1 within 3e-7): within 6e-7 of tanh everywhere (tested). Unlike libm's tanhf and expf, which
# are calls, it vectorizes: with the GRU's gates this way a voice's update is 14x faster.
TANH_P = (0.9999991579685623, 0.12708752768434678, 0.0026935696874718276, 7.151030847526651e-06,
          -6.140653374595698e-09)  # fmt: skip
TANH_Q = (1.0, 0.460417769578746, 0.022836160608422803, 0.00019645990199043903)
TANH_CLAMP = 7.9


# error_model="numpy": no zero-division check, which would keep LLVM from vectorizing the loop
@njit(cache=True, fastmath=True, inline="always", error_model="numpy")
def tanh32(x):  # pragma: no cover - compiled
    x = min(max(x, np.float32(-TANH_CLAMP)), np.float32(TANH_CLAMP))
    x2 = x * x
    p = np.float32(TANH_P[4])
    for c in (TANH_P[3], TANH_P[2], TANH_P[1], TANH_P[0]):
        p = p * x2 + np.float32(c)
    q = np.float32(TANH_Q[3])
    for c in (TANH_Q[2], TANH_Q[1], TANH_Q[0]):
        q = q * x2 + np.float32(c)
    return x * p / q


@njit(cache=True, fastmath=True, error_model="numpy")
def gru_update(pre, gh, b_hh, hidden):  # pragma: no cover - compiled
    """The GRU's gates and new state, in place: pre [>= 3G], the input projection (r, u, n
    parts); gh [3G], W_hh @ hidden; b_hh [3G]; hidden [G]. sigmoid(x) = (1 + tanh(x / 2)) / 2."""
    g = hidden.shape[0]
    half = np.float32(0.5)
    for j in range(g):
        r = half + half * tanh32(half * (pre[j] + gh[j] + b_hh[j]))
        u = half + half * tanh32(half * (pre[g + j] + gh[g + j] + b_hh[g + j]))
        c = tanh32(pre[2 * g + j] + r * (gh[2 * g + j] + b_hh[2 * g + j]))
        hidden[j] = c + u * (hidden[j] - c)


@njit(cache=True, fastmath=True)
def _mlp_rest(
    h_a, h_b, out, wbuf, qbuf, mtab, m_first, vbuf, vtab, v_first, n_layers, eps, slope
):  # pragma: no cover - compiled
    """An input branch from its first layer's output (``h_a``, before the norm): norm and
    activation, layers 2..n (matrices from ``m_first``), then the stacked projection (the
    next matrix) into ``out``; (bias, ln gain, ln bias) per layer from vector ``v_first``."""
    _layer_norm_leaky(h_a, _vec(vbuf, vtab, v_first + 1), _vec(vbuf, vtab, v_first + 2), eps, slope)
    for layer in range(1, n_layers):
        _matvec(wbuf, qbuf, mtab, m_first + layer - 1, h_a, h_b)
        v = v_first + 3 * layer
        b = _vec(vbuf, vtab, v)
        for j in range(h_b.shape[0]):
            h_b[j] += b[j]
        _layer_norm_leaky(h_b, _vec(vbuf, vtab, v + 1), _vec(vbuf, vtab, v + 2), eps, slope)
        h_a[:] = h_b
    _matvec(wbuf, qbuf, mtab, m_first + n_layers - 1, h_a, out)


@njit(cache=True, fastmath=True)
def latent_share(
    z, bias, wbuf, qbuf, mtab, vbuf, vtab, n_layers, eps, slope, out
):  # pragma: no cover
    """The latent's share of the input projections: bias + stacked_z @ mlp_z(z), into out
    [3G + H]. Its matrices and vectors follow the head's in the packed tables."""
    zm = 2 * n_layers + n_layers + 2
    zv = 2 * (3 * n_layers + 1) + 3 * n_layers + 1
    hsize = _vec(vbuf, vtab, 0).shape[0]
    h_a = np.empty(hsize, dtype=np.float32)
    h_b = np.empty(hsize, dtype=np.float32)
    _matvec(wbuf, qbuf, mtab, zm, z, h_a)
    b = _vec(vbuf, vtab, zv)
    for j in range(hsize):
        h_a[j] += b[j]
    _mlp_rest(h_a, h_b, out, wbuf, qbuf, mtab, zm + 1, vbuf, vtab, zv, n_layers, eps, slope)
    for j in range(out.shape[0]):
        out[j] += bias[j]


@njit(cache=True, fastmath=True)
def decoder_block(
    inputs, share, hidden, wbuf, qbuf, mtab, vbuf, vtab, n_layers, eps, slope,
    tables, table_lo, table_inv_step, out,
):  # fmt: skip  # pragma: no cover - compiled
    """The decoder for one block (batch 1), ``DecoderStep``'s arithmetic.

    Args:
        inputs: float32 [M, 2], the scaled f0 and loudness inputs per frame.
        share: float32 [3G + H], the input projections' constant part (biases, and the
            latent's share when the model has one).
        hidden: float32 [G], the GRU state (updated).
        wbuf, qbuf, mtab: the packed matrices (see ``_matvec``), in this order: per input
            (f0, loudness) its MLP's layers 2..n and its stacked projection; then w_hh, the
            out-MLP's first layer's GRU block, its other layers, the head.
        vbuf, vtab: the packed vectors ((offset, length) rows), in this order: per input
            (bias, ln gain, ln bias) per layer and the first layer's weight column (the input
            is a scalar); then b_hh, the out MLP's first ln gain and bias, (bias, gain, bias)
            per other out layer, the head bias.
        tables: float32 [2, R, 3G + H]: per input, its branch (MLP then stacked projection,
            no bias) at R evenly spaced values from ``table_lo`` in steps of
            1 / ``table_inv_step``, interpolated linearly; inputs outside the table (and
            R < 2: no tables) take the exact path.
        out: float32 [M, n_heads], written: the heads' raw outputs.
    """
    m = inputs.shape[0]
    g = hidden.shape[0]
    hsize = _vec(vbuf, vtab, 0).shape[0]
    proj = np.empty((m, share.shape[0]), dtype=np.float32)
    h_a = np.empty(hsize, dtype=np.float32)
    h_b = np.empty(hsize, dtype=np.float32)
    tmp = np.empty(share.shape[0], dtype=np.float32)
    for f in range(m):
        proj[f] = share
        for i in range(2):
            mi = i * n_layers
            vi = i * (3 * n_layers + 1)
            col = _vec(vbuf, vtab, vi + 3 * n_layers)  # Linear(1, H): a column times a scalar
            x = inputs[f, i]
            n_rows = tables.shape[1]
            if n_rows > 1:
                pos = (x - table_lo[i]) * table_inv_step[i]
                if 0.0 <= pos <= n_rows - 1:
                    # the input's whole branch (MLP + projection), tabulated: interpolate
                    lo_row = min(int(pos), n_rows - 2)
                    w = np.float32(pos - lo_row)
                    row0, row1 = tables[i, lo_row], tables[i, lo_row + 1]
                    for j in range(share.shape[0]):
                        proj[f, j] += row0[j] + w * (row1[j] - row0[j])
                    continue
            b = _vec(vbuf, vtab, vi)
            for j in range(hsize):
                h_a[j] = col[j] * x + b[j]
            _mlp_rest(h_a, h_b, tmp, wbuf, qbuf, mtab, mi, vbuf, vtab, vi, n_layers, eps, slope)
            proj[f] += tmp
    base_m = 2 * n_layers
    base_v = 2 * (3 * n_layers + 1)
    b_hh = _vec(vbuf, vtab, base_v)
    gh = np.empty(3 * g, dtype=np.float32)
    y = np.empty(hsize, dtype=np.float32)
    for f in range(m):
        _matvec(wbuf, qbuf, mtab, base_m, hidden, gh)
        gru_update(proj[f], gh, b_hh, hidden)
        _matvec(wbuf, qbuf, mtab, base_m + 1, hidden, y)
        for j in range(hsize):
            y[j] += proj[f, 3 * g + j]
        _layer_norm_leaky(y, _vec(vbuf, vtab, base_v + 1), _vec(vbuf, vtab, base_v + 2), eps, slope)
        for layer in range(1, n_layers):
            _matvec(wbuf, qbuf, mtab, base_m + 1 + layer, y, h_b)
            v = base_v + 3 * layer
            b = _vec(vbuf, vtab, v)
            for j in range(hsize):
                h_b[j] += b[j]
            _layer_norm_leaky(h_b, _vec(vbuf, vtab, v + 1), _vec(vbuf, vtab, v + 2), eps, slope)
            y[:] = h_b
        _matvec(wbuf, qbuf, mtab, base_m + n_layers + 1, y, out[f])
        hb = _vec(vbuf, vtab, base_v + 3 * n_layers)
        for j in range(out.shape[1]):
            out[f, j] += hb[j]


@njit(cache=True)
def engine_block(
    f0_hz, loudness_db, scaling, inputs, share, hidden, wbuf, qbuf, mtab, vbuf, vtab, n_layers, eps, slope,
    tables, table_lo, table_inv_step, raw,
    exp_sigmoid, n_harm, ramp, sample_rate, h_state, prev_amps, harm,
    noise, noise_basis, noise_tail, noise_out,
    frame, ring_re, ring_im, ir_re, ir_im, cos_t, sin_t, head, dry, out,
):  # pragma: no cover - compiled  # fmt: skip
    """One whole block: decoder -> exp_sigmoid -> harmonic + noise (when ``noise_basis`` has
    rows) -> reverb (when ``ir_re`` has rows; else ``out`` is the dry sum). Returns the
    reverb ring's new head. ``scaling`` = (f0 scale, f0 offset, loudness mean, loudness std):
    the decoder's inputs are log2(f0) * scale + offset (MIDI / 127) and the standardized
    loudness. ``exp_sigmoid`` = (log exponent, max value, threshold)."""
    f0_scale, f0_offset, loudness_mean, loudness_std = scaling
    for i in range(f0_hz.shape[0]):
        inputs[i, 0] = math.log2(f0_hz[i]) * f0_scale + f0_offset
        inputs[i, 1] = (loudness_db[i] - loudness_mean) / loudness_std
    decoder_block(
        inputs, share, hidden, wbuf, qbuf, mtab, vbuf, vtab, n_layers, eps, slope,
        tables, table_lo, table_inv_step, raw,
    )  # fmt: skip
    log_exponent, max_value, threshold = exp_sigmoid
    for i in range(raw.shape[0]):
        for j in range(raw.shape[1]):
            s = 1.0 / (1.0 + math.exp(-raw[i, j]))
            raw[i, j] = math.exp(log_exponent * math.log(s)) * max_value + threshold
    harmonic_block(
        f0_hz, raw[:, 0].copy(), raw[:, 1 : 1 + n_harm].copy(), ramp, sample_rate,
        h_state, prev_amps, harm,
    )  # fmt: skip
    if noise_basis.shape[0] > 0:
        noise_block(raw[:, 1 + n_harm :].copy(), noise, noise_basis, noise_tail, noise_out)
        harm += noise_out
    if ir_re.shape[0] > 0:
        return reverb_block(
            harm, frame, ring_re, ring_im, ir_re, ir_im, cos_t, sin_t, head, dry, out
        )
    out[:] = harm
    return head


def _quantize(w: np.ndarray, fmt: str) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-output-row integers: w ~ q * scale[:, None], q of ``fmt`` (int8, int16)."""
    dtype, top = _INT_FORMATS[fmt]
    scale = np.abs(w).max(axis=1) / top
    scale[scale == 0] = 1.0
    q = np.clip(np.rint(w / scale[:, None]), -top, top).astype(dtype)
    return q, scale.astype(np.float32)


class FastEngine:
    """``StreamingEngine``'s block as one compiled call: the same constructor arguments and
    ``process`` signature (torch tensors in and out), plus ``process_numpy`` for callers that
    hold numpy arrays (the audio callback). The white noise comes from a numpy generator
    seeded with ``seed`` (pass ``noise`` to use the torch engine's).

    Args:
        weights: "float32" (equal to the torch engine to rounding), "int16" or "int8"
            (per-row symmetric integer decoder weights: half or a quarter of the weight
            traffic, slightly
            different output).
    """

    def __init__(
        self,
        model,
        *,
        frames_per_block: int = 1,
        instrument_id: int = 0,
        seed: int = 0,
        weights: str = "float32",
        input_tables: int = 2048,
    ) -> None:
        if input_tables == 1 or input_tables < 0:
            raise ValueError(f"input_tables: expected 0 (off) or at least 2, got {input_tables}")
        if weights not in WEIGHT_FORMATS:
            raise ValueError(f"weights: expected one of {WEIGHT_FORMATS}, got {weights!r}")
        # One BLAS thread in this process: a matrix-vector product of a few hundred rows gains
        # nothing from a second thread, and waits for it whenever the other core is busy (a
        # 2-thread BLAS gave 6 ms p99 blocks, 20x the median, in the soak with the other core
        # loaded). numba's np.dot calls scipy's BLAS, which this limits.
        threadpool_limits(1, user_api="blas")
        ref = StreamingEngine(
            model, frames_per_block=frames_per_block, instrument_id=instrument_id, seed=seed
        )
        self.reference = ref
        self.frames, self.hop, self.block_size = ref.frames, ref.hop, ref.block_size
        self.has_latent, self.seed, self.weights = ref.has_latent, seed, weights
        step = ref.decoder
        if [k for k in step.names if k != "z"] != ["f0", "loudness"]:
            raise ValueError(
                f"conditioning: the fast engine plays f0 and loudness, got {step.names}"
            )
        heads = list(step.output_sizes)
        if heads[:2] != ["amplitude", "harmonic_distribution"] or heads[2:] not in (
            [],
            ["noise_magnitudes"],
        ):
            raise ValueError(f"decoder heads: unexpected layout {heads}")
        self.step = step
        self.loudness_mean = float(model.loudness_mean)
        self.loudness_std = float(model.loudness_std)
        # the torch engine's input scaling and exp_sigmoid constants, as plain floats
        self.f0_scale, self.f0_offset = float(ref.f0_scale), float(ref.f0_offset)
        self._pack(step)
        synth = model.synth
        self.sample_rate = float(synth.sample_rate)
        self.ramp = upsample_ramp(self.hop, method=synth.harmonic.upsample).numpy()
        self.n_harmonics = synth.harmonic.n_harmonics
        self.n_heads = sum(step.output_sizes.values())
        self.noise_basis = (
            np.zeros((0, 1), np.float32)
            if ref.noise is None
            else fir_basis(ref.noise.basis_reversed.numpy())
        )
        self.ir_re = self.ir_im = np.zeros((0, 1), np.float32)
        self.cos_t, self.sin_t = twiddles(2 * self.block_size)
        self.dry = 1.0
        if ref.reverb is not None:
            spec = ref.reverb.ir_twice.numpy()
            self.ir_re = np.ascontiguousarray(spec.real, dtype=np.float32)
            self.ir_im = np.ascontiguousarray(spec.imag, dtype=np.float32)
            self.dry = float(ref.reverb.dry)
        self.scaling = (
            self.f0_scale,
            self.f0_offset,
            self.loudness_mean,
            self.loudness_std,
        )
        self._tabulate(int(input_tables), synth.sample_rate)
        self.exp_sigmoid = (
            float(ref.log_exponent),
            float(ref.max_value),
            float(ref.threshold),
        )
        self.reset()
        self._warm_up()

    def _pack(self, step) -> None:
        """DecoderStep's weights -> the flat buffers and tables ``decoder_block`` reads."""

        def f32(t: torch.Tensor) -> np.ndarray:
            return np.ascontiguousarray(t.detach().numpy(), dtype=np.float32).reshape(t.shape)

        n_layers = len(step.mlps["f0"])
        if len(step.mlps["loudness"]) != n_layers or len(step.out_rest) != n_layers - 1:
            raise ValueError("decoder: the input and output MLPs must have the same depth")
        mats, vecs = [], []
        for name in ("f0", "loudness"):
            layers = step.mlps[name]
            mats += [f32(w) for w, *_ in layers[1:]] + [f32(step.stacked[name])]
            for _, b, lw, lb, _eps in layers:
                vecs += [f32(b), f32(lw), f32(lb)]
            vecs.append(f32(layers[0][0][:, 0]))
        mats += [f32(step.w_hh), f32(step.w1_gru)]
        mats += [f32(w) for w, *_ in step.out_rest] + [f32(step.head_w)]
        lw, lb, eps = step.out_norm
        vecs += [f32(step.b_hh), f32(lw), f32(lb)]
        # where the output MLP's LayerNorm (gain, bias) and the head bias sit in the vectors:
        # a "film" decoder rewrites them there whenever z moves (``_latent_share``)
        self._film_slots = [(len(vecs) - 2, len(vecs) - 1)]
        for _, b, lw2, lb2, _eps in step.out_rest:
            vecs += [f32(b), f32(lw2), f32(lb2)]
            self._film_slots.append((len(vecs) - 2, len(vecs) - 1))
        self._head_slot = len(vecs)
        vecs.append(f32(step.head_b))
        if "z" in step.mlps:  # the latent branch, after the head (``latent_share``)
            layers = step.mlps["z"]
            if len(layers) != n_layers:
                raise ValueError("decoder: the latent MLP must have the depth of the others")
            mats += [f32(w) for w, *_ in layers] + [f32(step.stacked["z"])]
            for _, b, lw2, lb2, _eps in layers:
                vecs += [f32(b), f32(lw2), f32(lb2)]

        mtab = np.zeros((len(mats), 4), np.int64)
        wparts, qparts, woff, qoff = [], [], 0, 0
        for i, w in enumerate(mats):
            rows, cols = w.shape
            if self.weights in _INT_FORMATS:
                q, scale = _quantize(w, self.weights)
                # integer matrix at qoff in qbuf; its row scales at the same offset in wbuf
                wparts.append(np.zeros(qoff - woff, np.float32))
                wparts.append(scale)
                woff = qoff + rows
                qparts.append(q.reshape(-1))
                mtab[i] = (qoff, rows, cols, 1)
                qoff += rows * cols
            else:
                wparts.append(w.reshape(-1))
                mtab[i] = (woff, rows, cols, 0)
                woff += rows * cols
        self.wbuf = np.ascontiguousarray(np.concatenate(wparts), dtype=np.float32)
        qtype = _INT_FORMATS.get(self.weights, (np.int8,))[0]
        self.qbuf = np.concatenate(qparts) if qparts else np.zeros(0, qtype)
        self.mtab = mtab
        vtab = np.zeros((len(vecs), 2), np.int64)
        off = 0
        for i, v in enumerate(vecs):
            vtab[i] = (off, v.shape[0])
            off += v.shape[0]
        self.vbuf, self.vtab = np.concatenate(vecs).astype(np.float32), vtab
        self.n_layers = n_layers
        self.eps, self.slope = float(eps), np.float32(step.slope)
        self.bias = f32(step.bias)

    @torch.no_grad()
    def _tabulate(self, n_rows: int, sample_rate: int) -> None:
        """Tabulate each scalar input's branch of the decoder: its MLP and its share of the
        GRU input and out-MLP projections (3 of the full-size decoder's 4.3 M multiply-adds
        per frame), over f0 from 16 Hz to Nyquist and loudness from -120 to +20 dB, on the
        decoder's input scale. A block reads two rows per input and interpolates; the table
        holds the float32 network's values (whatever ``weights`` is)."""
        width = self.bias.shape[0]
        if n_rows == 0:
            self.tables = np.zeros((2, 0, width), np.float32)
            self.table_lo = self.table_inv_step = np.zeros(2)
            return
        f0_lo, f0_hi = (
            math.log2(f) * self.f0_scale + self.f0_offset for f in (16.0, sample_rate / 2)
        )
        ld_lo, ld_hi = ((d - self.loudness_mean) / self.loudness_std for d in (-120.0, 20.0))
        ranges = {"f0": (float(f0_lo), float(f0_hi)), "loudness": (ld_lo, ld_hi)}
        tables = []
        for name in ("f0", "loudness"):
            lo, hi = ranges[name]
            grid = torch.linspace(lo, hi, n_rows, dtype=torch.float64).float().reshape(-1, 1)
            branch = self.step._mlp(grid, self.step.mlps[name])
            tables.append(torch.nn.functional.linear(branch, self.step.stacked[name]).numpy())
        self.tables = np.ascontiguousarray(np.stack(tables), dtype=np.float32)
        self.table_lo = np.array([ranges[k][0] for k in ("f0", "loudness")])
        self.table_inv_step = np.array(
            [(n_rows - 1) / (ranges[k][1] - ranges[k][0]) for k in ("f0", "loudness")]
        )

    def reset(self) -> None:
        self.hidden = np.zeros(self.step.gru_size, np.float32)
        self.rng = np.random.default_rng(self.seed)
        self.h_state = np.zeros(3)
        self.prev_amps = np.zeros(self.n_harmonics, np.float32)
        self.noise_tail = np.zeros(max(self.noise_basis.shape[1] - 1, 0), np.float32)
        p, bins = self.ir_re.shape[0] // 2, self.ir_re.shape[1]
        self.ring_re = np.zeros((p, bins), np.float32)
        self.ring_im = np.zeros((p, bins), np.float32)
        self.frame = np.zeros(2 * self.block_size)
        self.head = 0
        self._z: bytes | None = None
        self._share = np.empty_like(self.bias)
        self._inputs = np.empty((self.frames, 2), np.float32)
        self._raw = np.empty((self.frames, self.n_heads), np.float32)
        self._harm = np.empty(self.block_size, np.float32)
        self._noise = np.zeros(self.block_size, np.float32)
        self._noise_out = np.empty(self.block_size, np.float32)
        self._out = np.empty(self.block_size, np.float32)

    def _warm_up(self) -> None:
        """Compile (or load from the disk cache) before the first real block, then reset."""
        f0 = np.full(self.frames, 220.0, np.float32)
        ld = np.full(self.frames, -30.0, np.float32)
        z = np.zeros(self.step.mlps["z"][0][0].shape[1], np.float32) if self.has_latent else None
        self.process_numpy(f0, ld, z)
        self.reset()

    def _latent_share(self, z: np.ndarray) -> np.ndarray:
        """The latent's share of the input projections, recomputed only when z moves."""
        key = z.tobytes()
        if key != self._z:
            self._z = key
            latent_share(
                z, self.bias, self.wbuf, self.qbuf, self.mtab, self.vbuf, self.vtab,
                self.n_layers, self.eps, self.slope, self._share,
            )  # fmt: skip
            if self.step.film is not None:
                self._write_film(z)
        return self._share

    def _write_film(self, z: np.ndarray) -> None:
        """A "film" decoder: z's LayerNorm gains/biases and head bias into the packed vectors."""
        with torch.no_grad():
            norms, head_b = self.step.film_for(torch.from_numpy(z).reshape(1, -1))
        for (gain_slot, bias_slot), (gain, bias) in zip(self._film_slots, norms, strict=True):
            for slot, v in ((gain_slot, gain), (bias_slot, bias)):
                off, n = self.vtab[slot]
                self.vbuf[off : off + n] = v.reshape(-1).numpy()
        off, n = self.vtab[self._head_slot]
        self.vbuf[off : off + n] = head_b.reshape(-1).numpy()

    def process_numpy(
        self,
        f0_hz: np.ndarray,
        loudness_db: np.ndarray,
        z: np.ndarray | None = None,
        noise: np.ndarray | None = None,
    ) -> np.ndarray:
        """One block: float32 [frames_per_block] f0 (> 0) and loudness, z [z_dim] (constant
        over the block). Returns float32 [block_size] (a buffer the next call overwrites)."""
        check_block(self.frames, f0_hz, loudness_db)
        share = self.bias
        if self.has_latent:
            if z is None:
                raise ValueError("z: this model has a latent; give a timbre vector")
            share = self._latent_share(z.astype(np.float32, copy=False).reshape(-1))
        if self.noise_basis.shape[0]:
            if noise is None:
                self.rng.random(self.block_size, dtype=np.float32, out=self._noise)
                self._noise *= 2.0
                self._noise -= 1.0
            else:
                self._noise[:] = noise.reshape(-1)
        self.head = engine_block(
            f0_hz.astype(np.float32, copy=False), loudness_db.astype(np.float32, copy=False),
            self.scaling, self._inputs, share, self.hidden, self.wbuf, self.qbuf, self.mtab, self.vbuf,
            self.vtab, self.n_layers, self.eps, self.slope, self.tables, self.table_lo,
            self.table_inv_step, self._raw, self.exp_sigmoid,
            self.n_harmonics, self.ramp, self.sample_rate, self.h_state, self.prev_amps,
            self._harm, self._noise, self.noise_basis, self.noise_tail, self._noise_out,
            self.frame, self.ring_re, self.ring_im, self.ir_re, self.ir_im, self.cos_t,
            self.sin_t, self.head,
            self.dry, self._out,
        )  # fmt: skip
        return self._out

    def process(
        self,
        f0_hz: torch.Tensor,
        loudness_db: torch.Tensor,
        z: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``StreamingEngine.process``'s signature: torch tensors in, a new tensor out."""
        out = self.process_numpy(
            f0_hz.numpy(),
            loudness_db.numpy(),
            None if z is None else z.numpy(),
            None if noise is None else noise.numpy(),
        )
        return torch.from_numpy(out.copy())
