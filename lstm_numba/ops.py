"""Activation-independent LSTM kernels (a template, see ``mathbench.templating``): the GEMM
wrappers, the element-wise helpers, the tiled recurrent products and Adam. One generated module per
variant (serial, parallel) that every activation pair's kernels import, so they compile once.

Imported as plain Python the kernels run as they read (``prange`` is ``range``); PARALLEL is False.
"""
from __future__ import annotations

import math

import numpy as np
from numba import prange

from mathbench import c, kernel, pkernel, templating

PARALLEL = False  # generated modules: the variant, a compile-time constant

# The tiled recurrent products sum in registers: reassociation lets each dot product use SIMD
# partial sums (as any BLAS does), contraction makes them FMAs.
DOT_FASTMATH = frozenset({"contract", "nsz", "reassoc"})
dotkernel = templating.fixed(fastmath=DOT_FASTMATH)
# The task heads' loops inline mathbench's SIMD exp/log1p at Numba IR level, where they take the
# loop's flags: FMA contraction is what their accuracy bounds were measured with.
HEAD_FASTMATH = frozenset({"contract"})
headkernel = templating.fixed(fastmath=HEAD_FASTMATH)
# Kernels whose arithmetic must not depend on the activation pair's flags (the heads' sums).
exact = templating.fixed(fastmath=False)

# Conventions: arrays are C-contiguous and time-major. PARALLEL is a compile-time constant of
# the generated module: Numba prunes the other branch, so the serial variant contains no chunked
# code at all. ``nchunks`` is the number of work chunks of a parallel region (1 in the serial
# variant, where prange is range). Per layer l:
#   Z[l]  (T, B, 4H)  before the recurrence: input projection + biases; after it: the gate
#                     outputs i, f, g, o (what the backward pass differentiates via *_DY)
#   Hs[l] (T+1, B, H) Hs[l][0] = initial h, Hs[l][t+1] = h_t;  Cs[l] likewise for c
#   TC[l] (T, B, H)   CELL(c_t)
# R (B, 4H) holds the forward's per-timestep h_{t-1} @ W_hh^T, gate pre-activations contiguous
# per batch row like Z; tmp (B, H) the BLAS backward's da_{t+1} @ W_hh before it is added.


@kernel
def chunk(n, nchunks, ch):
    """Bounds [lo, hi) of chunk ``ch`` when splitting ``n`` items into ``nchunks`` parts."""
    return ch * n // nchunks, (ch + 1) * n // nchunks


@pkernel
def mm_nt(A, W, out, nchunks):
    """out = A @ W.T  (A: N x K, W: M x K, out: N x M), rows of A split across chunks."""
    if not PARALLEL:
        np.dot(A, W.T, out)
        return
    N = A.shape[0]
    for ch in prange(nchunks):
        r0, r1 = chunk(N, nchunks, ch)
        if r1 > r0:
            np.dot(A[r0:r1], W.T, out[r0:r1])


@pkernel
def mm_nn(A, W, out, nchunks):
    """out = A @ W  (A: N x M, W: M x K, out: N x K), rows of A split across chunks."""
    if not PARALLEL:
        np.dot(A, W, out)
        return
    N = A.shape[0]
    for ch in prange(nchunks):
        r0, r1 = chunk(N, nchunks, ch)
        if r1 > r0:
            np.dot(A[r0:r1], W, out[r0:r1])


@pkernel
def mm_tn(A, X, out, scratch, nchunks):
    """out = A.T @ X  (A: N x M, X: N x K, out: M x K): weight gradients summed over the
    N = T*B rows. Parallel: each chunk of rows into its own slice of ``scratch``, then a fixed-
    order sum (deterministic for a given thread count)."""
    if not PARALLEL:
        np.dot(A.T, X, out)
        return
    N = A.shape[0]
    M, K = out.shape
    parts = scratch[:nchunks * M * K].reshape((nchunks, M, K))
    for ch in prange(nchunks):
        r0, r1 = chunk(N, nchunks, ch)
        if r1 > r0:
            np.dot(A[r0:r1].T, X[r0:r1], parts[ch])
        else:
            for i in range(M):
                for k in range(K):
                    parts[ch, i, k] = 0
    for ch in prange(nchunks):
        i0, i1 = chunk(M, nchunks, ch)
        for i in range(i0, i1):
            for k in range(K):
                s = parts[0, i, k]
                for q in range(1, nchunks):
                    s += parts[q, i, k]
                out[i, k] = s


# Elementwise helpers are serial in both variants: they cost O(T*B*4H) against the GEMMs'
# O(T*B*4H*H), and every parallel region costs compile time and a thread wake-up.


@kernel
def add_bias(Z2, b1, b2):
    """Z2[n, :] += b1 + b2 for every row."""
    N, M = Z2.shape
    for n in range(N):
        row = Z2[n]
        for m in range(M):
            row[m] += b1[m] + b2[m]


@kernel
def column_sums(A, out):
    """out[m] = sum_n A[n, m] (bias gradients)."""
    N, M = A.shape
    for m in range(M):
        out[m] = 0
    for n in range(N):
        row = A[n]
        for m in range(M):
            out[m] += row[m]


@kernel
def copy2(src, dst):
    for i in range(src.shape[0]):
        for j in range(src.shape[1]):
            dst[i, j] = src[i, j]


# The per-timestep recurrent products are thin: (B x H) by (H x 4H) with B = the batch. OpenBLAS
# runs such shapes at a fraction of its speed for some (H, B) (about 20 GFLOP/s at H 512, B 4, one
# core, against 90 for the same FLOPs as one big GEMM), so each product has a tiled kernel beside
# the BLAS call, and the model's plan (``Plan``, measured per batch shape by ``tune_plan``) picks.


@dotkernel
def rec_rows(W, X, out, r0, r1):
    """out[b, j] = sum_k W[j, k] X[b, k] for the rows j in [r0, r1) of W and every row b of X
    (forward: W = W_hh (4H x H), X = h (B x H), out (B x 4H) gate pre-activations per batch row).
    Register tiles of 4 batch rows x 2 weight rows (then 2 x 4, 1 x 4): each weight row is read
    once per 4 batch rows and every inner loop is a set of independent contiguous dot products."""
    B, K = X.shape
    zero = W.dtype.type(0)
    b0 = 0
    while b0 + 4 <= B:
        x0, x1, x2, x3 = X[b0], X[b0 + 1], X[b0 + 2], X[b0 + 3]
        o0, o1, o2, o3 = out[b0], out[b0 + 1], out[b0 + 2], out[b0 + 3]
        j = r0
        while j < r1:
            w = W[j]
            v = W[j + 1] if j + 1 < r1 else W[j]  # an odd last row is computed twice, stored once
            a0 = a1 = a2 = a3 = c0 = c1 = c2 = c3 = zero
            for k in range(K):
                wk, vk = w[k], v[k]
                e0, e1, e2, e3 = x0[k], x1[k], x2[k], x3[k]
                a0 += wk * e0
                a1 += wk * e1
                a2 += wk * e2
                a3 += wk * e3
                c0 += vk * e0
                c1 += vk * e1
                c2 += vk * e2
                c3 += vk * e3
            o0[j], o1[j], o2[j], o3[j] = a0, a1, a2, a3
            if j + 1 < r1:
                o0[j + 1], o1[j + 1], o2[j + 1], o3[j + 1] = c0, c1, c2, c3
            j += 2
        b0 += 4
    while b0 < B:  # 1 or 2 rows at a time, 4 weight rows
        n = 2 if b0 + 2 <= B else 1
        x0, x1 = X[b0], X[b0 + n - 1]
        o0, o1 = out[b0], out[b0 + n - 1]
        for j in range(r0, r1, 4):
            q = min(4, r1 - j)
            w0, w1, w2, w3 = W[j], W[j + min(1, q - 1)], W[j + min(2, q - 1)], W[j + q - 1]
            a0 = a1 = a2 = a3 = c0 = c1 = c2 = c3 = zero
            for k in range(K):
                e0, e1 = x0[k], x1[k]
                u0, u1, u2, u3 = w0[k], w1[k], w2[k], w3[k]
                a0 += u0 * e0
                a1 += u1 * e0
                a2 += u2 * e0
                a3 += u3 * e0
                c0 += u0 * e1
                c1 += u1 * e1
                c2 += u2 * e1
                c3 += u3 * e1
            # rows past r1 repeat the last one and are not stored; the second batch row may be
            # the first again (n == 1) and is then stored over it with the same values
            o1[j] = c0
            o0[j] = a0
            if q > 1:
                o1[j + 1] = c1
                o0[j + 1] = a1
            if q > 2:
                o1[j + 2] = c2
                o0[j + 2] = a2
            if q > 3:
                o1[j + 3] = c3
                o0[j + 3] = a3
        b0 += n


@dotkernel
def rec_axpy(W, D, out, c0, c1):
    """out[b, c] += sum_r D[b, r] W[r, c] for the columns c in [c0, c1) (backward: W = W_hh
    (4H x H), D = da (B x 4H), out = dL/dh (B x H)). Row-by-row axpys over contiguous slices of W,
    4 weight rows x 4 batch rows per pass (then 4 x 1): each weight row is read once per 4 batch
    rows, each output element is loaded and stored once per 4 weight rows, and no transposed copy
    of W is needed. The summation order within an element is fixed (no reassociation needed)."""
    B = D.shape[0]
    G = W.shape[0]
    n = c1 - c0
    G4 = G - G % 4
    b0 = 0
    while b0 + 4 <= B:
        d0, d1, d2, d3 = D[b0], D[b0 + 1], D[b0 + 2], D[b0 + 3]
        o0, o1, o2, o3 = out[b0][c0:c1], out[b0 + 1][c0:c1], out[b0 + 2][c0:c1], out[b0 + 3][c0:c1]
        for j in range(0, G4, 4):
            w0, w1, w2, w3 = W[j][c0:c1], W[j + 1][c0:c1], W[j + 2][c0:c1], W[j + 3][c0:c1]
            p0, p1, p2, p3 = d0[j], d0[j + 1], d0[j + 2], d0[j + 3]
            q0, q1, q2, q3 = d1[j], d1[j + 1], d1[j + 2], d1[j + 3]
            r0, r1, r2, r3 = d2[j], d2[j + 1], d2[j + 2], d2[j + 3]
            s0, s1, s2, s3 = d3[j], d3[j + 1], d3[j + 2], d3[j + 3]
            for k in range(n):
                u0, u1, u2, u3 = w0[k], w1[k], w2[k], w3[k]
                o0[k] += p0 * u0 + p1 * u1 + p2 * u2 + p3 * u3
                o1[k] += q0 * u0 + q1 * u1 + q2 * u2 + q3 * u3
                o2[k] += r0 * u0 + r1 * u1 + r2 * u2 + r3 * u3
                o3[k] += s0 * u0 + s1 * u1 + s2 * u2 + s3 * u3
        for j in range(G4, G):
            w = W[j][c0:c1]
            p0, q0, r0, s0 = d0[j], d1[j], d2[j], d3[j]
            for k in range(n):
                o0[k] += p0 * w[k]
                o1[k] += q0 * w[k]
                o2[k] += r0 * w[k]
                o3[k] += s0 * w[k]
        b0 += 4
    for b in range(b0, B):
        d = D[b]
        o = out[b][c0:c1]
        for j in range(0, G4, 4):
            w0, w1, w2, w3 = W[j][c0:c1], W[j + 1][c0:c1], W[j + 2][c0:c1], W[j + 3][c0:c1]
            p0, p1, p2, p3 = d[j], d[j + 1], d[j + 2], d[j + 3]
            for k in range(n):
                o[k] += p0 * w0[k] + p1 * w1[k] + p2 * w2[k] + p3 * w3[k]
        for j in range(G4, G):
            w = W[j][c0:c1]
            p0 = d[j]
            for k in range(n):
                o[k] += p0 * w[k]


@kernel
def recurrent_product(W, h, R, b0, b1, blas):
    """R[b] = W @ h[b] for the batch rows [b0, b1) (all 4H rows of W): the tiled kernel, or
    BLAS (gemv for one row, else sgemm with W transposed in the call, no copy)."""
    if not blas:
        rec_rows(W, h[b0:b1], R[b0:b1], 0, W.shape[0])
    elif b1 - b0 == 1:
        np.dot(W, h[b0], R[b0])
    else:
        np.dot(h[b0:b1], W.T, R[b0:b1])


@kernel
def recurrent_grad(W, D, dH, tmp, b0, b1, blas):
    """dH[b] += D[b] @ W for the batch rows [b0, b1): the tiled axpy kernel, or BLAS into
    ``tmp`` (B x H) and a contiguous add."""
    if not blas:
        rec_axpy(W, D[b0:b1], dH[b0:b1], 0, W.shape[1])
        return
    if b1 - b0 == 1:
        np.dot(D[b0], W, tmp[b0])
    else:
        np.dot(D[b0:b1], W, tmp[b0:b1])
    for b in range(b0, b1):
        d = dH[b]
        s = tmp[b]
        for k in range(d.shape[0]):
            d[k] += s[k]


@pkernel
def adam_update(p, g, m, v, step, b1, omb1, b2, omb2, eps, inv_sqrt_bc2, clip, nchunks):
    """Clip g to global norm ``clip`` (if clip > 0; torch's clip_grad_norm_ rule), then one Adam
    step with bias correction (torch's formula: p -= step * m / (sqrt(v)/sqrt(bc2) + eps), with
    step = lr/bc1). Scalars arrive in the parameter dtype. Returns the gradient norm before
    clipping; a non-finite norm leaves p, m, v untouched."""
    n = p.shape[0]
    if not PARALLEL:
        norm = math.sqrt(np.dot(g, g))
    else:
        partial = np.zeros(nchunks)
        for ch in prange(nchunks):
            i0, i1 = chunk(n, nchunks, ch)
            if i1 > i0:
                partial[ch] = np.dot(g[i0:i1], g[i0:i1])
        norm = math.sqrt(partial.sum())
    if not math.isfinite(norm):
        return norm
    scale = 1.0
    if clip > 0 and norm > clip:
        scale = clip / (norm + 1e-6)
    s = c(p[0], scale)
    if not PARALLEL:
        adam_loop(p, g, m, v, s, step, b1, omb1, b2, omb2, eps, inv_sqrt_bc2)
    else:
        for ch in prange(nchunks):
            i0, i1 = chunk(n, nchunks, ch)
            adam_loop(p[i0:i1], g[i0:i1], m[i0:i1], v[i0:i1], s, step, b1, omb1, b2, omb2, eps, inv_sqrt_bc2)
    return norm


@kernel
def adam_loop(p, g, m, v, s, step, b1, omb1, b2, omb2, eps, inv_sqrt_bc2):
    # indices from range(len): provably non-negative, so the loop vectorizes
    for i in range(p.shape[0]):
        gi = g[i] * s
        mi = b1 * m[i] + omb1 * gi
        vi = b2 * v[i] + omb2 * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= step * mi / (math.sqrt(vi) * inv_sqrt_bc2 + eps)
