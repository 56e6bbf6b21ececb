"""The integer dot products of the polyphonic engine (``realtime.int_dot``) are exact and cannot
overflow, on this CPU's instructions and in the portable IR; the vectorized tanh of the GRU's
gates is tanh to float32 precision."""

import numpy as np
from numba import njit

from ddsp_morph.realtime import int_dot
from ddsp_morph.realtime.fast import tanh32

SHAPES = ((4, 4), (4, 1), (1, 1))


def _tile(tile, q, r, x, a, out):
    njit(lambda q, r, x, a, out: tile(q, r, x, a, out, r))(q, r, x, a, out)


def test_integer_tiles_are_exact_at_the_largest_activation_that_cannot_overflow():
    rng = np.random.default_rng(0)
    rows, cols, n = 23, 96, 7  # rows and voices past a multiple of four
    q = rng.integers(-32767, 32768, (rows, cols)).astype(np.int16)
    q[5] = 32767  # a row at full range everywhere: the largest lane sum
    top = int_dot.activation_range(q)
    assert 0 < top < 32767
    x = rng.integers(-top, top + 1, (n, cols)).astype(np.int16)
    x[2] = top  # every product of row 5 with voice 2 at its largest: the worst case
    x[3] = np.where(q[7] >= 0, top, -top)  # every sign aligned with row 7
    out = np.zeros((n, rows), np.float32)
    int_dot.int_matmat(q, x, n, out)  # this CPU's instructions (AVX-512 where it has them)
    # the portable IR agrees bit for bit, tile by tile (a 4 x 4, a voice left over, a row left over)
    portable = np.zeros_like(out)
    tile_4x4, tile_4x1, tile_1x1 = (int_dot.make_tile(*shape, False) for shape in SHAPES)
    _tile(tile_4x4, q, 4, x, 0, portable)
    _tile(tile_4x1, q, 16, x, 6, portable)
    _tile(tile_1x1, q, 22, x, 3, portable)
    np.testing.assert_array_equal(portable[0:4, 4:8], out[0:4, 4:8])
    np.testing.assert_array_equal(portable[6, 16:20], out[6, 16:20])
    assert portable[3, 22] == out[3, 22]
    exact = x.astype(np.int64) @ q.astype(np.int64).T
    assert np.abs(exact).max() > 2**31  # the whole sums leave int32; the lanes do not
    # exact int32 lanes, then sixteen of them summed in float32: float32 rounding only
    lanes = np.abs(x.astype(np.int64)) @ np.abs(q.astype(np.int64)).T
    assert (np.abs(out - exact) <= 2.0**-22 * lanes).all()
    assert np.abs(out - exact).max() < 1e-6 * np.abs(exact).max()
    # one more unit of activation and the worst lane would overflow int32
    lane = np.abs(q.astype(np.int64)).reshape(rows, cols // 32, 16, 2).sum(axis=(1, 3)).max()
    assert lane * top <= 2**31 - 1 < lane * (top + 1)


def test_tanh32_is_tanh_to_float32_precision_and_bounded():
    @njit
    def apply(x, out):
        for i in range(x.shape[0]):
            out[i] = tanh32(x[i])

    x = np.linspace(-20, 20, 400_001).astype(np.float32)
    out = np.empty_like(x)
    apply(x, out)
    np.testing.assert_allclose(out, np.tanh(x.astype(np.float64)), atol=6e-7, rtol=0)
    assert np.abs(out).max() <= 1.0
    assert (np.diff(out) >= -1.2e-6).all()  # monotonic within its error
    np.testing.assert_array_equal(out, -out[::-1])  # odd
