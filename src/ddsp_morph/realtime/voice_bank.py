"""Many voices of one model in one compiled call per block: the polyphonic engine.

Each voice keeps its own GRU state, oscillator phases, noise-filter tail and white noise; the
reverb is one shared bus after the voices are summed. The decoder runs the active voices
together: every matrix of it is read once per frame for all of them (a row of weights, loaded
once, multiplied by each voice's vector while it sits in the L1 cache), instead of once per
voice. With N voices a frame costs the weight traffic of one voice and the arithmetic of N.

- The arithmetic is ``FastEngine``'s (its packed weights, tables and kernels), so a voice alone
  equals the mono engine, and every voice equals its offline render (tested).
- A silent voice costs nothing: only the slots given to ``process`` are computed.
- Nothing is allocated per block: the kernels write into buffers made once here, and a voice
  that starts again is zeroed in place (``reset_voice``), so a note that starts, stops or is
  stolen allocates nothing in the audio callback (tested with numba's allocation counter and
  tracemalloc).
- A voice's timbre (z, and with a FiLM decoder its LayerNorm gains and head bias) is computed
  when its z moves and kept per distinct z, so a note that starts on a timbre heard before
  copies it in place.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit

from ddsp_morph.realtime.fast import (
    FastEngine,
    _layer_norm_leaky,
    _mlp_rest,
    _vec,
    gru_update,
    latent_share,
)
from ddsp_morph.realtime.int_dot import CHUNK, HAS_AVX512BW, activation_range, int_matmat
from ddsp_morph.realtime.kernels import harmonic_block_into, noise_block_into, reverb_block_into

Z_CACHE = 64  # distinct timbres kept per bank (the split's two, a layer's two, the morph's steps)


@njit(cache=True, fastmath=True, inline="always")
def _rows_times_voices(w, r, k, cols, x, n, out, i):  # pragma: no cover - compiled
    """out[a, i + t] = w[r + t] . x[a] for t < k (k = 4, or fewer at a matrix's end) and
    a < n: four rows by four voices at a time, sixteen accumulators in SIMD lanes, so each
    load of a weight is used by four voices and each load of a voice's input by four rows.
    (2-D indexing throughout: a row view per call would cost a reference count each.)"""
    a = 0
    if k == 4:
        while a + 4 <= n:
            s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = np.float32(0.0)
            s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = np.float32(0.0)
            for j in range(cols):
                x0, x1, x2, x3 = x[a, j], x[a + 1, j], x[a + 2, j], x[a + 3, j]
                w0 = w[r, j]
                s00 += w0 * x0
                s01 += w0 * x1
                s02 += w0 * x2
                s03 += w0 * x3
                w1 = w[r + 1, j]
                s10 += w1 * x0
                s11 += w1 * x1
                s12 += w1 * x2
                s13 += w1 * x3
                w2 = w[r + 2, j]
                s20 += w2 * x0
                s21 += w2 * x1
                s22 += w2 * x2
                s23 += w2 * x3
                w3 = w[r + 3, j]
                s30 += w3 * x0
                s31 += w3 * x1
                s32 += w3 * x2
                s33 += w3 * x3
            out[a, i], out[a + 1, i], out[a + 2, i], out[a + 3, i] = s00, s01, s02, s03
            out[a, i + 1], out[a + 1, i + 1], out[a + 2, i + 1], out[a + 3, i + 1] = (
                s10,
                s11,
                s12,
                s13,
            )
            out[a, i + 2], out[a + 1, i + 2], out[a + 2, i + 2], out[a + 3, i + 2] = (
                s20,
                s21,
                s22,
                s23,
            )
            out[a, i + 3], out[a + 1, i + 3], out[a + 2, i + 3], out[a + 3, i + 3] = (
                s30,
                s31,
                s32,
                s33,
            )
            a += 4
        while a < n:
            s0 = s1 = s2 = s3 = np.float32(0.0)
            for j in range(cols):
                xa = x[a, j]
                s0 += w[r, j] * xa
                s1 += w[r + 1, j] * xa
                s2 += w[r + 2, j] * xa
                s3 += w[r + 3, j] * xa
            out[a, i], out[a, i + 1], out[a, i + 2], out[a, i + 3] = s0, s1, s2, s3
            a += 1
        return
    for t in range(k):
        for a in range(n):
            acc = np.float32(0.0)
            for j in range(cols):
                acc += w[r + t, j] * x[a, j]
            out[a, i + t] = acc


@njit(cache=True, fastmath=True)
def _rows_float(wbuf, o, rows, cols, x, n, out):  # pragma: no cover - compiled
    w = wbuf[o : o + rows * cols].reshape((rows, cols))
    for i in range(0, rows, 4):
        _rows_times_voices(w, i, min(4, rows - i), cols, x, n, out, i)


@njit(cache=True, fastmath=True)
def _rows_int(qbuf, wbuf, o, rows, cols, x, n, out, wrow):  # pragma: no cover - compiled
    """wrow: float32 [4, >= cols], four integer rows converted at a time; then each output
    times its row's scale."""
    q = qbuf[o : o + rows * cols].reshape((rows, cols))
    for i in range(0, rows, 4):
        k = min(4, rows - i)
        for t in range(k):
            for j in range(cols):
                wrow[t, j] = np.float32(q[i + t, j])
        _rows_times_voices(wrow, 0, k, cols, x, n, out, i)
        for t in range(k):
            scale = wbuf[o + i + t]
            for a in range(n):
                out[a, i + t] *= scale


@njit(cache=True, fastmath=True)
def _rows_int16x16(qbuf, wbuf, o, rows, cols, x, n, out, xq, xinv, top):  # pragma: no cover
    """int16 weights times int16 activations (``int_dot``): each voice's vector is scaled so
    that its largest magnitude is ``top`` (the matrix's ``activation_range``) and rounded;
    the integer sums, exact, are then scaled back by the row's and the voice's scales. The
    columns past the last 32-column chunk are summed in float32."""
    q = qbuf[o : o + rows * cols].reshape((rows, cols))
    c = cols - cols % CHUNK
    for a in range(n):
        m = np.float32(0.0)
        for j in range(cols):
            m = max(m, abs(x[a, j]))
        s = np.float32(top) / m if m > 0.0 else np.float32(0.0)
        xinv[a] = m / np.float32(top)
        for j in range(c):
            xq[a, j] = np.int16(math.floor(x[a, j] * s + np.float32(0.5)))
    int_matmat(q, xq, n, out)
    scales = wbuf[o : o + rows]
    for a in range(n):  # along each voice's output row: contiguous, vectorized
        inv = xinv[a]
        for i in range(rows):
            out[a, i] *= inv * scales[i]
        if c < cols:
            for i in range(rows):
                tail = np.float32(0.0)
                for j in range(c, cols):
                    tail += np.float32(q[i, j]) * x[a, j]
                out[a, i] += tail * scales[i]


@njit(cache=True)
def _matmat(wbuf, qbuf, table, index, x, n, out, wrow, xq, xinv, xrange):  # pragma: no cover
    """out[a] = W @ x[a] for the first ``n`` rows of x, W = matrix ``index`` of the packed
    weights (``fast._matvec``'s layout). Each row of W is read once (an integer row is
    converted once, into ``wrow``) and applied to every voice while it sits in the L1 cache.
    With ``xrange[index] > 0`` an int16 matrix meets int16 activations (``_rows_int16x16``)."""
    o, rows, cols, q = table[index]
    if q == 0:
        _rows_float(wbuf, o, rows, cols, x, n, out)
    elif xrange[index] > 0:
        _rows_int16x16(qbuf, wbuf, o, rows, cols, x, n, out, xq, xinv, xrange[index])
    else:
        _rows_int(qbuf, wbuf, o, rows, cols, x, n, out, wrow)


@njit(cache=True, fastmath=True)
def bank_decoder(
    n, slots, inputs, share, hidden, norm_gain, norm_bias, head_bias,
    wbuf, qbuf, mtab, vbuf, vtab, n_layers, eps, slope, tables, table_lo, table_inv_step,
    proj, hx, gh, y, yb, heads, wrow, h_a, h_b, tmp, xq, xinv, xrange, raw,
):  # fmt: skip  # pragma: no cover - compiled
    """``fast.decoder_block`` for the voices ``slots[:n]`` at once.

    Per voice (indexed by slot): inputs [V, M, 2], share [V, W] (its input projections'
    constant part), hidden [V, G] (updated), norm_gain / norm_bias [V, L, H] (the output MLP's
    LayerNorms, z's FiLM folded in), head_bias [V, n_heads]; raw [V, M, n_heads] is written.
    The rest is scratch indexed by the voice's place in ``slots``: proj [V, M, W], hx [V, G],
    gh [V, 3G], y, yb [V, H], heads [V, n_heads], wrow [4, largest matrix width], h_a, h_b [H],
    tmp [W], xq int16 [V, largest matrix width], xinv [V]; xrange [matrices] (``_matmat``).
    """
    m = inputs.shape[1]
    g = hidden.shape[1]
    hsize = y.shape[1]
    width = share.shape[1]
    n_rows = tables.shape[1]
    for a in range(n):
        s = slots[a]
        for j in range(g):
            hx[a, j] = hidden[s, j]
        for f in range(m):
            for j in range(width):
                proj[a, f, j] = share[s, j]
            for i in range(2):
                x = inputs[s, f, i]
                if n_rows > 1:
                    pos = (x - table_lo[i]) * table_inv_step[i]
                    if 0.0 <= pos <= n_rows - 1:
                        lo_row = min(int(pos), n_rows - 2)
                        w = np.float32(pos - lo_row)
                        for j in range(width):
                            r0 = tables[i, lo_row, j]
                            proj[a, f, j] += r0 + w * (tables[i, lo_row + 1, j] - r0)
                        continue
                mi = i * n_layers
                vi = i * (3 * n_layers + 1)
                col = _vec(vbuf, vtab, vi + 3 * n_layers)
                b = _vec(vbuf, vtab, vi)
                for j in range(hsize):
                    h_a[j] = col[j] * x + b[j]
                _mlp_rest(h_a, h_b, tmp, wbuf, qbuf, mtab, mi, vbuf, vtab, vi, n_layers, eps, slope)
                for j in range(width):
                    proj[a, f, j] += tmp[j]
    base_m = 2 * n_layers
    base_v = 2 * (3 * n_layers + 1)
    b_hh = _vec(vbuf, vtab, base_v)
    for f in range(m):
        _matmat(wbuf, qbuf, mtab, base_m, hx, n, gh, wrow, xq, xinv, xrange)
        for a in range(n):
            gru_update(proj[a, f], gh[a], b_hh, hx[a])
        _matmat(wbuf, qbuf, mtab, base_m + 1, hx, n, y, wrow, xq, xinv, xrange)
        for a in range(n):
            s = slots[a]
            for j in range(hsize):
                y[a, j] += proj[a, f, 3 * g + j]
            _layer_norm_leaky(y[a], norm_gain[s, 0], norm_bias[s, 0], eps, slope)
        for layer in range(1, n_layers):
            _matmat(wbuf, qbuf, mtab, base_m + 1 + layer, y, n, yb, wrow, xq, xinv, xrange)
            b = _vec(vbuf, vtab, base_v + 3 * layer)
            for a in range(n):
                s = slots[a]
                for j in range(hsize):
                    y[a, j] = yb[a, j] + b[j]
                _layer_norm_leaky(y[a], norm_gain[s, layer], norm_bias[s, layer], eps, slope)
        _matmat(wbuf, qbuf, mtab, base_m + n_layers + 1, y, n, heads, wrow, xq, xinv, xrange)
        for a in range(n):
            s = slots[a]
            for j in range(heads.shape[1]):
                raw[s, f, j] = heads[a, j] + head_bias[s, j]
    for a in range(n):
        s = slots[a]
        for j in range(g):
            hidden[s, j] = hx[a, j]


@njit(cache=True)
def bank_block(
    n, slots, fading, fade, f0_hz, loudness_db, scaling, inputs, share, hidden,
    norm_gain, norm_bias, head_bias, wbuf, qbuf, mtab, vbuf, vtab, n_layers, eps, slope,
    tables, table_lo, table_inv_step, proj, hx, gh, y, yb, heads, wrow, h_a, h_b, tmp, xq, xinv,
    xrange, raw, exp_sigmoid, n_harm, ramp, sample_rate, h_state, prev_amps, amp, dist, amps, a_start,
    h_scratch, kmax, harm, noise, noise_basis, noise_tail, noise_out, n_acc, taps,
    voices_out, mix,
):  # fmt: skip  # pragma: no cover - compiled
    """One block of the voices ``slots[:n]``: decoder (together) -> exp_sigmoid -> each voice's
    harmonic bank and filtered noise -> its samples in ``voices_out[slot]`` -> summed into
    ``mix`` (a voice with ``fading[a]`` through the ``fade`` ramp). Per-voice arrays are
    indexed by slot: f0_hz, loudness_db [V, M], h_state [V, 3], prev_amps [V, K], noise_tail
    [V, L - 1], voices_out [V, B]; the white noise, noise [V, B], by place in ``slots``."""
    f0_scale, f0_offset, loudness_mean, loudness_std = scaling
    m = f0_hz.shape[1]
    for a in range(n):
        s = slots[a]
        for i in range(m):
            inputs[s, i, 0] = math.log2(f0_hz[s, i]) * f0_scale + f0_offset
            inputs[s, i, 1] = (loudness_db[s, i] - loudness_mean) / loudness_std
    bank_decoder(
        n, slots, inputs, share, hidden, norm_gain, norm_bias, head_bias,
        wbuf, qbuf, mtab, vbuf, vtab, n_layers, eps, slope, tables, table_lo, table_inv_step,
        proj, hx, gh, y, yb, heads, wrow, h_a, h_b, tmp, xq, xinv, xrange, raw,
    )  # fmt: skip
    log_exponent, max_value, threshold = exp_sigmoid
    mix[:] = 0.0
    for a in range(n):
        s = slots[a]
        r = raw[s]
        nyquist = sample_rate / 2.0
        for i in range(m):
            # exp_sigmoid of every head but the harmonics at or above Nyquist, which the bank
            # silences anyway (the same test as harmonic_block's): most of them for a high note
            f = f0_hz[s, i]
            for j in range(r.shape[1]):
                if 1 <= j <= n_harm and np.float32(f * np.float32(j)) >= nyquist:
                    r[i, j] = 0.0
                    continue
                v = 1.0 / (1.0 + math.exp(-r[i, j]))
                r[i, j] = math.exp(log_exponent * math.log(v)) * max_value + threshold
            amp[i] = r[i, 0]
            for k in range(n_harm):
                dist[i, k] = r[i, 1 + k]
        harmonic_block_into(
            f0_hz[s], amp, dist, ramp, sample_rate, h_state[s], prev_amps[s], harm,
            amps, a_start, h_scratch, kmax,
        )  # fmt: skip
        if noise_basis.shape[0] > 0:
            noise_block_into(
                r, 1 + n_harm, noise[a], noise_basis, noise_tail[s], noise_out, n_acc, taps
            )
            for i in range(harm.shape[0]):
                harm[i] += noise_out[i]
        out = voices_out[s]
        for i in range(harm.shape[0]):
            out[i] = harm[i] * fade[i] if fading[a] else harm[i]
            mix[i] += out[i]


class VoiceBank:
    """``n_voices`` voices of one model, played together (``FastEngine``'s arithmetic).

    ``process(slots, f0_hz, loudness_db)`` renders the voices in ``slots`` (the others are
    silent and cost nothing) and returns the mix through the shared reverb; each voice's dry
    samples of the block are in ``voices_out[slot]``. ``set_z(slot, z)`` gives a voice its
    timbre, ``reset_voice(slot)`` starts it afresh (in place).

    Args:
        model: a trained DDSPAutoencoder (f0 and loudness conditioning).
        n_voices: voices the bank holds.
        weights, input_tables, frames_per_block, instrument_id, seed: as ``FastEngine``'s; the
            voices' white noise comes from one generator seeded with ``seed``, drawn for all
            the sounding voices at once.
        activations: "float32", or "int16" (with int16 weights): the decoder's products as
            int16 x int16 summed exactly in int32 (``int_dot``), twice float32's multiply-adds
            per instruction where the CPU has AVX-512 VNNI; each voice's vector rounded to
            int16 at the largest scale that cannot overflow (about 12 bits for full-range rows).
            "auto": int16 with int16 weights on a CPU with AVX-512 BW, else float32.
    """

    def __init__(
        self,
        model,
        n_voices: int = 8,
        *,
        frames_per_block: int = 1,
        instrument_id: int = 0,
        seed: int = 0,
        weights: str = "int16",
        input_tables: int = 2048,
        activations: str = "auto",
    ) -> None:
        if n_voices < 1:
            raise ValueError(f"n_voices: need at least 1, got {n_voices}")
        if activations == "auto":  # int16 where the CPU multiplies int16 pairs fastest
            activations = "int16" if weights == "int16" and HAS_AVX512BW else "float32"
        if activations not in ("float32", "int16") or (
            activations == "int16" and weights != "int16"
        ):
            raise ValueError(
                f"activations: float32, or int16 with int16 weights; got {activations!r} "
                f"with {weights!r} weights"
            )
        # FastEngine packs the weights, tabulates the input branches and builds the reverb
        self.mono = e = FastEngine(
            model,
            frames_per_block=frames_per_block,
            instrument_id=instrument_id,
            seed=seed,
            weights=weights,
            input_tables=input_tables,
        )
        self.n_voices, self.seed, self.activations = n_voices, seed, activations
        self.frames, self.hop, self.block_size = e.frames, e.hop, e.block_size
        self.sample_rate, self.has_latent = e.sample_rate, e.has_latent
        step = e.step
        v, m, b = n_voices, e.frames, e.block_size
        g, h, k = step.gru_size, e.vtab[0][1], e.n_harmonics
        width, n_heads, layers = e.bias.shape[0], e.n_heads, e.n_layers
        f32 = np.float32
        self.z_dim = step.mlps["z"][0][0].shape[1] if self.has_latent else 0
        self.share = np.empty((v, width), f32)
        self.norm_gain = np.empty((v, layers, h), f32)
        self.norm_bias = np.empty((v, layers, h), f32)
        self.head_bias = np.empty((v, n_heads), f32)
        self.hidden = np.zeros((v, g), f32)
        self.inputs = np.empty((v, m, 2), f32)
        self.raw = np.empty((v, m, n_heads), f32)
        self.f0_hz = np.full((v, m), 220.0, f32)
        self.loudness_db = np.full((v, m), -120.0, f32)
        self.h_state = np.zeros((v, 3))
        self.prev_amps = np.zeros((v, k), f32)
        self.noise = np.zeros((v, b), f32)
        self.noise_tail = np.zeros((v, max(e.noise_basis.shape[1] - 1, 0)), f32)
        self.voices_out = np.zeros((v, b), f32)
        self.slots = np.zeros(v, np.int64)
        self.fading = np.zeros(v, np.bool_)
        self.fade = np.ones(b, f32)
        self.mix = np.zeros(b, f32)
        self.out = np.zeros(b, f32)
        cols = int(e.mtab[:, 2].max())
        self._scratch = (
            np.empty((v, m, width), f32),  # proj
            np.empty((v, g), f32),  # hx
            np.empty((v, 3 * g), f32),  # gh
            np.empty((v, h), f32),  # y
            np.empty((v, h), f32),  # yb
            np.empty((v, n_heads), f32),  # heads
            np.empty((4, cols), f32),  # wrow
            np.empty(h, f32),  # h_a
            np.empty(h, f32),  # h_b
            np.empty(width, f32),  # tmp
            np.zeros((v, cols), np.int16),  # xq
            np.zeros(v, f32),  # xinv
            self._activation_ranges(activations),  # xrange
        )
        taps_n = e.noise_basis.shape[1]
        self._dsp = (
            np.empty(m, f32),  # amp
            np.empty((m, k), f32),  # dist
            np.empty((m, k), f32),  # amps
            np.empty(k, f32),  # a_start
            np.empty((5, e.hop)),  # h_scratch
            np.empty(e.hop, np.int64),  # kmax
            np.empty(b, f32),  # harm
        )
        self._noise_scratch = (
            np.empty(b, f32),  # noise_out
            np.empty(b + taps_n - 1, f32),  # n_acc
            np.empty(taps_n, f32),  # taps
        )
        self._reverb_scratch = (np.empty((2, 2 * b)), np.empty((2, b + 1), f32))
        self._timbres: dict[bytes, tuple] = {}
        self._voice_z: list[bytes | None] = [None] * v
        self._voice_obj: list[np.ndarray | None] = [None] * v
        self._base = (  # the output LayerNorms and head bias without z's FiLM
            np.stack([gain.reshape(-1).numpy() for gain, _ in step.norms()]).astype(f32),
            np.stack([bias.reshape(-1).numpy() for _, bias in step.norms()]).astype(f32),
            step.head_b.reshape(-1).numpy().astype(f32),
        )
        for slot in range(v):
            self._write_timbre(slot, self._timbre(None))
        self.reset()
        self._warm_up()

    def _activation_ranges(self, activations: str) -> np.ndarray:
        """Per packed matrix, the int16 activations' range (``int_dot.activation_range``);
        0 keeps a matrix on float32 activations (all of them unless ``activations="int16"``)."""
        e = self.mono
        ranges = np.zeros(len(e.mtab), np.float32)
        if activations == "int16":
            for index, (o, rows, cols, q) in enumerate(e.mtab):
                if q:
                    ranges[index] = activation_range(
                        e.qbuf[o : o + rows * cols].reshape(rows, cols)
                    )
        return ranges

    # --- timbre -----------------------------------------------------------------------------
    def _timbre(self, z: np.ndarray | None) -> tuple:
        """(share, norm gains, norm biases, head bias) of a z (None: a model without latent)."""
        e = self.mono
        if z is None:
            return (e.bias.copy(), *self._base)
        share = np.empty_like(e.bias)
        latent_share(
            z, e.bias, e.wbuf, e.qbuf, e.mtab, e.vbuf, e.vtab, e.n_layers, e.eps, e.slope, share
        )
        if e.step.film is None:
            return (share, *self._base)
        with torch.no_grad():
            norms, head_b = e.step.film_for(torch.from_numpy(z).reshape(1, -1))
        gain = np.stack([g.reshape(-1).numpy() for g, _ in norms]).astype(np.float32)
        bias = np.stack([b.reshape(-1).numpy() for _, b in norms]).astype(np.float32)
        return share, gain, bias, head_b.reshape(-1).numpy().astype(np.float32)

    def _write_timbre(self, slot: int, timbre: tuple) -> None:
        share, gain, bias, head = timbre
        np.copyto(self.share[slot], share)
        np.copyto(self.norm_gain[slot], gain)
        np.copyto(self.norm_bias[slot], bias)
        np.copyto(self.head_bias[slot], head)

    def set_z(self, slot: int, z: np.ndarray) -> None:
        """Voice ``slot`` plays timbre ``z`` [z_dim] from its next block (computed once per
        distinct z and kept; a voice already on it does nothing). The array handed last is
        skipped without a look: hand a new array, not the same one changed in place."""
        if not self.has_latent or z is self._voice_obj[slot]:
            return  # (the performer hands the same cached array while a voice's timbre holds)
        key = z.tobytes()
        self._voice_obj[slot] = z
        if key == self._voice_z[slot]:
            return
        timbre = self._timbres.get(key)
        if timbre is None:
            if len(self._timbres) >= Z_CACHE:
                self._timbres.pop(next(iter(self._timbres)))
            z32 = np.ascontiguousarray(z, dtype=np.float32).reshape(-1)
            timbre = self._timbres[key] = self._timbre(z32)
        self._write_timbre(slot, timbre)
        self._voice_z[slot] = key

    # --- state ------------------------------------------------------------------------------
    def reset_voice(self, slot: int) -> None:
        """Voice ``slot`` starts afresh (GRU state, phases, filter tail, its noise), in place."""
        self.hidden[slot] = 0.0
        self.h_state[slot] = 0.0
        self.prev_amps[slot] = 0.0
        self.noise_tail[slot] = 0.0
        self.voices_out[slot] = 0.0

    def reset(self) -> None:
        for slot in range(self.n_voices):
            self.reset_voice(slot)
        self.rng = np.random.default_rng(self.seed)
        e = self.mono
        e.reset()  # the shared reverb's ring and frame live in the mono engine

    def _warm_up(self) -> None:
        """Compile (or load from the disk cache) before the first real block, then reset."""
        self.slots[0] = 0
        self.process(1)
        self.reset()

    # --- a block ----------------------------------------------------------------------------
    def process(self, n: int, noise: np.ndarray | None = None) -> np.ndarray:
        """One block of the voices ``self.slots[:n]``, whose controls the caller wrote into
        ``self.f0_hz[slot]`` and ``self.loudness_db[slot]`` (and, for a voice fading out,
        ``self.fading[i]`` for its place ``i`` in slots, with ``self.fade``). ``noise``
        [n, block] replaces the voices' white noise (tests). Returns the mix after the shared
        reverb, float32 [block_size] (a buffer the next call overwrites)."""
        e = self.mono
        if e.noise_basis.shape[0] and n:
            if noise is None:  # one draw for every voice
                buf = self.noise[:n]
                self.rng.random(buf.shape, dtype=np.float32, out=buf)
                buf *= 2.0
                buf -= 1.0
            else:
                self.noise[:n] = noise
        bank_block(
            n, self.slots, self.fading, self.fade, self.f0_hz, self.loudness_db, e.scaling,
            self.inputs, self.share, self.hidden, self.norm_gain, self.norm_bias, self.head_bias,
            e.wbuf, e.qbuf, e.mtab, e.vbuf, e.vtab, e.n_layers, e.eps, e.slope, e.tables,
            e.table_lo, e.table_inv_step, *self._scratch, self.raw, e.exp_sigmoid,
            e.n_harmonics, e.ramp, e.sample_rate, self.h_state, self.prev_amps, *self._dsp, self.noise, e.noise_basis, self.noise_tail, *self._noise_scratch,
            self.voices_out, self.mix,
        )  # fmt: skip
        if e.ir_re.shape[0] == 0:
            self.out[:] = self.mix
            return self.out
        e.head = reverb_block_into(
            self.mix, e.frame, e.ring_re, e.ring_im, e.ir_re, e.ir_im, e.cos_t, e.sin_t, e.head,
            e.dry, self.out, *self._reverb_scratch,
        )  # fmt: skip
        return self.out


class TorchVoices:
    """The torch reference of ``VoiceBank``, with its interface: the voices in ``slots[:n]``
    run as one batch of ``tracing.StreamingSynth`` (eager; each voice its own GRU state,
    phases and noise tail, gathered and scattered by index), summed, then one reverb
    (``dsp.stream.ReverbStream``, as ``StreamingEngine``'s). Each voice's white noise comes
    from its own generator, reseeded with ``seed`` when the voice starts afresh, so a voice
    alone plays exactly what the monophonic torch engine plays."""

    def __init__(
        self,
        model,
        n_voices: int = 8,
        *,
        frames_per_block: int = 1,
        instrument_id: int = 0,
        seed: int = 0,
    ) -> None:
        from ddsp_morph.realtime.engine import reverb_stream
        from ddsp_morph.realtime.tracing import StreamingSynth

        self.synth = StreamingSynth(
            model, frames_per_block, instrument_id, voices=n_voices, reverb=False
        )
        self.n_voices, self.seed = n_voices, seed
        self.frames, self.hop = self.synth.frames, self.synth.hop
        self.block_size = self.synth.block
        self.has_latent = self.synth.z_dim > 0
        v, m, b = n_voices, self.frames, self.block_size
        self.f0_hz = np.full((v, m), 220.0, np.float32)
        self.loudness_db = np.full((v, m), -120.0, np.float32)
        self.z = np.zeros((v, max(self.synth.z_dim, 1)), np.float32)
        self.slots = np.zeros(v, np.int64)
        self.fading = np.zeros(v, np.bool_)
        self.fade = np.ones(b, np.float32)
        self.voices_out = np.zeros((v, b), np.float32)
        self.reverb = reverb_stream(model, instrument_id, b)
        self.generators = [torch.Generator() for _ in range(v)]
        self.reset()

    def set_z(self, slot: int, z: np.ndarray) -> None:
        self.z[slot] = z

    def reset_voice(self, slot: int) -> None:
        self.synth.reset_voice(slot)
        self.generators[slot].manual_seed(self.seed)
        self.voices_out[slot] = 0.0

    def reset(self) -> None:
        for slot in range(self.n_voices):
            self.reset_voice(slot)
        if self.reverb is not None:
            self.reverb.reset()

    @torch.no_grad()
    def process(self, n: int, noise: np.ndarray | None = None) -> np.ndarray:
        """``VoiceBank.process``: the voices ``slots[:n]`` -> the mix after the reverb."""
        mix = torch.zeros(self.block_size)
        if n:
            slots = self.slots[:n].copy()
            if self.synth.has_noise and noise is None:
                noise = torch.stack(
                    [
                        torch.rand(self.block_size, generator=self.generators[s]) * 2 - 1
                        for s in slots
                    ]
                )
            elif noise is not None:
                noise = torch.from_numpy(np.asarray(noise, np.float32))
            audio = self.synth.play(
                torch.from_numpy(slots),
                torch.from_numpy(self.f0_hz[slots]),
                torch.from_numpy(self.loudness_db[slots]),
                torch.from_numpy(self.z[slots]),
                noise,
            )
            fade = torch.from_numpy(self.fade)
            for a, s in enumerate(slots):
                voice = audio[a] * fade if self.fading[a] else audio[a]
                self.voices_out[s] = voice.numpy()
                mix += voice
        if self.reverb is not None:
            mix = self.reverb.process(mix)
        return mix.numpy()
