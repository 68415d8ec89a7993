"""Trivial baselines for the data in use, fit on the training part and scored on held-out data:
what an LSTM's held-out numbers must beat before they mean anything.

Text: cross-entropy (nats per predicted character) of a unigram and of a bigram character model,
both with add-0.5 smoothing (every character of the vocabulary keeps a non-zero probability), on
the same (input, target) pairs the LSTM is scored on: the bigram sees exactly the previous
character, which the LSTM also sees.

Classification: accuracy (and F1, cross-entropy) of the majority class, and of the best single
threshold on one feature at the window's last row (the row the label belongs to), chosen by
training accuracy over every feature, both directions and every cut between distinct values.

``flag(task, metrics, refs)`` names a model's state against them: ``"not trained"`` (no better
than the unigram / majority baseline: it has not learned the data's first-order statistics),
``"weak"`` (no better than the bigram / best-threshold baseline), else ``"trained"``.
"""
from __future__ import annotations

import numpy as np

NOT_TRAINED, WEAK, TRAINED = "not trained", "weak", "trained"
ALPHA = 0.5  # add-0.5 smoothing


def text(train_ids: np.ndarray, inputs: np.ndarray, targets: np.ndarray, vocab: int) -> dict:
    """``{"unigram": nats, "bigram": nats}`` on the pairs (inputs[k] -> targets[k])."""
    train_ids = np.asarray(train_ids, dtype=np.int64).ravel()
    x = np.asarray(inputs, dtype=np.int64).ravel()
    y = np.asarray(targets, dtype=np.int64).ravel()
    uni = np.bincount(train_ids, minlength=vocab) + ALPHA
    uni /= uni.sum()
    big = np.full((vocab, vocab), ALPHA)
    np.add.at(big, (train_ids[:-1], train_ids[1:]), 1.0)
    big /= big.sum(axis=1, keepdims=True)
    return {"unigram": float(-np.mean(np.log(uni[y]))), "bigram": float(-np.mean(np.log(big[x, y])))}


def _scores(y: np.ndarray, pred: np.ndarray, p: np.ndarray) -> dict:
    y, pred = y.astype(bool), pred.astype(bool)
    tp, fp, fn = int(np.sum(y & pred)), int(np.sum(~y & pred)), int(np.sum(y & ~pred))
    p = np.clip(p, 1e-12, 1 - 1e-12)
    loss = float(-np.mean(np.where(y, np.log(p), np.log(1 - p))))
    return {"accuracy": float(np.mean(y == pred)), "f1": 2 * tp / (2 * tp + fp + fn) if tp else 0.0, "loss": loss}


def best_threshold(x: np.ndarray, y: np.ndarray) -> tuple[int, float, bool]:
    """(feature, threshold, above) maximizing training accuracy of ``pred = (x[:, f] > t) == above``."""
    y = np.asarray(y).astype(bool)
    best = (-1.0, 0, 0.0, True)
    for f in range(x.shape[1]):
        order = np.argsort(x[:, f], kind="stable")
        v, yy = x[order, f], y[order]
        # cut after position k (k = -1: everything above): positives above + negatives below
        pos_above = int(yy.sum()) - np.concatenate([[0], np.cumsum(yy)])
        neg_below = np.concatenate([[0], np.cumsum(~yy)])
        correct = pos_above + neg_below  # "above" direction; the other is n - correct
        ok = np.concatenate([[True], v[1:] != v[:-1], [True]])  # cut only between distinct values
        correct = np.where(ok, correct, -1)
        n = y.size
        for above, score in ((True, correct), (False, np.where(ok, n - correct, -1))):
            k = int(np.argmax(score))
            if score[k] > best[0]:
                t = v[0] - 1.0 if k == 0 else (v[-1] + 1.0 if k == n else (v[k - 1] + v[k]) / 2)
                best = (float(score[k]), f, float(t), above)
    return best[1], best[2], best[3]


def classify(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> dict:
    """Majority class and best single-feature threshold, fit on (train_x, train_y) rows and scored
    on the test rows (each the last row of a scored window): ``{"majority": {accuracy, f1, loss},
    "threshold": {..., "feature": index, "threshold": value (normalized units)}}``."""
    train_y = np.asarray(train_y).astype(bool)
    test_y = np.asarray(test_y).astype(bool)
    prior = float(np.clip(train_y.mean(), 1e-6, 1 - 1e-6))
    majority = _scores(test_y, np.full(test_y.size, prior >= 0.5), np.full(test_y.size, prior))
    f, t, above = best_threshold(np.asarray(train_x), train_y)
    side = np.asarray(train_x)[:, f] > t
    # probability = the training rate of positives on each side, so the loss is defined too
    p_hi = float(np.clip(train_y[side].mean() if side.any() else prior, 1e-6, 1 - 1e-6))
    p_lo = float(np.clip(train_y[~side].mean() if (~side).any() else prior, 1e-6, 1 - 1e-6))
    test_side = np.asarray(test_x)[:, f] > t
    thr = _scores(test_y, test_side == above, np.where(test_side, p_hi, p_lo))
    thr.update(feature=int(f), threshold=t)
    return {"majority": majority, "threshold": thr}


def flag(task: str, metrics: dict, refs: dict) -> str:
    """NOT_TRAINED, WEAK or TRAINED for held-out ``metrics`` (lm: loss; classify: accuracy)
    against ``refs`` (``text`` / ``classify`` output); "" when the metric is missing. The rule is
    the task's (``Task.flag``)."""
    from lstm_numba import tasks  # not at import: the task modules import this one

    return tasks.get(task).flag(metrics, refs)
