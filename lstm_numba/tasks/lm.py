"""Task "lm": a character language model. Integer tokens in (one-hot, as a column lookup),
softmax cross-entropy over ``vocab_size`` classes at every timestep.

Also a kernel template (``mathbench.templating``): the input gather/scatter, the softmax head and
the entry points ``forward_lm``/``backward_lm``/``infer_lm`` are generated per activation pair next
to the cell kernels they call (``variants.task_kernels``).
"""
from __future__ import annotations

import math
import sys

import numpy as np

from mathbench import UsageError, c, exp_core
from lstm_numba import baselines as BL, data as D
from lstm_numba.model import backward_stack, forward_stack, infer_stack
from lstm_numba.ops import column_sums, exact, headkernel, mm_nn, mm_nt, mm_tn
from lstm_numba.tasks import Task, c_writable, recorded_data
from mathbench import kernel


class LanguageModel(Task):
    name = "lm"
    QUALITY = "loss"
    TRIVIAL, STRONG = "unigram", "bigram"
    SCORES = ("accuracy",)  # next-character accuracy
    PERPLEXITY = True
    HEAD_LOOP = ("exp_shifted", 1, 1)  # the softmax's exp: kernel, 1-D arrays, scalars
    INPUT = "tokens"  # peers: integer ids, one-hot
    OUTPUT = "softmax_every_step"  # peers: a V-way softmax at every timestep

    # -- the model
    def check_config(self, cfg, positive_int) -> None:
        positive_int("vocab_size", cfg.vocab_size)

    def input_size(self, cfg) -> int:
        return cfg.vocab_size

    def output_size(self, cfg) -> int:
        return cfg.vocab_size

    def batch_dtypes(self, cfg):
        return np.dtype(np.int64), np.dtype(np.int64)

    def check_batch(self, cfg, inputs, targets):
        x = np.asarray(inputs)
        if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
            raise UsageError(f"LM inputs must be (T, B) token ids, got shape {x.shape}")
        if not np.issubdtype(x.dtype, np.integer):
            raise UsageError("LM inputs must be integer token ids")
        x = c_writable(x, np.int64)
        if x.size and (x.min() < 0 or x.max() >= cfg.vocab_size):
            raise UsageError(f"token ids must be in [0, {cfg.vocab_size})")
        if targets is None:
            return x, None
        y = c_writable(np.asarray(targets), np.int64)
        if y.shape != x.shape:
            raise UsageError(f"LM targets must have the inputs' shape {x.shape}, got {y.shape}")
        if y.min() < 0 or y.max() >= cfg.vocab_size:
            raise UsageError(f"target ids must be in [0, {cfg.vocab_size})")
        return x, y

    def example_batch(self, cfg, T, B, rng):
        """Zeros (rng None: for compiling) or random ids (for measuring plans)."""
        if rng is None:
            return np.zeros((T, B), np.int64), np.zeros((T, B), np.int64)
        return rng.integers(0, cfg.vocab_size, (T, B)), rng.integers(0, cfg.vocab_size, (T, B))

    def alloc(self, cfg, T, B, train) -> dict:
        """Probabilities (T*B, V), placeholder targets, the token-major input pack ``emb`` and,
        for training, the logits' gradient ``dL``."""
        O, H, dt = cfg.n_out, cfg.hidden, cfg.np_dtype
        out = {"P": np.zeros((T * B, O), dt), "dummy_targets": np.zeros((T, B), np.int64),
               "emb": np.zeros((O, 4 * H), dt)}
        if train:
            out["dL"] = np.zeros((T * B, O), dt)
        return out

    def forward(self, k, m, x, y, h0, c0, ws, codes, nch):
        p = m.params
        return k.forward_lm(x, y, p.W_ih0, p.W_ihR, p.W_hh, p.b_ih, p.b_hh, p.W_out, p.b_out, h0, c0, ws.Z, ws.Hs,
                            ws.Cs, ws.TC, ws.R, ws.P, ws.emb, codes, m.cell_param, m.gate_param, nch)

    def backward(self, k, m, ws, g, codes, nch):
        p = m.params
        k.backward_lm(ws.inputs, ws.targets, p.W_ih0, p.W_ihR, p.W_hh, p.W_out, ws.Z, ws.Hs, ws.Cs,
                      ws.TC, ws.P, g.W_ih0, g.W_ihR, g.W_hh, g.b_ih, g.b_hh, g.W_out, g.b_out,
                      ws.dL, ws.dG, ws.dH, ws.tmp, ws.dc, ws.scratch, ws.emb, codes, m.cell_param, m.gate_param, nch)

    def infer(self, k, m, x, h0, c0, ws, codes, nch):
        p = m.params
        return k.infer_lm(x, ws.dummy_targets, p.W_ih0, p.W_ihR, p.W_hh, p.b_ih, p.b_hh, p.W_out, p.b_out, h0, c0,
                          ws.Z, ws.Ha, ws.Hb, ws.C2, ws.tc, ws.R, ws.hT, ws.cT, ws.P, ws.emb, codes, m.cell_param,
                          m.gate_param, nch)

    def probabilities(self, cfg, ws):
        return ws.P.reshape(ws.T, ws.B, cfg.vocab_size)

    def io_flops(self, cfg, T, B):
        """(forward, backward) FLOPs of the head (layer 0 gathers and scatters rows: no product)."""
        head = 2 * T * B * cfg.hidden * cfg.vocab_size
        return head, 2 * head  # dW_out and dh of the head

    # -- data and scores (sweep, study)
    def load_data(self, s):
        return D.load_text(s.data) if s.data else D.default_text()

    def data_info(self, ds) -> dict:
        return {"source": ds.source, "fingerprint": ds.fingerprint, "vocab": ds.n_vocab,
                "train_chars": int(ds.fit.size), "validation_chars": int(ds.val.size),
                "held_out_chars": int(ds.test.size)}

    def model_kwargs(self, ds) -> dict:
        return dict(vocab_size=ds.n_vocab)

    def train_batch(self, ds, rng, batch, seq_len, dtype):
        return ds.train_batch(rng, batch, seq_len)

    def eval_batches(self, ds, s, dtype, part):
        return [(np.ascontiguousarray(x), np.ascontiguousarray(y))
                for x, y in ds.eval_batches(s.seq_len, s.eval_batch, max_chars=s.eval_chars, part=part)]

    def reference_scores(self, ds, eval_set) -> dict:
        return BL.text(ds.fit, np.concatenate([x.ravel() for x, _ in eval_set]),
                       np.concatenate([y.ravel() for _, y in eval_set]), ds.n_vocab)

    def labels(self, probabilities):
        return probabilities.argmax(-1)  # the most likely next character

    def scores(self, ys, preds) -> dict:
        correct = sum(int(np.sum(np.asarray(p) == y)) for y, p in zip(ys, preds))
        return {"accuracy": correct / sum(int(np.asarray(y).size) for y in ys)}

    def ref_columns(self, refs) -> dict:
        return {"ref_unigram": refs["unigram"], "ref_bigram": refs["bigram"]}

    def refs_text(self, r) -> str:
        return (f"baselines on the same test characters (fit on the training text): unigram "
                f"{r['ref_unigram']:.3f}, bigram {r['ref_bigram']:.3f} nats/char")

    def quality_cell(self, r, ci, fmt, kind) -> tuple:
        """(the summary's quality cell, the diff columns, their header names)."""
        qual = ci(r, "loss", "loss_lo", "loss_hi", "{:.3f}", kind)
        if fmt(r.get("perplexity")) != "-":
            qual += f" (ppl {fmt(r.get('perplexity'))})"
        return qual, ("loss_diff", "loss_diff_lo", "loss_diff_hi")

    HEADERS = ("held-out loss", "loss diff")

    # -- findings (read from a sweep's CSV)
    QUALITY_TEXT = "loss (nats/char)"
    REF_MEDIANS = (("unigram", "ref_unigram"), ("bigram", "ref_bigram"))
    STRONG_TEXT = "bigram"

    def flag(self, metrics, refs) -> str:
        """Against ``baselines.text``: no better than unigram / bigram cross-entropy."""
        loss = metrics.get("loss", math.nan)
        if not math.isfinite(loss):
            return ""
        return BL.NOT_TRAINED if loss >= refs["unigram"] else BL.WEAK if loss >= refs["bigram"] else BL.TRAINED

    # -- training and evaluation (lstm_numba.train)
    GENERATES = True

    def train_data(self, model, data) -> np.ndarray:
        """The token array as int64 (1-D, every id < vocab_size)."""
        try:
            tok = np.asarray(data)
        except Exception:  # noqa: BLE001
            raise UsageError("LM data must be a 1-D array of token ids") from None
        if tok.ndim != 1 or not np.issubdtype(tok.dtype, np.integer):
            raise UsageError(f"LM data must be a 1-D array of integer token ids, got {tok.dtype} shape {tok.shape}")
        V = model.config.vocab_size
        if tok.size and (tok.min() < 0 or tok.max() >= V):
            raise UsageError(f"token ids must be in [0, {V}) (the model's vocab_size)")
        return tok.astype(np.int64)

    def train_feed(self, model, tok, cfg):
        """TBPTT: ``cfg.batch`` parallel streams, consecutive chunks of ``seq_len`` with the hidden
        state carried across chunks (detached), wrapping to the start (fresh state) at the end."""
        streams = _streams(tok, cfg.batch, cfg.seq_len + 1)
        T = cfg.seq_len

        def feed():
            pos, state = 0, None
            while True:
                if pos + T + 1 > streams.shape[0]:
                    pos, state = 0, None
                yield streams[pos:pos + T], streams[pos + 1:pos + T + 1], state
                pos += T
                state = model.final_state()  # train advances the feed right after a step

        return T, feed()

    def evaluate(self, model, tok, seq_len, batch) -> dict:
        """Mean cross-entropy per predicted token (state carried over ``batch`` streams),
        perplexity, tokens."""
        batch = max(1, min(batch, (tok.size - 1) // 2))
        streams = _streams(tok, batch, 2)
        n = streams.shape[0]
        total, count, state, pos = 0.0, 0, None, 0
        while pos < n - 1:
            T = min(seq_len, n - 1 - pos)
            loss = model.forward(streams[pos:pos + T], streams[pos + 1:pos + T + 1], state, validate=False)
            total += loss * T * batch
            count += T * batch
            state = model.final_state()
            pos += T
        mean = total / count
        return {"loss": mean, "perplexity": math.exp(mean) if mean < 700 else math.inf, "tokens": count}

    # -- the accuracy study and the train/evaluate commands
    EVAL_METRICS = ("loss", "perplexity", "tokens")  # what ``evaluate`` reports
    REF_UNIT, REF_FORMAT = "nats/char", "{:.3f}"  # the study's summary of the baselines
    HELD_OUT = {"text": ", held-out: its last 10%"}  # the command's data line, per data record

    def study_parts(self, ds, seq_len) -> tuple:
        """(train, validation, test) text as ``train.train`` / ``train.evaluate`` take them."""
        return ds.fit, ds.val, ds.test

    def test_baselines(self, ds, seq_len) -> dict:
        """``baselines.text`` on every consecutive pair of the test text, fit on the training part."""
        return BL.text(ds.fit, ds.test[:-1], ds.test[1:], ds.n_vocab)

    def baselines_text(self, refs) -> str:
        return (f"unigram {refs['unigram']:.4g}, bigram {refs['bigram']:.4g} nats/char (add-0.5, fit on the "
                "training text)")

    # -- the command line (lstm_numba.cli)
    SUMMARY = "character language model"
    DATA_OPTIONS = {"--data": {"sweep": "UTF-8 text file for the lm task", "accuracy": "UTF-8 text file for the lm task",
                               "train": "UTF-8 text for --task lm (default: embedded corpus)",
                               "predict": "score the last 10%% of this text file instead (lm)"}}
    DATA_MISUSE = {"tasks": "--data is a text file for the lm task; add lm to --tasks",
                   "train": "--data is a text file for --task lm", "predict": "--data is for language models"}
    A_MODEL = "a language model"

    def saved_meta(self, ds, seq_len) -> dict:
        return {"task": self.name, "vocab": ds.vocab, "data_source": {"text": ds.record}, "seq_len": seq_len}

    def vocabulary(self, path, model) -> str:
        """The saved model's characters, one per token id."""
        vocab = model.meta.get("vocab")
        if not isinstance(vocab, str) or len(vocab) != model.config.vocab_size or len(set(vocab)) != len(vocab):
            raise UsageError(f"{path} has no valid vocabulary in its metadata ({model.config.vocab_size} distinct "
                             "characters); was it saved by lstm_numba train?")
        return vocab

    def scored_data(self, path, model, args, seq_len) -> tuple:
        """The held-out last 10% of --data or of the recorded text, in the model's vocabulary; the
        baselines are fit on that text's own training part."""
        vocab = self.vocabulary(path, model)
        text = D.load_text(args.data) if args.data else recorded_data(path, model.meta, "text", "--data",
                                                                      D.default_text, D.load_text)
        in_vocab = D.TextData(f"{text.source} (held-out part) with the vocabulary of {path}", vocab,
                              text.train[:0], text.test[:0])
        held = in_vocab.encode(text.decode(text.test))
        if held.size < 2:
            raise UsageError(f"{text.source}: held-out part too short")
        return held, {"text": text.record}, text


def _streams(tok: np.ndarray, batch: int, min_len: int) -> np.ndarray:
    """(n, batch) time-major: column b is the b-th contiguous slice of the token array."""
    n = tok.size // batch
    if n < min_len:
        raise UsageError(f"{tok.size} tokens are too few for batch {batch} x {min_len} timesteps")
    return np.ascontiguousarray(tok[:n * batch].reshape(batch, n).T)


# ---------------------------------------------------------------------------------------------
# kernels (a template: see the module doc)


@exact
def gather_input(idx, W_ih0, b1, b2, Z0, emb):
    """LM layer 0: Z0[t, b] = W_ih0[:, idx[t, b]] + (b1 + b2) (one-hot input as a column lookup).
    With at least V lookups the columns plus biases are packed first as the rows of ``emb``
    (V, 4H), so every lookup is a contiguous row copy (a column of W_ih0 strides by V); with fewer
    (generating one token at a time) packing would cost more than it saves, and the columns are
    read directly. Both give the same values."""
    T, B, M = Z0.shape
    V = W_ih0.shape[1]
    if T * B < V:
        for t in range(T):
            for b in range(B):
                col = idx[t, b]
                z = Z0[t, b]
                for m in range(M):
                    z[m] = W_ih0[m, col] + (b1[m] + b2[m])
        return
    for m in range(M):
        w = W_ih0[m]
        bias = b1[m] + b2[m]
        for v in range(V):
            emb[v, m] = w[v] + bias
    for t in range(T):
        for b in range(B):
            src = emb[idx[t, b]]
            z = Z0[t, b]
            for m in range(M):
                z[m] = src[m]


@exact
def scatter_input(idx, dG, gW_ih0, emb):
    """LM layer 0 weight gradient: gW_ih0[:, idx[t, b]] += dG[t, b] (zeroed first). With at least
    V lookups summed as the rows of ``emb`` (V, 4H) (contiguous adds) and transposed once at the
    end, with fewer into the columns directly (as ``gather_input``; the same sums in the same
    order)."""
    T, B, M = dG.shape
    V = gW_ih0.shape[1]
    if T * B < V:
        for m in range(M):
            for v in range(V):
                gW_ih0[m, v] = 0
        for t in range(T):
            for b in range(B):
                col = idx[t, b]
                d = dG[t, b]
                for m in range(M):
                    gW_ih0[m, col] += d[m]
        return
    for v in range(V):
        for m in range(M):
            emb[v, m] = 0
    for t in range(T):
        for b in range(B):
            d = dG[t, b]
            e = emb[idx[t, b]]
            for m in range(M):
                e[m] += d[m]
    for m in range(M):
        g = gW_ih0[m]
        for v in range(V):
            g[v] = emb[v, m]


@headkernel
def exp_shifted(row, m):
    """row[v] = e^(row[v] - m): the softmax head's per-element loop, a vectorizable exp
    (``mathbench.exp_core``; libm ``expf`` would keep it scalar) with no reduction in it
    (a float sum needs reassociation to vectorize, which exp_core's range reduction forbids)."""
    for v in range(row.shape[0]):
        row[v] = exp_core(row[v] - m)


@exact
def softmax_xent(P, b_out, tgt):
    """P (N, V): logits without bias on entry, softmax probabilities on exit. Returns the
    summed cross-entropy against tgt (N,) in float64 (log-sum-exp, max subtracted; one libm
    log per row, not per element)."""
    N, V = P.shape
    acc = 0.0
    for n in range(N):
        row = P[n]
        m = row[0] + b_out[0]
        for v in range(V):
            zv = row[v] + b_out[v]
            row[v] = zv
            m = zv if zv > m else m
        zt = row[tgt[n]]
        exp_shifted(row, m)
        s = c(m, 0.0)
        for v in range(V):
            s += row[v]
        inv = c(m, 1.0) / s
        for v in range(V):
            row[v] *= inv
        acc += math.log(s) + (m - zt)
    return acc


@exact
def softmax_xent_backward(P, tgt, dL):
    """dL = (P - onehot(tgt)) / N: gradient of the mean cross-entropy w.r.t. the logits."""
    N, V = P.shape
    inv_n = c(P[0, 0], 1.0 / N)
    for n in range(N):
        for v in range(V):
            dL[n, v] = P[n, v] * inv_n
        dL[n, tgt[n]] -= inv_n


@kernel
def forward_lm(idx, tgt, W_ih0, W_ihR, W_hh, b_ih, b_hh, W_out, b_out, h0, c0,
               Z, Hs, Cs, TC, R, P, emb, plan, cp, gp, nchunks):
    """Language model forward: idx, tgt (T, B) int64 -> mean cross-entropy; P (T*B, V) probs."""
    L, T, B, H4 = Z.shape
    H = H4 // 4
    gather_input(idx, W_ih0, b_ih[0], b_hh[0], Z[0], emb)
    forward_stack(W_ihR, W_hh, b_ih, b_hh, h0, c0, Z, Hs, Cs, TC, R, plan, cp, gp, nchunks)
    mm_nt(Hs[L - 1][1:].reshape((T * B, H)), W_out, P, nchunks)
    return softmax_xent(P, b_out, tgt.reshape(T * B)) / (T * B)


@kernel
def backward_lm(idx, tgt, W_ih0, W_ihR, W_hh, W_out, Z, Hs, Cs, TC, P,
                gW_ih0, gW_ihR, gW_hh, gb_ih, gb_hh, gW_out, gb_out,
                dL, dG, dH, tmp, dc, scratch, emb, plan, cp, gp, nchunks):
    """Gradients of forward_lm's mean loss into the g* arrays (overwritten)."""
    L, T, B, H4 = Z.shape
    H = H4 // 4
    N = T * B
    softmax_xent_backward(P, tgt.reshape(N), dL)
    top = Hs[L - 1][1:].reshape((N, H))
    mm_tn(dL, top, gW_out, scratch, nchunks)
    column_sums(dL, gb_out)
    mm_nn(dL, W_out, dH.reshape((N, H)), nchunks)
    backward_stack(W_ihR, W_hh, Z, Hs, Cs, TC, gW_ihR, gW_hh, gb_ih, gb_hh,
                   dG, dH, tmp, dc, scratch, plan, cp, gp, nchunks)
    scatter_input(idx, dG, gW_ih0, emb)


@kernel
def infer_lm(idx, tgt, W_ih0, W_ihR, W_hh, b_ih, b_hh, W_out, b_out, h0, c0,
             Z, Ha, Hb, C2, tc, R, hT, cT, P, emb, plan, cp, gp, nchunks):
    """Language model prediction: P (T*B, V) probabilities (``tgt``: any valid ids, the loss is
    not used); returns the top layer's buffer index (``infer_stack``)."""
    T, B, H4 = Z.shape
    H = H4 // 4
    gather_input(idx, W_ih0, b_ih[0], b_hh[0], Z, emb)
    top = infer_stack(W_ihR, W_hh, b_ih, b_hh, h0, c0, Z, Ha, Hb, C2, tc, R, hT, cT, plan, cp, gp, nchunks)
    Ht = Ha if top == 0 else Hb
    mm_nt(Ht[1:].reshape((T * B, H)), W_out, P, nchunks)
    softmax_xent(P, b_out, tgt.reshape(T * B))
    return top


TASK = LanguageModel()
TASK.template = sys.modules[__name__]
