"""Sentences computed from an LSTM sweep's CSV: the issue's targets and the seed's claims.
The README and notebook 3 quote these; nothing here measures."""
from __future__ import annotations

import pandas as pd


def _is(s: pd.Series) -> pd.Series:
    return s.astype(str).eq("True")


def _range(s: pd.Series, fmt="{:.2f}") -> str:
    return f"median {fmt.format(s.median())}, range {fmt.format(s.min())} to {fmt.format(s.max())}"


def speed(df: pd.DataFrame) -> list[str]:
    """Candidate-vs-tanh speedups, by thread count."""
    out = []
    cand = df[(df["backend"] == "numba") & ~_is(df["baseline"]) & df["speedup_train"].notna()]
    for (variant, thr), g in cand.groupby(["variant", "threads"]):
        faster = int((g["speedup_train_lo"] > 1).sum())
        slower = int((g["speedup_train_hi"] < 1).sum())
        out.append(
            f"{variant} vs tanh/sigmoid, {thr} thread(s), {len(g)} configurations (batch "
            f"{'/'.join(str(b) for b in sorted(g['batch'].unique()))}): training speedup {_range(g['speedup_train'])}x "
            f"({faster} with the whole 95% interval above 1, {slower} below 1); prediction (batch 1) "
            f"{_range(g['speedup_latency'])}x; time saved per training step: median "
            f"{(1 - 1 / g['speedup_train']).median() * 100:+.1f}%.")
    return out


def quality(df: pd.DataFrame) -> list[str]:
    """Held-out loss/accuracy differences, paired by seed."""
    out = []
    cand = df[(df["backend"] == "numba") & ~_is(df["baseline"])]
    # the same shape at another thread count trains on the same seeds and batches: count it once
    cand = cand.sort_values("threads").drop_duplicates(["task", "layers", "hidden", "dtype", "batch", "variant"])
    for (variant, task), g in cand.groupby(["variant", "task"]):
        g = g[g["loss_diff"].notna()]
        if g.empty:
            continue
        worse = int((g["loss_diff_lo"] > 0).sum())
        better = int((g["loss_diff_hi"] < 0).sum())
        repeats = int(g["repeats"].sum())
        higher = int(g["higher_loss_repeats"].sum())
        line = (f"{task}: {variant} minus tanh/sigmoid held-out loss {_range(g['loss_diff'], '{:+.3f}')} over "
                f"{len(g)} configurations; the 95% interval is above 0 (worse) in {worse}, below 0 (better) in "
                f"{better}; {variant} had the higher loss in {higher} of {repeats} paired seed runs.")
        if task == "classify" and g["accuracy_diff"].notna().any():
            line += f" Accuracy difference {_range(g['accuracy_diff'], '{:+.3f}')}."
        out.append(line)
    return out


def torch_peer(df: pd.DataFrame) -> list[str]:
    """The Numba baseline against torch.nn.LSTM at equal threads (target: faster at hidden <= 128,
    within 1.5x at 512, batch 1)."""
    out = []
    base = df[(df["backend"] == "numba") & _is(df["baseline"]) & df["vs_torch_train"].notna()]
    for (task, batch, thr), g in base.groupby(["task", "batch", "threads"]):
        small = g[g["hidden"] <= 128]
        big = g[g["hidden"] == g["hidden"].max()]
        line = (f"Numba tanh/sigmoid vs torch.nn.LSTM, {task}, batch {batch}, {thr} thread(s): time(torch)/time(Numba) "
                f"for the training step {_range(g['vs_torch_train'])} over {len(g)} shapes")
        if len(small):
            line += (f"; at hidden <= 128: {int((small['vs_torch_train'] > 1).sum())} of {len(small)} faster "
                     f"(min {small['vs_torch_train'].min():.2f}x)")
        if len(big):
            h = int(big["hidden"].iloc[0])
            line += (f"; at hidden {h}: {', '.join(f'{v:.2f}x' for v in big['vs_torch_train'])} "
                     f"({'within' if (big['vs_torch_train'] >= 1 / 1.5).all() else 'not within'} 1.5x)")
        out.append(line + ".")
    return out


def threads(df: pd.DataFrame) -> list[str]:
    """Serial against parallel kernels for the baseline (separate configurations)."""
    b = df[(df["backend"] == "numba") & _is(df["baseline"])]
    keys = ["task", "layers", "hidden", "dtype", "batch"]
    s = b[b["threads"] == 1].set_index(keys)["train_step_s"]
    p = b[b["threads"] > 1].set_index(keys)["train_step_s"]
    both = pd.concat([s.rename("serial"), p.rename("parallel")], axis=1).dropna()
    if both.empty:
        return []
    faster = both[both["parallel"] < both["serial"]]
    hid = sorted({k[2] for k in faster.index})
    return [f"parallel (prange) over serial training step, tanh/sigmoid: parallel faster in {len(faster)} of "
            f"{len(both)} shapes" + (f" (hidden {', '.join(map(str, hid))})" if hid else "")
            + f"; serial/parallel time ratio {_range(both['serial'] / both['parallel'])}."]


def all_findings(df: pd.DataFrame) -> list[str]:
    return speed(df) + quality(df) + torch_peer(df) + threads(df)
