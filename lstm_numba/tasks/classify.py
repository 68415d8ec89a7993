"""Task "classify": sequence classification. ``n_features`` floats per timestep in, the last
timestep's top hidden state -> one logit -> sigmoid binary cross-entropy.

Also a kernel template (``mathbench.templating``): the binary cross-entropy head and the entry
points ``forward_cls``/``backward_cls``/``infer_cls`` are generated per activation pair next to
the cell kernels they call (``variants.task_kernels``).
"""
from __future__ import annotations

import math
import sys

import numpy as np

from mathbench import UsageError, c, exp_core, log1p_unit
from lstm_numba import baselines as BL, data as D
from lstm_numba.model import backward_stack, forward_stack, infer_stack
from lstm_numba.ops import add_bias, exact, headkernel, mm_nt, mm_tn
from lstm_numba.tasks import Task, c_writable, recorded_data, short
from mathbench import kernel


class Classify(Task):
    name = "classify"
    QUALITY = "accuracy"
    TRIVIAL, STRONG = "majority", "threshold"
    SCORES = ("accuracy", "f1")
    PERPLEXITY = False
    HEAD_LOOP = ("bce_terms", 4, 0)  # the logits' loss terms: kernel, 1-D arrays, scalars
    INPUT = "features"  # peers: floats per timestep
    OUTPUT = "sigmoid_last_step"  # peers: one logit from the last timestep

    # -- the model
    def check_config(self, cfg, positive_int) -> None:
        positive_int("n_features", cfg.n_features)

    def input_size(self, cfg) -> int:
        return cfg.n_features

    def output_size(self, cfg) -> int:
        return 1

    def batch_dtypes(self, cfg):
        return cfg.np_dtype, cfg.np_dtype

    def check_batch(self, cfg, inputs, targets):
        x = np.asarray(inputs)
        if x.ndim != 3 or x.shape[2] != cfg.n_features or x.shape[0] < 1 or x.shape[1] < 1:
            raise UsageError(f"classify inputs must be (T, B, {cfg.n_features}), got shape {x.shape}")
        x = c_writable(x, cfg.np_dtype)
        if targets is None:
            return x, None
        y = c_writable(np.asarray(targets), cfg.np_dtype)
        if y.shape != (x.shape[1],):
            raise UsageError(f"classify targets must have shape ({x.shape[1]},), got {y.shape}")
        return x, y

    def example_batch(self, cfg, T, B, rng):
        """Zeros (rng None: for compiling) or random features and labels (for measuring plans)."""
        if rng is None:
            return np.zeros((T, B, cfg.n_features), cfg.np_dtype), np.zeros(B, cfg.np_dtype)
        return (rng.standard_normal((T, B, cfg.n_features)).astype(cfg.np_dtype),
                (rng.random(B) < 0.5).astype(cfg.np_dtype))

    def alloc(self, cfg, T, B, train) -> dict:
        """Probabilities (B,) and placeholder labels."""
        return {"P": np.zeros(B, cfg.np_dtype), "dummy_targets": np.zeros(B, cfg.np_dtype)}

    def forward(self, k, m, x, y, h0, c0, ws, codes, nch):
        p = m.params
        return k.forward_cls(x, y, p.W_ih0, p.W_ihR, p.W_hh, p.b_ih, p.b_hh, p.W_out, p.b_out, h0, c0, ws.Z, ws.Hs,
                             ws.Cs, ws.TC, ws.R, ws.P, codes, m.cell_param, m.gate_param, nch)

    def backward(self, k, m, ws, g, codes, nch):
        p = m.params
        k.backward_cls(ws.inputs, ws.targets, p.W_ih0, p.W_ihR, p.W_hh, p.W_out, ws.Z, ws.Hs, ws.Cs,
                       ws.TC, ws.P, g.W_ih0, g.W_ihR, g.W_hh, g.b_ih, g.b_hh, g.W_out, g.b_out,
                       ws.dG, ws.dH, ws.tmp, ws.dc, ws.scratch, codes, m.cell_param, m.gate_param, nch)

    def infer(self, k, m, x, h0, c0, ws, codes, nch):
        p = m.params
        return k.infer_cls(x, ws.dummy_targets, p.W_ih0, p.W_ihR, p.W_hh, p.b_ih, p.b_hh, p.W_out, p.b_out, h0, c0,
                           ws.Z, ws.Ha, ws.Hb, ws.C2, ws.tc, ws.R, ws.hT, ws.cT, ws.P, codes, m.cell_param,
                           m.gate_param, nch)

    def probabilities(self, cfg, ws):
        return ws.P

    def io_flops(self, cfg, T, B):
        """(forward, backward) FLOPs of layer 0's input product and of the head."""
        inp = 2 * T * B * 4 * cfg.hidden * cfg.n_features
        head = 2 * B * cfg.hidden
        return inp + head, inp + 2 * head  # dW_ih of layer 0; dW_out and dh of the head

    # -- data and scores (sweep, study)
    def load_data(self, s):
        if (s.occupancy_train is None) != (s.occupancy_test is None):
            raise UsageError("--occupancy-train and --occupancy-test go together")
        return D.occupancy_data(s.occupancy_train, s.occupancy_test) if s.occupancy_train else D.default_sensor()

    def data_info(self, ds) -> dict:
        return {"source": ds.source, "fingerprint": ds.fingerprint, "features": list(D.FEATURES),
                "train_rows": int(ds.val_from), "validation_rows": int(ds.train_y.size - ds.val_from),
                "test_rows": int(ds.test_y.size),
                "train_positive": float(ds.train_y[:ds.val_from].mean()), "test_positive": float(ds.test_y.mean())}

    def model_kwargs(self, ds) -> dict:
        return dict(n_features=D.SensorData.n_features)

    def train_batch(self, ds, rng, batch, seq_len, dtype):
        x, y = ds.train_batch(rng, batch, seq_len, dtype=dtype)
        return x, y.astype(dtype)

    def eval_batches(self, ds, s, dtype, part):
        return [(np.ascontiguousarray(x), np.ascontiguousarray(y.astype(dtype)))
                for x, y in ds.eval_batches(s.seq_len, s.eval_batch, max_windows=s.eval_windows, dtype=dtype,
                                            part=part)]

    def reference_scores(self, ds, eval_set) -> dict:
        last = np.concatenate([x[-1] for x, _ in eval_set]).astype(np.float64)  # each window's labelled row
        return BL.classify(ds.train_x[:ds.val_from], ds.train_y[:ds.val_from], last,
                           np.concatenate([y for _, y in eval_set]))

    def labels(self, probabilities):
        return (probabilities >= 0.5).astype(np.int64)

    def scores(self, ys, preds) -> dict:
        return D.binary_scores(np.concatenate([np.asarray(y).astype(np.int64) for y in ys]),
                               np.concatenate([np.asarray(p).astype(np.int64) for p in preds]))

    def ref_columns(self, refs) -> dict:
        return {"ref_majority_acc": refs["majority"]["accuracy"], "ref_majority_f1": refs["majority"]["f1"],
                "ref_threshold_acc": refs["threshold"]["accuracy"], "ref_threshold_f1": refs["threshold"]["f1"]}

    def refs_text(self, r) -> str:
        return (f"baselines on the same test windows (fit on the training part): majority class accuracy "
                f"{r['ref_majority_acc']:.3f}, best single-feature threshold {r['ref_threshold_acc']:.3f} "
                f"(F1 {r['ref_threshold_f1']:.3f})")

    def quality_cell(self, r, ci, fmt, kind) -> tuple:
        """(the summary's quality cell, the diff columns)."""
        qual = ci(r, "accuracy", "accuracy_lo", "accuracy_hi", "{:.3f}", kind)
        if fmt(r.get("f1")) != "-":
            qual += f" (F1 {fmt(r.get('f1'), '{:.3f}')})"
        return qual, ("accuracy_diff", "accuracy_diff_lo", "accuracy_diff_hi")

    HEADERS = ("held-out accuracy", "accuracy diff")

    # -- findings (read from a sweep's CSV)
    QUALITY_TEXT = "accuracy"
    REF_MEDIANS = (("majority", "ref_majority_acc"), ("best single-feature threshold", "ref_threshold_acc"))
    STRONG_TEXT = "best-threshold"

    def flag(self, metrics, refs) -> str:
        """Against ``baselines.classify``: no better than majority / best-threshold accuracy."""
        acc = metrics.get("accuracy", math.nan)
        if not math.isfinite(acc):
            return ""
        return (BL.NOT_TRAINED if acc <= refs["majority"]["accuracy"] else
                BL.WEAK if acc <= refs["threshold"]["accuracy"] else BL.TRAINED)

    # -- training and evaluation (lstm_numba.train)
    PREDICTS = True

    def train_data(self, model, data):
        """(X (N, T, F), y (N,) in {0, 1}) -> (Xt (T, N, F) time-major, y) of the model dtype."""
        try:
            X, y = data
        except (TypeError, ValueError):
            raise UsageError("classification data must be a pair (X, y)") from None
        X = np.asarray(X)
        y = np.asarray(y)
        F = model.config.n_features
        if X.ndim != 3 or X.shape[2] != F or X.shape[0] < 1 or X.shape[1] < 1:
            raise UsageError(f"classification X must be (N, T, {F}), got shape {X.shape}")
        if y.shape != (X.shape[0],):
            raise UsageError(f"classification y must have shape ({X.shape[0]},), got {y.shape}")
        if not np.all((y == 0) | (y == 1)):
            raise UsageError("classification labels must be 0 or 1")
        dt = model.config.np_dtype
        Xt = np.ascontiguousarray(np.asarray(X, dtype=dt).transpose(1, 0, 2))  # (T, N, F)
        return Xt, y.astype(dt)

    def train_feed(self, model, data, cfg):
        """Minibatches of ``cfg.batch`` whole sequences, a new permutation (``cfg.seed``) each
        epoch; no state carried."""
        Xt, y = data
        T, N, B = Xt.shape[0], Xt.shape[1], cfg.batch
        if B > N:
            raise UsageError(f"batch {B} is larger than the {N} training samples")
        order_rng = np.random.default_rng(cfg.seed)

        def feed():
            perm, pi = None, 0
            while True:
                if perm is None or pi + B > N:
                    perm, pi = order_rng.permutation(N), 0
                sel = perm[pi:pi + B]
                pi += B
                yield np.ascontiguousarray(Xt[:, sel]), y[sel], None

        return T, feed()

    def evaluate(self, model, data, seq_len, batch) -> dict:
        """``classification_metrics`` of the predictions in batches of 256 (``seq_len``, ``batch``:
        unused, a sample is one whole sequence)."""
        Xt, y = data
        return classification_metrics(_predict_t(model, Xt, 256), y)

    def predict(self, model, X, batch) -> np.ndarray:
        """(N,) probabilities of class 1 for X (N, T, F), ``batch`` samples per call."""
        # Classify's own check: X is this array form even where a subclass reads its data otherwise
        Xt, _ = Classify.train_data(self, model, (X, np.zeros(np.shape(X)[0] if np.ndim(X) else 0)))
        return _predict_t(model, Xt, batch)

    # -- the accuracy study and the train/evaluate commands
    EVAL_METRICS = ("loss", "accuracy", "precision", "recall", "f1", "n")  # what ``evaluate`` reports
    REF_UNIT, REF_FORMAT = "accuracy", "{:.4f}"  # the study's summary of the baselines
    HELD_OUT: dict = {}  # the command's data line, per data record

    def study_parts(self, ds, seq_len) -> tuple:
        """(train, validation, test) windows as ``train.train`` / ``train.evaluate`` take them."""
        return ds.windows("train", seq_len), ds.windows("val", seq_len), ds.windows("test", seq_len)

    def test_baselines(self, ds, seq_len) -> dict:
        """``baselines.classify`` on the last rows of the test windows, fit on the training part."""
        ends = ds.test_ends(seq_len)
        return BL.classify(ds.train_x[:ds.val_from], ds.train_y[:ds.val_from], ds.test_x[ends], ds.test_y[ends])

    def baselines_text(self, refs) -> str:
        m, t = refs["majority"], refs["threshold"]
        return (f"majority class accuracy {m['accuracy']:.4g}, best single-feature threshold accuracy "
                f"{t['accuracy']:.4g} (F1 {t['f1']:.4g}; {D.FEATURES[t['feature']]}), fit on the training part")

    # -- the command line (lstm_numba.cli)
    SUMMARY = "occupancy from sensor windows"
    DATA_OPTIONS = {
        "--occupancy-train": {"sweep": "UCI Occupancy Detection training file (e.g. datatraining.txt) for the classify "
                              "task", "accuracy": "UCI Occupancy Detection training file",
                              "train": "UCI Occupancy training file for --task classify (default: embedded sensor log)"},
        "--occupancy-test": {"sweep": "UCI Occupancy Detection test file (e.g. datatest.txt)",
                             "accuracy": "UCI Occupancy Detection test file",
                             "train": "UCI Occupancy test file for --task classify",
                             "predict": "score this UCI Occupancy file instead (classify)"}}
    DATA_MISUSE = {"tasks": "--occupancy-train/--occupancy-test are for the classify task; add it to --tasks",
                   "train": "--occupancy-* files are for --task classify",
                   "predict": "--occupancy-test is for classify models"}
    A_MODEL = "a classify model"

    def saved_meta(self, ds, seq_len) -> dict:
        return {"task": self.name, "data_source": ds.record, "seq_len": seq_len,
                "feature_mean": ds.mean.tolist(), "feature_std": ds.std.tolist()}

    def scored_data(self, path, model, args, seq_len) -> tuple:
        """The test windows of --occupancy-test or of the recorded test file, normalized with the
        model's training statistics; the baselines need the recorded training file as well (None
        when it is not at hand unchanged)."""
        meta = model.meta
        mean, std = _feature_norm(path, meta)
        series = D.load_occupancy(args.occupancy_test) if args.occupancy_test else recorded_data(
            path, meta, "test", "--occupancy-test", lambda: D.default_series()[1], D.load_occupancy)
        sd = D.scored_series(series, mean, std)
        sd.check_seq_len(seq_len, parts=("test",), what="the model's sequence length")
        try:  # what the majority and threshold baselines are fit on
            fit = recorded_data("", meta, "train", "", lambda: D.default_series()[0], D.load_occupancy)
        except UsageError:
            fit = None
        return (sd.windows("test", seq_len), {"test": series.record},
                None if fit is None else D.sensor_data(fit, series, "", (mean, std)))


def _feature_norm(path: str, meta: dict):
    """The training mean and standard deviation a classify model normalizes its inputs with: one
    finite number per feature each, and every std > 0 (a 0 divides to inf/NaN, scoring 'loss nan')."""
    n = D.SensorData.n_features
    out = []
    for key in ("feature_mean", "feature_std"):
        value = meta.get(key)
        ok = isinstance(value, list) and len(value) == n and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
        if not ok:
            raise UsageError(f"{path}: {key} in its metadata must be a list of {n} finite numbers (one per "
                             f"feature: {', '.join(D.FEATURES)}), got {short(value)}")
        out.append(np.asarray(value, dtype=np.float64))
    if (out[1] <= 0).any():
        raise UsageError(f"{path}: feature_std in its metadata has a zero or negative entry {short(meta['feature_std'])}"
                         "; it divides every input, so each must be positive")
    return out


def _predict_t(model, Xt, batch) -> np.ndarray:
    """(N,) probabilities of class 1 for time-major Xt (T, N, F), ``batch`` samples per call."""
    T, N, _ = Xt.shape
    out = np.empty(N, dtype=np.float64)
    for s in range(0, N, batch):
        xb = np.ascontiguousarray(Xt[:, s:s + batch])
        out[s:s + xb.shape[1]] = model.predict(xb, None, validate=False)
    return out


def classification_metrics(p: np.ndarray, y: np.ndarray) -> dict:
    """Mean BCE, accuracy, precision, recall, F1 (positive class 1, threshold 0.5), n."""
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    eps = 1e-12
    loss = float(-np.mean(y * np.log(np.maximum(p, eps)) + (1 - y) * np.log(np.maximum(1 - p, eps))))
    pred = p >= 0.5
    pos = y == 1
    tp = int(np.sum(pred & pos))
    fp = int(np.sum(pred & ~pos))
    fn = int(np.sum(~pred & pos))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"loss": loss, "accuracy": float(np.mean(pred == pos)), "precision": precision,
            "recall": recall, "f1": f1, "n": int(y.size)}


# ---------------------------------------------------------------------------------------------
# kernels (a template: see the module doc)


@headkernel
def bce_terms(z, y, P, loss):
    """Per batch row: loss[b] = max(z, 0) - z y + log(1 + e^-|z|) (never overflows) and
    P[b] = sigmoid(z). The classification head's per-element loop: a vectorizable exp and
    log1p on (0, 1] (``mathbench.functions.simd``), no libm call, no reduction. The arrays must not
    overlap: LLVM checks that at run time and takes its scalar loop if they do."""
    for b in range(z.shape[0]):
        zb = z[b]
        zero = c(zb, 0.0)
        one = c(zb, 1.0)
        e = exp_core(-abs(zb))
        loss[b] = (zb if zb > zero else zero) - zb * y[b] + log1p_unit(e)
        P[b] = one / (one + e) if zb >= zero else e / (one + e)


@exact
def bce_forward(last, W_out, b_out, y, P):
    """Mean binary cross-entropy of the logits W_out last[b] + b_out; P[b] = sigmoid(logit)."""
    B, H = last.shape
    z = np.empty_like(P)
    for b in range(B):
        zb = b_out[0]
        for k in range(H):
            zb += W_out[0, k] * last[b, k]
        z[b] = zb
    terms = np.empty_like(P)
    bce_terms(z, y, P, terms)
    acc = 0.0
    for b in range(B):
        acc += terms[b]
    return acc / B


@exact
def bce_backward(last, W_out, y, P, gW_out, gb_out, dH):
    """Head gradients of bce_forward's loss; dH (T, B, H) = dL/dh: zero except at t = T-1."""
    T, B, H = dH.shape
    inv_b = c(P[0], 1.0 / B)
    gb_out[0] = 0
    for k in range(H):
        gW_out[0, k] = 0
    for t in range(T):
        for b in range(B):
            for k in range(H):
                dH[t, b, k] = 0
    for b in range(B):
        dz = (P[b] - y[b]) * inv_b
        gb_out[0] += dz
        for k in range(H):
            gW_out[0, k] += dz * last[b, k]
            dH[T - 1, b, k] = dz * W_out[0, k]


@kernel
def forward_cls(X, y, W_ih0, W_ihR, W_hh, b_ih, b_hh, W_out, b_out, h0, c0,
                Z, Hs, Cs, TC, R, P, plan, cp, gp, nchunks):
    """Sequence classification forward: X (T, B, F), y (B,) in {0, 1} -> mean binary
    cross-entropy of the logit W_out h_T + b_out; P (B,) = sigmoid(logit)."""
    L, T, B, H4 = Z.shape
    F = X.shape[2]
    Z0 = Z[0].reshape((T * B, H4))
    mm_nt(X.reshape((T * B, F)), W_ih0, Z0, nchunks)
    add_bias(Z0, b_ih[0], b_hh[0])
    forward_stack(W_ihR, W_hh, b_ih, b_hh, h0, c0, Z, Hs, Cs, TC, R, plan, cp, gp, nchunks)
    return bce_forward(Hs[L - 1][T], W_out, b_out, y, P)


@kernel
def backward_cls(X, y, W_ih0, W_ihR, W_hh, W_out, Z, Hs, Cs, TC, P,
                 gW_ih0, gW_ihR, gW_hh, gb_ih, gb_hh, gW_out, gb_out,
                 dG, dH, tmp, dc, scratch, plan, cp, gp, nchunks):
    """Gradients of forward_cls's mean loss into the g* arrays (overwritten)."""
    L, T, B, H4 = Z.shape
    F = X.shape[2]
    bce_backward(Hs[L - 1][T], W_out, y, P, gW_out, gb_out, dH)
    backward_stack(W_ihR, W_hh, Z, Hs, Cs, TC, gW_ihR, gW_hh, gb_ih, gb_hh,
                   dG, dH, tmp, dc, scratch, plan, cp, gp, nchunks)
    mm_tn(dG.reshape((T * B, H4)), X.reshape((T * B, F)), gW_ih0, scratch, nchunks)


@kernel
def infer_cls(X, y, W_ih0, W_ihR, W_hh, b_ih, b_hh, W_out, b_out, h0, c0,
              Z, Ha, Hb, C2, tc, R, hT, cT, P, plan, cp, gp, nchunks):
    """Sequence classification prediction: P (B,) = sigmoid(W_out h_T + b_out) (``y``: any 0/1
    labels, the loss is not used); returns the top layer's buffer index."""
    T, B, H4 = Z.shape
    F = X.shape[2]
    Z0 = Z.reshape((T * B, H4))
    mm_nt(X.reshape((T * B, F)), W_ih0, Z0, nchunks)
    add_bias(Z0, b_ih[0], b_hh[0])
    top = infer_stack(W_ihR, W_hh, b_ih, b_hh, h0, c0, Z, Ha, Hb, C2, tc, R, hT, cT, plan, cp, gp, nchunks)
    Ht = Ha if top == 0 else Hb
    bce_forward(Ht[T], W_out, b_out, y, P)
    return top


TASK = Classify()
TASK.template = sys.modules[__name__]
