"""Sentences computed from an LSTM sweep's CSV: the issue's targets and the seed's claims.
The README and notebook 3 quote these; nothing here measures.

Intervals are named for what they are: a "95% interval" only from at least
``mathbench.stats.MIN_CI_SAMPLES`` samples (``interval_method`` in the rows: the order-statistic
interval; older runs: a percentile bootstrap), otherwise the range (min..max) of the n samples. Runs
written before the ``*_interval`` columns existed stored a bootstrap interval whatever the count;
below the threshold that interval is the range (n = 3: exactly [min, max]), and is called so.
Quality comparisons leave out rows flagged "not trained" (no better than the unigram or
majority-class baseline), and rows whose baseline is not trained.
"""
from __future__ import annotations

import pandas as pd

from mathbench import stats

from lstm_numba import tasks

_COUNT = {"timing_interval": "timing_samples", "latency_interval": "latency_samples", "quality_interval": "repeats"}


def _is(s: pd.Series) -> pd.Series:
    return s.astype(str).eq("True")


def _range(s: pd.Series, fmt="{:.2f}") -> str:
    return f"median {fmt.format(s.median())}, range {fmt.format(s.min())} to {fmt.format(s.max())}"


def interval_kind(g: pd.DataFrame, column: str) -> tuple[str, int]:
    """("95% CI" or "range", smallest sample count) of the rows' ``column`` intervals."""
    count = _COUNT[column]
    n = int(pd.to_numeric(g[count], errors="coerce").min()) if count in g and len(g) else 0
    if column == "quality_interval" and "quality_samples" in g:
        n = int(pd.to_numeric(g["quality_samples"], errors="coerce").min())
    if column in g and g[column].notna().all():
        return ("95% CI" if (g[column] == "95% CI").all() else "range"), n
    return stats.interval_kind(n), n


def _counts(kind: str, n: int, up: int, down: int) -> str:
    if kind == "95% CI":
        return f"{up} with the whole 95% interval above 1, {down} below 1"
    return (f"{up} with all {n} paired samples above 1, {down} with all below 1; ranges: too few samples for a 95% "
            "interval")


def _baseline_label(df: pd.DataFrame) -> str:
    b = df[(df["backend"] == "numba") & _is(df["baseline"])]["variant"]
    return b.iloc[0] if len(b) else "the baseline"


def _role(df: pd.DataFrame, variant: str) -> str:
    r = df.loc[df["variant"] == variant, "role"] if "role" in df else pd.Series(dtype=object)
    return " (the seed's configuration: scalar libm)" if len(r) and str(r.iloc[0]).startswith("seed") else ""


def speed(df: pd.DataFrame) -> list[str]:
    """Candidate-vs-baseline speedups, by thread count."""
    out = []
    base = _baseline_label(df)
    cand = df[(df["backend"] == "numba") & ~_is(df["baseline"]) & df["speedup_train"].notna()]
    for (variant, thr), g in cand.groupby(["variant", "threads"]):
        kind, n = interval_kind(g, "timing_interval")
        faster = int((g["speedup_train_lo"] > 1).sum())
        slower = int((g["speedup_train_hi"] < 1).sum())
        out.append(
            f"{variant}{_role(df, variant)} vs {base}, {thr} thread(s), {len(g)} configurations (batch "
            f"{'/'.join(str(b) for b in sorted(g['batch'].unique()))}): training speedup {_range(g['speedup_train'])}x "
            f"({_counts(kind, n, faster, slower)}); prediction (batch 1) "
            f"{_range(g['speedup_latency'])}x; time saved per training step: median "
            f"{(1 - 1 / g['speedup_train']).median() * 100:+.1f}%.")
    return out


def _trained(d: pd.DataFrame, df: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``d`` whose own model and whose configuration's baseline (in ``df``) beat the
    trivial floor."""
    if "quality_flag" not in d:
        return d
    ok = d["quality_flag"].fillna("") != "not trained"
    base_ok = df[_is(df["baseline"])].set_index("config_id")["quality_flag"].fillna("") != "not trained"
    return d[ok & d["config_id"].map(base_ok).eq(True)]


def absolute(df: pd.DataFrame) -> list[str]:
    """Held-out quality of every variant beside the trivial baselines of the same data."""
    out = []
    for task, t in df[df["backend"] == "numba"].groupby("task"):
        td = tasks.get(task)
        metric = td.QUALITY
        if metric not in t or t[metric].isna().all():
            continue
        per = "; ".join(f"{v} {_range(g[metric], '{:.3f}')}" for v, g in t.groupby("variant", sort=False))
        line = f"{task}: held-out {td.QUALITY_TEXT} per variant over configurations: {per}"
        if td.REF_KEY in t and t[td.REF_KEY].notna().any():
            line += "; baselines " + ", ".join(f"{name} {t[col].median():.3f}" for name, col in td.REF_MEDIANS)
        if "quality_flag" in t:
            c = t["quality_flag"].value_counts()
            line += (f"; {int(c.get('trained', 0))} of {len(t)} rows trained, {int(c.get('weak', 0))} weak, "
                     f"{int(c.get('not trained', 0))} not trained")
        out.append(line + ".")
    return out


def quality(df: pd.DataFrame) -> list[str]:
    """Held-out loss/accuracy differences, paired by seed, between trained models only."""
    out = []
    base = _baseline_label(df)
    cand = _trained(df[(df["backend"] == "numba") & ~_is(df["baseline"])], df)
    if "quality_flag" in df:
        left = (df["backend"] == "numba") & ~_is(df["baseline"])
        dropped = int(left.sum()) - len(cand)
    else:
        dropped = 0
    # the same shape at another thread count trains on the same seeds and batches: count it once
    cand = cand.sort_values("threads").drop_duplicates(["task", "layers", "hidden", "dtype", "batch", "variant"])
    speed_only = []
    if "quality_flag" in df:  # as the sweep's summary: no trained model in a task -> speed only
        numba = df[df["backend"] == "numba"]
        speed_only = [t for t, g in numba.groupby("task") if not (g["quality_flag"] == "trained").any()]
        for t in speed_only:
            out.append(f"{t}: speed only: no model of this run beats the "
                       f"{tasks.get(t).STRONG_TEXT} baseline, so its quality differences "
                       "compare models that have not learned the data (see an accuracy study instead).")
        cand = cand[~cand["task"].isin(speed_only)]
    for (variant, task), g in cand.groupby(["variant", "task"]):
        g = g[g["loss_diff"].notna()]
        if g.empty:
            continue
        kind, n = interval_kind(g, "quality_interval")
        worse = int((g["loss_diff_lo"] > 0).sum())
        better = int((g["loss_diff_hi"] < 0).sum())
        repeats = int(g["repeats"].sum())
        higher = int(g["higher_loss_repeats"].sum())
        what = "the 95% interval" if kind == "95% CI" else f"the range of all {n} seeds"
        line = (f"{task}: {variant} minus {base} held-out loss {_range(g['loss_diff'], '{:+.3f}')} over "
                f"{len(g)} configurations; {what} is above 0 (worse) in {worse}, below 0 (better) in "
                f"{better}; {variant} had the higher loss in {higher} of {repeats} paired seed runs.")
        score = tasks.get(task).QUALITY  # a headline metric besides the loss gets its difference too
        if score != "loss" and g[f"{score}_diff"].notna().any():
            line += f" {score.capitalize()} difference {_range(g[f'{score}_diff'], '{:+.3f}')}."
        out.append(line)
    if dropped:
        out.append(f"{dropped} candidate rows left out of the quality comparison: they or their baseline are "
                   "not trained (no better than the unigram / majority-class baseline).")
    return out


def loops(df: pd.DataFrame) -> list[str]:
    """Which loops of each variant vectorized (from the compiled assembly)."""
    if "gate_fwd_vectorized" not in df:
        return []
    out = []
    names = {"gate_fwd": "gate forward", "cell_fwd": "cell forward", "backward": "backward", "head": "head"}
    d = df[(df["backend"] == "numba") & df["gate_fwd_vectorized"].notna()]
    for (variant, dtype, par), g in d.groupby(["variant", "dtype", "parallel"], sort=False):
        r = g.iloc[0]
        parts = []
        for loop, name in names.items():
            if str(r[f"{loop}_vectorized"]) == "True":
                parts.append(f"{name} {int(r[f'{loop}_simd_bits'])}-bit")
            else:
                parts.append(f"{name} scalar ({r[f'{loop}_libm']})")
        out.append(f"{variant}{_role(df, variant)}, {dtype}, {'parallel' if str(par) == 'True' else 'serial'}: "
                   + ", ".join(parts) + ".")
    return out


def torch_peer(df: pd.DataFrame) -> list[str]:
    """The Numba baseline against torch.nn.LSTM at equal threads (target: faster at hidden <= 128,
    within 1.5x at 512, batch 1)."""
    out = []
    base = df[(df["backend"] == "numba") & _is(df["baseline"]) & df["vs_torch_train"].notna()]
    for (task, batch, thr), g in base.groupby(["task", "batch", "threads"]):
        small = g[g["hidden"] <= 128]
        big = g[g["hidden"] == g["hidden"].max()]
        line = (f"Numba {g['variant'].iloc[0]} vs torch.nn.LSTM, {task}, batch {batch}, {thr} thread(s): "
                f"time(torch)/time(Numba) for the training step {_range(g['vs_torch_train'])} over {len(g)} shapes")
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
    return [f"parallel (prange) over serial training step, {_baseline_label(df)}: parallel faster in {len(faster)} of "
            f"{len(both)} shapes" + (f" (hidden {', '.join(map(str, hid))})" if hid else "")
            + f"; serial/parallel time ratio {_range(both['serial'] / both['parallel'])}."]


def all_findings(df: pd.DataFrame) -> list[str]:
    return speed(df) + loops(df) + absolute(df) + quality(df) + torch_peer(df) + threads(df)
