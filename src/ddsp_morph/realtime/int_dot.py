"""Integer dot products for many voices at once: int16 weights times int16 activations,
summed exactly in int32, the way the polyphonic engine reads each weight once for all voices.

On a CPU with AVX-512 (BW) the products of a 32-column chunk go through ``vpmaddwd`` (pairs of
int16 products summed into 16 int32 lanes), which LLVM fuses with the accumulation into one
``vpdpwssd`` where the CPU has VNNI: 32 multiply-adds per instruction, twice float32's 16 per
FMA. Elsewhere the same arithmetic is written as portable vector IR (sign-extend, multiply,
add the pairs), which any LLVM target compiles; the results are identical, bit for bit.

Exact, and never overflowing: lane ``l`` of the accumulator sums the columns 32k + 2l and
32k + 2l + 1 of a row, so with activations bounded by ``activation_range(q)`` (from the
largest such lane sum of |q| over the matrix) no lane can leave int32. Each tile's lanes are
converted to float32 and summed at the end.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils, config
from numba.extending import intrinsic

CHUNK = 32  # int16 columns per 512-bit vector
LANES = 16  # int32 lanes per 512-bit vector
INT32_MAX = 2**31 - 1


def _host_has_avx512bw() -> bool:
    if config.CPU_NAME not in (None, "host"):  # a portable cache asks for a generic CPU
        return False
    import llvmlite.binding as llvm

    try:
        features = llvm.get_host_cpu_features()
    except RuntimeError:  # not an x86 host
        return False
    return bool(features.get("avx512bw", False))


HAS_AVX512BW = _host_has_avx512bw()


def activation_range(q: np.ndarray) -> int:
    """The largest integer activation magnitude X with which the tiles cannot overflow on
    this int16 matrix [rows, cols]: (2^31 - 1) // (largest sum of |q| over one lane's
    columns), at most 32767."""
    rows, cols = q.shape
    c = cols - cols % CHUNK
    if c == 0:
        return 32767
    lane = np.abs(q[:, :c].astype(np.int64)).reshape(rows, c // CHUNK, LANES, 2).sum(axis=(1, 3))
    top = int(lane.max())
    return 32767 if top == 0 else int(min(32767, INT32_MAX // top))


def _madd(builder, a, b, x86: bool):
    """Pairs of int16 products summed into int32: <32 x i16> x2 -> <16 x i32>."""
    i32v = ir.VectorType(ir.IntType(32), LANES)
    if x86:
        fn = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(i32v, [a.type, b.type]),
            "llvm.x86.avx512.pmaddw.d.512",
        )
        return builder.call(fn, [a, b])
    i32 = ir.IntType(32)
    even = ir.Constant(ir.VectorType(i32, LANES), [2 * i for i in range(LANES)])
    odd = ir.Constant(ir.VectorType(i32, LANES), [2 * i + 1 for i in range(LANES)])

    def half(v, idx):
        return builder.sext(builder.shuffle_vector(v, v, idx), i32v)

    return builder.add(
        builder.mul(half(a, even), half(b, even)), builder.mul(half(a, odd), half(b, odd))
    )


def make_tile(n_rows: int, n_voices: int, x86: bool = HAS_AVX512BW):
    """The tile of ``n_rows`` rows by ``n_voices`` voices; ``x86=False``: the portable IR."""

    @intrinsic
    def dot_tile(typingctx, q, r, x, a, out, column):
        """out[a + v, column + t] = float32(sum over the 32-column chunks of q[r + t] . x[a + v])
        for t < n_rows, v < n_voices. q: int16 [rows, cols], x: int16 [voices, >= cols]
        (C-contiguous); the columns past the last whole chunk are left to the caller."""
        arrays = (q, x, out)
        if not all(isinstance(t, types.Array) and t.ndim == 2 and t.layout == "C" for t in arrays):
            return None  # rows are read at shape[1] apart: C-contiguous matrices only
        if x.dtype != types.int16 or out.dtype != types.float32:
            return None
        sig = types.void(q, r, x, a, out, column)

        def codegen(context, builder, signature, args):
            q_v, r_v, x_v, a_v, out_v, col_v = args
            i64 = ir.IntType(64)
            i16v = ir.VectorType(ir.IntType(16), CHUNK)
            i32v = ir.VectorType(ir.IntType(32), LANES)
            f32v = ir.VectorType(ir.FloatType(), LANES)
            qa = context.make_array(signature.args[0])(context, builder, q_v)
            xa = context.make_array(signature.args[2])(context, builder, x_v)
            oa = context.make_array(signature.args[4])(context, builder, out_v)
            q_cols = builder.extract_value(qa.shape, 1)
            x_cols = builder.extract_value(xa.shape, 1)
            o_cols = builder.extract_value(oa.shape, 1)
            kinds = (signature.args[1], signature.args[3], signature.args[5])
            r_v, a_v, col_v = (
                context.cast(builder, v, t, types.int64)
                for v, t in zip((r_v, a_v, col_v), kinds, strict=True)
            )

            def row(data, first, i, width):
                return builder.gep(data, [builder.mul(builder.add(first, i64(i)), width)])

            q_rows = [row(qa.data, r_v, t, q_cols) for t in range(n_rows)]
            x_rows = [row(xa.data, a_v, v, x_cols) for v in range(n_voices)]
            acc = [
                [cgutils.alloca_once_value(builder, ir.Constant(i32v, None)) for _ in x_rows]
                for _ in q_rows
            ]
            with cgutils.for_range(builder, builder.udiv(q_cols, i64(CHUNK))) as loop:
                offset = builder.mul(loop.index, i64(CHUNK))

                def load(base):
                    ptr = builder.bitcast(builder.gep(base, [offset]), i16v.as_pointer())
                    return builder.load(ptr, align=2)

                qv = [load(p) for p in q_rows]
                xv = [load(p) for p in x_rows]
                for t in range(n_rows):
                    for v in range(n_voices):
                        total = builder.add(
                            builder.load(acc[t][v]), _madd(builder, qv[t], xv[v], x86)
                        )
                        builder.store(total, acc[t][v])
            reduce = cgutils.get_or_insert_function(
                builder.module,
                ir.FunctionType(ir.FloatType(), [ir.FloatType(), f32v]),
                "llvm.vector.reduce.fadd.v16f32",
            )
            for t in range(n_rows):
                for v in range(n_voices):
                    lanes = builder.sitofp(builder.load(acc[t][v]), f32v)
                    zero = ir.Constant(ir.FloatType(), 0.0)
                    value = builder.call(reduce, [zero, lanes], fastmath=("reassoc",))
                    at = builder.add(
                        builder.mul(builder.add(a_v, i64(v)), o_cols), builder.add(col_v, i64(t))
                    )
                    builder.store(value, builder.gep(oa.data, [at]))
            return context.get_dummy_value()

        return sig, codegen

    return dot_tile


dot_4x4 = make_tile(4, 4)  # four rows by four voices: the inner tile
dot_4x1 = make_tile(4, 1)  # four rows, one voice (the voices past a multiple of four)
dot_1x1 = make_tile(1, 1)  # one row, one voice (the rows past a multiple of four)


@njit(cache=True)
def int_matmat(q, x, n, out):  # pragma: no cover - compiled
    """out[a, r] = the integer sum of q[r] . x[a] over the whole 32-column chunks, for every row
    r and a < n: four rows by four voices at a time, then the voices and rows left over."""
    rows = q.shape[0]
    whole = rows - rows % 4
    for r in range(0, whole, 4):
        a = 0
        while a + 4 <= n:
            dot_4x4(q, r, x, a, out, r)
            a += 4
        while a < n:
            dot_4x1(q, r, x, a, out, r)
            a += 1
    for r in range(whole, rows):
        for a in range(n):
            dot_1x1(q, r, x, a, out, r)
