"""The LSTM's math: one timestep's cell forward and backward, and the layer stack over a sequence.

This module is a kernel template (``mathbench.templating``): importable and runnable as plain
Python with the defaults tanh/sigmoid (slowly: the marks ``@kernel``/``@pkernel`` change nothing
here). For each (cell, gate, parallel) choice, ``lstm_numba.variants`` generates a module that is
this file unchanged plus a footer binding CELL_F, CELL_DY, GATE_F, GATE_DY to the registry's
forward and backprop-form scalars of the chosen activations, the ``lstm_numba.ops`` kernels to their
generated variant, PARALLEL to the variant, and compiling every marked function with Numba
(disk-cached). The task heads (input projection, loss, its gradient) are in ``lstm_numba.tasks``;
the model object that runs all this (parameters, buffers, plans) is ``lstm_numba.network.Model``.

The math (per layer, per timestep; x = layer input, h/c = previous state):
    a = W_ih x + b_ih + W_hh h + b_hh                      (4H, gate order i f g o)
    i = GATE(a_i), f = GATE(a_f), g = CELL(a_g), o = GATE(a_o)
    c' = f c + i g,  h' = o CELL(c')
Backward (dh, dc from above / the future):
    do = dh CELL(c');  dc += dh o CELL'(c');  di = dc g;  dg = dc i;  df = dc c;  dc_prev = dc f
    da = (di GATE'(i), df GATE'(f), dg CELL'(g), do GATE'(o)) with X'(y) = X_DY(y) from outputs
    dW_hh += da^T h, dW_ih += da^T x, db += da, dh_prev = da W_hh, dx = da W_ih
The backward pass uses the registry's backprop forms ``dfdy`` on stored outputs, so a new
activation needs no edits here. All input projections and weight gradients are batched over the
whole sequence (one GEMM per layer); only h @ W_hh^T (forward) and da @ W_hh (backward) run per
timestep. Array conventions (Z, Hs, Cs, TC, R) are in ``lstm_numba.ops``.

The parallel variant splits every timestep's hidden units (or batch rows, as the measured plan
says) into ``nchunks`` chunks inside ``prange``; it calls BLAS from worker threads, so the caller
must limit BLAS to one thread (``train.thread_limits``). The serial variant never starts Numba's
thread pool.
"""
from __future__ import annotations

from numba import prange

from mathbench import kernel, pkernel, registry
from lstm_numba.ops import (add_bias, chunk, column_sums, copy2, mm_nn, mm_nt, mm_tn, rec_axpy, rec_rows,
                            recurrent_grad, recurrent_product)

# The activation slots: the registry's forward and backprop-form scalars. These defaults (the
# seed's tanh/sigmoid) are for reading and running this file as plain Python; a generated
# variant rebinds them in its footer.
CELL_F, CELL_DY = (lambda i: (i.forward, i.dfdy))(registry.resolve("tanh")[1])
GATE_F, GATE_DY = (lambda i: (i.forward, i.dfdy))(registry.resolve("sigmoid")[1])

PARALLEL = False  # generated modules: the variant, a compile-time constant


@kernel
def gate_forward_loop(i, f, o, ri, rf, ro, gp):
    """i, f, o <- GATE(i + ri, f + rf, o + ro): input and recurrent parts summed and the gate
    activations applied, for one batch row, in place. Its own loop (and function) so that its
    vectorization is reported apart from the cell's (``loop_facts``)."""
    for k in range(i.shape[0]):
        i[k] = GATE_F(i[k] + ri[k], gp)
        f[k] = GATE_F(f[k] + rf[k], gp)
        o[k] = GATE_F(o[k] + ro[k], gp)


@kernel
def cell_forward_loop(i, f, g, o, rg, cprev, cnew, tc, hnew, cp):
    """g <- CELL(g + rg), c' = f c + i g, CELL(c'), h' = o CELL(c') for one batch row (gates done)."""
    for k in range(g.shape[0]):
        gk = CELL_F(g[k] + rg[k], cp)
        cc = f[k] * cprev[k] + i[k] * gk
        t = CELL_F(cc, cp)
        g[k] = gk
        cnew[k] = cc
        tc[k] = t
        hnew[k] = o[k] * t


@kernel
def cell_forward_block(z, R, cprev, cnew, hnew, tc, b0, b1, j0, j1, cp, gp):
    """One timestep's cell update for batch rows [b0, b1) and hidden units [j0, j1).
    z (B, 4H): input part of the pre-activations, overwritten with the gate outputs;
    R (B, 4H): recurrent part h_prev @ W_hh^T. Every loop runs over contiguous 1-D slices of one
    batch row from index 0, so it vectorizes when the activations do (no libm calls)."""
    H = cprev.shape[1]
    for b in range(b0, b1):
        zb = z[b]
        rb = R[b]
        i = zb[j0:j1]
        f = zb[H + j0:H + j1]
        g = zb[2 * H + j0:2 * H + j1]
        o = zb[3 * H + j0:3 * H + j1]
        gate_forward_loop(i, f, o, rb[j0:j1], rb[H + j0:H + j1], rb[3 * H + j0:3 * H + j1], gp)
        cell_forward_loop(i, f, g, o, rb[2 * H + j0:2 * H + j1], cprev[b][j0:j1], cnew[b][j0:j1],
                          tc[b][j0:j1], hnew[b][j0:j1], cp)


@pkernel
def step_forward(W, z, hprev, cprev, cnew, hnew, tc, R, blas, by_batch, cp, gp, nchunks):
    """One timestep of one layer: R = hprev @ W^T (``recurrent_product``), then the cell update.
    Parallel: chunks of batch rows (``by_batch``: each chunk its rows' product and cells) or of
    hidden units (each chunk the rows of W for its units in all four gates, tiled, then its
    cells); the plan chooses."""
    B, H = cprev.shape
    if not PARALLEL:
        recurrent_product(W, hprev, R, 0, B, blas)
        cell_forward_block(z, R, cprev, cnew, hnew, tc, 0, B, 0, H, cp, gp)
    elif by_batch:
        for ch in prange(nchunks):
            b0, b1 = chunk(B, nchunks, ch)
            if b1 > b0:
                recurrent_product(W, hprev, R, b0, b1, blas)
                cell_forward_block(z, R, cprev, cnew, hnew, tc, b0, b1, 0, H, cp, gp)
    else:
        for ch in prange(nchunks):
            j0, j1 = chunk(H, nchunks, ch)
            if j1 > j0:
                for q in range(4):
                    rec_rows(W, hprev, R, q * H + j0, q * H + j1)
                cell_forward_block(z, R, cprev, cnew, hnew, tc, 0, B, j0, j1, cp, gp)


@kernel
def cell_backward_loop(dh, i, f, g, o, tc, cprev, dc, di, df, dg, do, cp, gp):
    """The backward of one batch row (all 1-D slices of the units [j0, j1)): the loop
    ``loop_facts`` reports as "backward"."""
    for k in range(i.shape[0]):
        ik = i[k]
        fk = f[k]
        gk = g[k]
        ok = o[k]
        tk = tc[k]
        dct = dc[k] + dh[k] * ok * CELL_DY(tk, cp)
        di[k] = dct * gk * GATE_DY(ik, gp)
        df[k] = dct * cprev[k] * GATE_DY(fk, gp)
        dg[k] = dct * ik * CELL_DY(gk, cp)
        do[k] = dh[k] * tk * GATE_DY(ok, gp)
        dc[k] = dct * fk


@kernel
def cell_backward_block(dHt, z, tc, cprev, dc, dGt, b0, b1, j0, j1, cp, gp):
    """Backward of one timestep for batch rows [b0, b1) and hidden units [j0, j1): dHt (B, H) =
    dL/dh_t (from above and from t+1); dc carries in from t+1 and out to t-1; writes dGt (B, 4H)
    = dL/da_t."""
    H = cprev.shape[1]
    for b in range(b0, b1):
        zb = z[b]
        gb = dGt[b]
        cell_backward_loop(dHt[b][j0:j1], zb[j0:j1], zb[H + j0:H + j1], zb[2 * H + j0:2 * H + j1],
                           zb[3 * H + j0:3 * H + j1], tc[b][j0:j1], cprev[b][j0:j1], dc[b][j0:j1],
                           gb[j0:j1], gb[H + j0:H + j1], gb[2 * H + j0:2 * H + j1], gb[3 * H + j0:3 * H + j1],
                           cp, gp)


@pkernel
def step_backward(W, dGnext, dHt, z, tc, cprev, dc, dGt, tmp, rec, blas, by_batch, cp, gp, nchunks):
    """One timestep of one layer backwards: dHt += dGnext @ W (``recurrent_grad``; skipped at the
    last timestep, ``rec`` False), then the cell backward. Parallel as ``step_forward``: batch-row
    chunks, or hidden-unit chunks, each its columns of dGnext @ W (tiled) and its cells."""
    B, H = cprev.shape
    if not PARALLEL:
        if rec:
            recurrent_grad(W, dGnext, dHt, tmp, 0, B, blas)
        cell_backward_block(dHt, z, tc, cprev, dc, dGt, 0, B, 0, H, cp, gp)
    elif by_batch:
        for ch in prange(nchunks):
            b0, b1 = chunk(B, nchunks, ch)
            if b1 > b0:
                if rec:
                    recurrent_grad(W, dGnext, dHt, tmp, b0, b1, blas)
                cell_backward_block(dHt, z, tc, cprev, dc, dGt, b0, b1, 0, H, cp, gp)
    else:
        for ch in prange(nchunks):
            j0, j1 = chunk(H, nchunks, ch)
            if j1 > j0:
                if rec:
                    rec_axpy(W, dGnext, dHt, j0, j1)
                cell_backward_block(dHt, z, tc, cprev, dc, dGt, 0, B, j0, j1, cp, gp)


@kernel
def forward_stack(W_ihR, W_hh, b_ih, b_hh, h0, c0, Z, Hs, Cs, TC, R, plan, cp, gp, nchunks):
    """All layers over all timesteps; Z[0] must already hold layer 0's input projection plus
    biases. Per layer: the input projection of the whole sequence (one GEMM), then the
    recurrence, where only h_{t-1} @ W_hh^T and the cell update run per timestep. ``plan``:
    (forward product by BLAS, backward product by BLAS, parallel chunks of batch rows) as 0/1."""
    L, T, B, H4 = Z.shape
    H = H4 // 4
    for layer in range(L):
        Zl, Hl, Cl, TCl, Wl = Z[layer], Hs[layer], Cs[layer], TC[layer], W_hh[layer]
        copy2(h0[layer], Hl[0])
        copy2(c0[layer], Cl[0])
        if layer > 0:
            Z2 = Zl.reshape((T * B, H4))
            mm_nt(Hs[layer - 1][1:].reshape((T * B, H)), W_ihR[layer - 1], Z2, nchunks)
            add_bias(Z2, b_ih[layer], b_hh[layer])
        for t in range(T):
            step_forward(Wl, Zl[t], Hl[t], Cl[t], Cl[t + 1], Hl[t + 1], TCl[t], R, plan[0], plan[2], cp, gp, nchunks)


@kernel
def backward_stack(W_ihR, W_hh, Z, Hs, Cs, TC, gW_ihR, gW_hh, gb_ih, gb_hh,
                   dG, dH, tmp, dc, scratch, plan, cp, gp, nchunks):
    """Backpropagation through time for all layers from the top; dH (T, B, H) holds dL/dh_t of
    the top layer on entry (and is overwritten). On exit dG (T, B, 4H) holds layer 0's dL/da_t
    (the caller adds layer 0's input-weight gradient). Per layer: the recurrence backwards in
    time (only da_{t+1} @ W_hh and the cell backward per timestep), then the weight and bias
    gradients and the gradient for the layer below as whole-sequence GEMMs."""
    L, T, B, H4 = Z.shape
    H = H4 // 4
    N = T * B
    dG2 = dG.reshape((N, H4))
    dH2 = dH.reshape((N, H))
    for layer in range(L - 1, -1, -1):
        Zl, Cl, TCl, Wl = Z[layer], Cs[layer], TC[layer], W_hh[layer]
        for b in range(B):
            for j in range(H):
                dc[b, j] = 0
        for t in range(T - 1, -1, -1):
            nxt = dG[t + 1] if t < T - 1 else dG[t]  # unused at the last timestep
            step_backward(Wl, nxt, dH[t], Zl[t], TCl[t], Cl[t], dc, dG[t], tmp, t < T - 1, plan[1], plan[2],
                          cp, gp, nchunks)
        mm_tn(dG2, Hs[layer][:T].reshape((N, H)), gW_hh[layer], scratch, nchunks)
        column_sums(dG2, gb_ih[layer])
        for m in range(H4):
            gb_hh[layer, m] = gb_ih[layer, m]
        if layer > 0:
            mm_tn(dG2, Hs[layer - 1][1:].reshape((N, H)), gW_ihR[layer - 1], scratch, nchunks)
            mm_nn(dG2, W_ihR[layer - 1], dH2, nchunks)


@kernel
def infer_stack(W_ihR, W_hh, b_ih, b_hh, h0, c0, Z, Ha, Hb, C2, tc, R, hT, cT, plan, cp, gp, nchunks):
    """Forward only (prediction): the recurrence of ``forward_stack`` without keeping what the
    backward pass needs. One layer's pre-activations Z (T, B, 4H), the hidden sequences of two
    adjacent layers (Ha, Hb: (T+1, B, H), even layers in Ha), two cell states (C2 (2, B, H)) and
    one CELL(c) row block (tc) are reused for every layer and timestep. Z must hold layer 0's
    input projection plus biases. Each layer's last h and c go to hT, cT (L, B, H). Returns the
    index of the top layer's buffer (0: Ha, 1: Hb)."""
    T, B, H4 = Z.shape
    H = H4 // 4
    L = W_hh.shape[0]
    for layer in range(L):
        Hl = Ha if layer % 2 == 0 else Hb
        if layer > 0:
            below = Hb if layer % 2 == 0 else Ha
            Z2 = Z.reshape((T * B, H4))
            mm_nt(below[1:].reshape((T * B, H)), W_ihR[layer - 1], Z2, nchunks)
            add_bias(Z2, b_ih[layer], b_hh[layer])
        copy2(h0[layer], Hl[0])
        copy2(c0[layer], C2[0])
        for t in range(T):
            step_forward(W_hh[layer], Z[t], Hl[t], C2[t % 2], C2[(t + 1) % 2], Hl[t + 1], tc, R,
                         plan[0], plan[2], cp, gp, nchunks)
        copy2(Hl[T], hT[layer])
        copy2(C2[T % 2], cT[layer])
    return (L - 1) % 2
